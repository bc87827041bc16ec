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
#include "ptrace/same_cpu.h"
#include "ptrace/tracee.h"

namespace cryo::dump {

// A process whose thread group leader exited (pthread_exit() or SYS_exit)
// while its other threads run on: the leader is a zombie thread, the
// process lives.
bool has_exited_leader(pid_t pid);

class FrozenProcess {
public:
    static Result<FrozenProcess> freeze(pid_t pid);

    pid_t pid() const { return m_pid; }
    int pidfd() const { return m_pidfd.get(); }
    // The live threads; the leader first unless it exited.
    std::vector<ptrace::Tracee>& threads() { return m_threads; }
    // The thread injected calls run in: the leader, or once it exited the
    // first live thread.
    ptrace::Tracee& leader() { return m_threads.front(); }
    bool leader_exited() const { return m_leader_exited; }
    // The pid to read the process's /proc files by: its own, or once its
    // leader exited (whose /proc/PID shows no memory, files or working
    // directory any more) the tid of a live thread: /proc/TID shows the
    // whole process as that thread sees it.
    pid_t proc_pid() const { return m_threads.front().tid(); }
    // The job-control stop signal the process was stopped by when frozen,
    // 0 if it was running. Dropping the FrozenProcess leaves it stopped.
    int stop_signal() const { return m_threads.front().group_stop_signal(); }

    // SIGKILLs the process and waits until it is gone; its threads are
    // sent off cryo's CPU first (ptrace::ApartCpu).
    Result<void> kill(const ptrace::ApartCpu& apart);

private:
    FrozenProcess(pid_t pid, UniqueFd pidfd) : m_pid(pid), m_pidfd(std::move(pidfd)) { }
    pid_t m_pid;
    UniqueFd m_pidfd;
    std::vector<ptrace::Tracee> m_threads;
    bool m_leader_exited { false };
};

} // namespace cryo::dump
