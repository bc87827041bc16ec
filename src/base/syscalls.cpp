#include "base/syscalls.h"

namespace cryo {

Result<UniqueFd> pidfd_open(pid_t pid, unsigned flags)
{
    long fd = ::syscall(__NR_pidfd_open, pid, flags);
    if (fd < 0)
        return fail_errno(fmt::format("pidfd_open pid {}", pid));
    return UniqueFd(static_cast<int>(fd));
}

Result<UniqueFd> pidfd_getfd(int pidfd, int target_fd)
{
    long fd = ::syscall(__NR_pidfd_getfd, pidfd, target_fd, 0);
    if (fd < 0)
        return fail_errno(fmt::format("pidfd_getfd fd {}", target_fd));
    return UniqueFd(static_cast<int>(fd));
}

} // namespace cryo
