#include "base/kill.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>

namespace cryo {

Result<void> signal_process(pid_t pid, int signal)
{
    if (pid <= 1)
        return fail("refusing to send signal {} to pid {}", signal, pid);
    if (::kill(pid, signal) < 0)
        return fail_errno(fmt::format("kill pid {} with signal {}", pid, signal));
    return {};
}

Result<void> signal_thread(pid_t tgid, pid_t tid, int signal)
{
    if (tgid <= 1 || tid <= 1)
        return fail("refusing to send signal {} to thread {} of pid {}", signal, tid, tgid);
    if (::syscall(SYS_tgkill, tgid, tid, signal) < 0)
        return fail_errno(fmt::format("tgkill thread {} of pid {} with signal {}", tid, tgid, signal));
    return {};
}

void kill_quietly(pid_t pid)
{
    (void)signal_process(pid, SIGKILL);
}

} // namespace cryo
