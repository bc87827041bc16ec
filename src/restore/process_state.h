// Giving the restored process the rest of its state through injected calls,
// after its memory is back: signal handlers, the alternate signal stack,
// pending signals, the tid address, the robust futex list, the rseq area,
// prctl() settings, scheduling, interval timers and, last, credentials
// (dropping privileges earlier would forbid the steps before).
#pragma once

#include "base/error.h"
#include "core.pb.h"
#include "ptrace/injector.h"

#include <vector>

namespace cryo::restore {

struct StateRestore {
    pid_t pid { 0 };
    ptrace::Injector* injector { nullptr };
    const ptrace::ScratchArea* scratch { nullptr };
    const image::ProcessCore* core { nullptr };
};

// Process-wide state: signal handlers, personality, prctl() settings,
// scheduling, the root, then the leader's own state (as
// restore_thread_state()), all in one batch of calls after `first`;
// then the pending signals. Injected in the leader.
Result<void> restore_process_state(const StateRestore& restore, const image::ThreadCore& leader,
                                   std::vector<ptrace::QueuedCall> first);
// One thread's own state, injected in that thread (restore.injector): one
// batch of calls, then its pending signals.
Result<void> restore_thread_state(const StateRestore& restore, const image::ThreadCore& thread);
// Interval timers and POSIX timers: as late as possible so they lose
// little time.
Result<void> restore_itimers(const StateRestore& restore);
// Credentials are per thread in Linux: injected in every thread, last,
// because dropping privileges earlier would forbid the steps before. A
// change of uid or gid resets the dumpable flag and the thread's
// parent-death signal, which are set again after it.
Result<void> restore_credentials(const StateRestore& restore, const image::ThreadCore& thread);
// seccomp filters of one thread, oldest first, or its strict mode; the very
// last state set (a filter may forbid the calls that restore the rest). A
// thread in strict mode would be killed by cryo's next injected call: its
// seccomp is suspended (PTRACE_O_SUSPEND_SECCOMP) until cryo detaches.
Result<void> restore_seccomp(const StateRestore& restore, const image::ThreadCore& thread);

} // namespace cryo::restore
