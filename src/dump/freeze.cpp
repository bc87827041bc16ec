// Seizing a process; see freeze.h.
//
// Threads can be created while cryo seizes the others, so the thread list is
// read again after every round until a round finds no new thread. A parent
// waiting in vfork() is refused before any seize: ptrace could not stop it.
// A leader that exited while its threads run on (a zombie thread, which
// ptrace cannot seize) is left out: the process is read and injected
// through its first live thread instead (FrozenProcess::proc_pid).
#include "dump/freeze.h"

#include <fcntl.h>
#include <linux/seccomp.h>
#include <linux/kcmp.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <ranges>

#include "base/kill.h"
#include "base/syscalls.h"
#include "proc/stat.h"
#include "proc/status.h"
#include "proc/task.h"

namespace cryo::dump {

namespace {

constexpr unsigned kSeizeOptions = PTRACE_O_TRACESYSGOOD;

// A thread in seccomp strict mode is killed by the first call cryo injects,
// and a filter may refuse or kill on them too: PTRACE_O_SUSPEND_SECCOMP
// lifts seccomp for the thread while it is traced. The kernel grants it only
// to a tracer with CAP_SYS_ADMIN that is under no seccomp itself (EPERM);
// without it a thread in strict mode is refused before anything is injected,
// and filters act as they would have.
Result<ptrace::Tracee> seize_thread(pid_t tid)
{
    auto suspended = ptrace::Tracee::seize(tid, kSeizeOptions | PTRACE_O_SUSPEND_SECCOMP);
    if (suspended || suspended.error().code() != EPERM)
        return suspended;
    if (auto status = proc::read_status(tid); status && status->seccomp_mode == SECCOMP_MODE_STRICT)
        return fail("thread {} runs in seccomp strict mode: the calls cryo injects would kill it unless seccomp is "
                    "suspended while it is traced, which needs CAP_SYS_ADMIN (run cryo as root)", tid);
    return ptrace::Tracee::seize(tid, kSeizeOptions);
}

bool contains(const std::vector<ptrace::Tracee>& threads, pid_t tid)
{
    return std::ranges::any_of(threads, [tid](const auto& thread) { return thread.tid() == tid; });
}

} // namespace

bool has_exited_leader(pid_t pid)
{
    auto stat = proc::read_stat(pid);
    return stat && (stat->state == 'Z' || stat->state == 'X') && stat->num_threads > 1;
}

Result<FrozenProcess> FrozenProcess::freeze(pid_t pid)
{
    if (!proc::process_exists(pid))
        return fail_errno(fmt::format("pid {}", pid), ESRCH);
    // A parent in vfork() waits for its child to exec or exit, and ptrace
    // cannot stop it meanwhile: seizing it would wait as long. Its child
    // shares its memory (as one made by clone(CLONE_VM) without
    // CLONE_THREAD does, which cannot be restored either).
    for (pid_t child : TRY_CTX(proc::list_process_children(pid), "pid {}", pid))
        if (::syscall(SYS_kcmp, pid, child, KCMP_VM, 0, 0) == 0)
            return fail("pid {}: its child {} shares its memory (vfork() not followed by exec yet, or clone(CLONE_VM) "
                        "without CLONE_THREAD): not supported, the restore would give each its own copy",
                        pid, child);
    auto pidfd = TRY_CTX(pidfd_open(pid), "pid {}", pid);
    FrozenProcess process(pid, std::move(pidfd));

    for (bool found_new = true; found_new;) {
        found_new = false;
        auto tids = TRY_CTX(proc::list_threads(pid), "pid {}", pid);
        // The leader first: it is the thread that injected calls run in.
        std::ranges::stable_partition(tids, [pid](pid_t tid) { return tid == pid; });
        for (pid_t tid : tids) {
            if (contains(process.m_threads, tid) || (tid == pid && process.m_leader_exited))
                continue;
            // A leader that exited while its threads run on is a zombie
            // thread, which ptrace cannot seize.
            if (tid == pid && has_exited_leader(pid)) {
                process.m_leader_exited = true;
                continue;
            }
            process.m_threads.push_back(TRY_CTX(seize_thread(tid), "pid {}", pid));
            found_new = true;
        }
    }
    if (process.m_threads.empty() || (!process.m_leader_exited && process.m_threads.front().tid() != pid))
        return fail("pid {}: the thread group leader is gone (only threads are left)", pid);
    // pidfd_getfd() takes descriptors through the pidfd's thread: a live one
    // (O_EXCL is PIDFD_THREAD).
    if (process.m_leader_exited)
        process.m_pidfd = TRY_CTX(pidfd_open(process.proc_pid(), O_EXCL), "pid {}: thread {}", pid, process.proc_pid());
    return process;
}

Result<void> FrozenProcess::kill(const ptrace::ApartCpu& apart)
{
    // cryo frees the memory too (process_mrelease(2)) while the process
    // exits on another CPU (ApartCpu says why and what it gains). Best
    // effort: if the process has already let go of its memory (ESRCH), its
    // exit frees it alone.
    for (auto& thread : m_threads)
        apart.send_away(thread.tid());
    TRY_CTX(signal_process(m_pid, SIGKILL), "kill pid {}", m_pid);
    (void)::syscall(SYS_process_mrelease, m_pidfd.get(), 0);
    // Each traced thread reports its death to us (the tracer) before the
    // parent can reap it; collect those reports so no zombie waits on cryo.
    // The leader's report comes only after every other thread is reaped,
    // so it is collected last.
    for (auto& thread : m_threads | std::views::reverse) {
        int status = 0;
        while (::waitpid(thread.tid(), &status, __WALL) < 0 && errno == EINTR) { }
        thread.release();
    }
    return {};
}

} // namespace cryo::dump
