// Collecting the per-process and per-thread state of a frozen process: what
// ptrace and /proc show from outside (registers, FPU state, masks, pending
// signals, rseq, credentials, limits) and what only the process can tell,
// fetched by injected system calls run in its own vDSO (signal handlers,
// interval timers, the alternate stack, the tid address, the brk).
#pragma once

#include "base/error.h"
#include "core.pb.h"
#include "dump/freeze.h"
#include "mm.pb.h"
#include "ptrace/injector.h"

namespace cryo::dump {

// Where in the target a `syscall` instruction can be borrowed for injected
// calls: its vDSO has several (the fallbacks of clock_gettime and friends).
Result<uint64_t> find_syscall_gadget(pid_t pid, const ptrace::RemoteMemory& memory);

// Fills `core` and the brk/mm fields of `mm` (those from /proc/PID/stat,
// the auxv, the exe). Leaves the process exactly as it found it.
Result<void> collect_core(FrozenProcess& process, image::ProcessCore& core, image::MmFields& mm);

} // namespace cryo::dump
