// Giving the restored process the rest of its state through injected calls,
// after its memory is back: signal handlers, the alternate signal stack,
// pending signals, the tid address, the robust futex list, the rseq area,
// prctl() settings, scheduling, interval timers and, last, credentials
// (dropping privileges earlier would forbid the steps before).
#pragma once

#include "base/error.h"
#include "core.pb.h"
#include "ptrace/injector.h"

namespace cryo::restore {

struct StateRestore {
    pid_t pid { 0 };
    ptrace::Injector* injector { nullptr };
    const ptrace::ScratchArea* scratch { nullptr };
    const image::ProcessCore* core { nullptr };
};

Result<void> restore_process_state(const StateRestore& restore);

} // namespace cryo::restore
