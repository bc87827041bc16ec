// Recreating the other threads of a restored process.
//
// Once the address space and the process-wide state are back, the leader
// (still driven through the trampoline) runs clone3() with CLONE_THREAD and
// set_tid for each saved thread, so every thread gets its TID back. With
// PTRACE_O_TRACECLONE the new thread starts traced and stopped: cryo then
// injects its own state (alternate stack, tid address, robust list, rseq,
// name, pending signals) and, at the very end, its registers. All threads
// are released together.
#pragma once

#include <sys/ptrace.h>
#include <sys/types.h>

#include "base/error.h"
#include "ptrace/injector.h"
#include "ptrace/tracee.h"
#include "core.pb.h"

namespace cryo::restore {

// The ptrace options of every thread of a restored process once its other
// threads are created (they inherit them from the leader).
inline constexpr unsigned kRestoreTraceOptions = PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL | PTRACE_O_TRACECLONE;

Result<ptrace::Tracee> create_thread(ptrace::Tracee& leader, ptrace::Injector& injector,
                                     const ptrace::ScratchArea& scratch, const image::ThreadCore& thread);

} // namespace cryo::restore
