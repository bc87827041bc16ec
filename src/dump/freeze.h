// Freezing the process to dump.
//
// Every thread is seized and interrupted (see ptrace/tracee.h). The process
// stays frozen as long as the FrozenProcess lives; dropping it detaches every
// thread and the process runs on exactly where it was. kill() ends it instead
// (the default after a successful dump).
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "ptrace/tracee.h"

namespace cryo::dump {

class FrozenProcess {
public:
    static Result<FrozenProcess> freeze(pid_t pid);

    pid_t pid() const { return m_pid; }
    int pidfd() const { return m_pidfd.get(); }
    std::vector<ptrace::Tracee>& threads() { return m_threads; }
    ptrace::Tracee& leader() { return m_threads.front(); }
    // The job-control stop signal the process was stopped by when frozen,
    // 0 if it was running. Dropping the FrozenProcess leaves it stopped.
    int stop_signal() const { return m_threads.front().group_stop_signal(); }

    // SIGKILLs the process and waits until it is gone.
    Result<void> kill();

private:
    FrozenProcess(pid_t pid, UniqueFd pidfd) : m_pid(pid), m_pidfd(std::move(pidfd)) { }
    pid_t m_pid;
    UniqueFd m_pidfd;
    std::vector<ptrace::Tracee> m_threads;
};

} // namespace cryo::dump
