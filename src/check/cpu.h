// The CPU features a checkpoint depends on.
//
// Programs pick code paths by CPUID once (glibc's ifuncs, JITs, math
// libraries) and never ask again, so a process restored on a CPU without a
// feature it used dies of SIGILL at some later point, far from the cause.
// The dump records the CPUID feature words and XCR0 (which register state
// XSAVE holds, and so the layout of the saved FPU state); the restore
// refuses a machine that lacks a named feature the original had, unless the
// user overrides it.
#pragma once

#include "base/error.h"
#include "manifest.pb.h"

namespace cryo::check {

// This machine's features.
image::CpuFeatures current_cpu_features();

// An error naming every feature of `recorded` that `current` lacks (bits
// cryo has no name for, such as mitigation flags, are ignored).
Result<void> compare_cpu_features(const image::CpuFeatures& recorded, const image::CpuFeatures& current);

} // namespace cryo::check
