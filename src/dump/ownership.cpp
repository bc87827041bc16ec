// See ownership.h. The rules are those of the kernel's ptrace access check
// for a tracer without CAP_SYS_PTRACE, read from /proc/PID/status and the
// owner of /proc/PID.
#include "dump/ownership.h"

#include <sys/stat.h>

#include <algorithm>
#include <array>

#include "proc/status.h"

namespace cryo::dump {

namespace {

template <typename Id>
bool all_mine(const std::array<uint32_t, 4>& ids, const Id (&mine)[3])
{
    return std::ranges::all_of(ids, [&](uint32_t id) { return std::ranges::find(mine, id) != std::end(mine); });
}

} // namespace

Result<void> check_owned_by_caller(const proc::Caller& caller, pid_t pid)
{
    if (caller.root)
        return {};
    auto status = TRY(proc::read_status(pid));
    if (!all_mine(status.uids, caller.uids) || !all_mine(status.gids, caller.gids))
        return fail("pid {} runs as uid {}/{}/{}/{} gid {}/{}/{}/{}: without root cryo dumps only processes of the "
                    "user running it (uid {}, gid {})",
                    pid, status.uids[0], status.uids[1], status.uids[2], status.uids[3], status.gids[0], status.gids[1],
                    status.gids[2], status.gids[3], caller.uids[0], caller.gids[0]);
    if (uint64_t extra = status.cap_permitted & ~caller.cap_ambient)
        return fail("pid {} holds capabilities the user running cryo does not have ({}): dumping it needs root", pid,
                    proc::capability_names(extra));
    struct stat st;
    std::string path = fmt::format("/proc/{}", pid);
    if (::stat(path.c_str(), &st) < 0)
        return fail_errno(fmt::format("stat {}", path));
    if (st.st_uid != caller.uids[1])
        return fail("pid {} is not dumpable (a set-user-ID or file-capability program, or PR_SET_DUMPABLE 0): dumping "
                    "it needs root",
                    pid);
    return {};
}

} // namespace cryo::dump
