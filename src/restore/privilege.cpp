// See privilege.h. The limits are the kernel's own rules for an
// unprivileged process (setresuid to one of its own ids, capset within
// what it has), applied to the image up front with the user's identity
// instead of cryo's capabilities, so that cryo's capabilities never leak
// into a restored process.
#include "restore/privilege.h"

#include <linux/capability.h>

#include <algorithm>
#include <set>

#include "proc/caller.h"

namespace cryo::restore {

namespace {

using proc::Caller;
using proc::capability_names;

constexpr const char* kUidNames[] = { "real", "effective", "saved", "filesystem" };

// The image's uids or gids, each one of the caller's three.
Result<void> check_ids(const google::protobuf::RepeatedField<uint32_t>& saved, const uint32_t (&mine)[3], const char* what)
{
    if (saved.size() != 4)
        return fail("the image lists {} {}s instead of 4 (real, effective, saved, filesystem): "
                    "incomplete credentials are only accepted from root",
                    saved.size(), what);
    for (int i = 0; i < 4; ++i)
        if (std::ranges::find(mine, saved[i]) == std::end(mine))
            return fail("the image asks for {} {} {}, but cryo runs as {} {} without root: restoring processes of "
                        "another user or group needs root",
                        kUidNames[i], what, saved[i], what, mine[0]);
    return {};
}

Result<void> check_capabilities(const Caller& caller, const image::Credentials& saved)
{
    // The user's own capabilities are those passed down as ambient ones;
    // inheritable ones only as far as the user's inheritable set goes.
    const std::pair<const char*, uint64_t> sets[] = {
        { "permitted", saved.cap_permitted() & ~caller.cap_ambient },
        { "effective", saved.cap_effective() & ~caller.cap_ambient },
        { "ambient", saved.cap_ambient() & ~caller.cap_ambient },
        { "inheritable", saved.cap_inheritable() & ~caller.cap_inheritable },
    };
    for (const auto& [name, extra] : sets)
        if (extra)
            return fail("the image asks for {} capabilities the user running cryo does not have ({}): only root can "
                        "restore them",
                        name, capability_names(extra));
    uint64_t dropped = caller.cap_bounding & ~saved.cap_bounding();
    if (dropped && !caller.has(CAP_SETPCAP))
        return fail("the image's bounding set lacks {}; dropping from it needs CAP_SETPCAP", capability_names(dropped));
    if (saved.securebits() != caller.securebits && !caller.has(CAP_SETPCAP))
        return fail("the image asks for securebits {:#x} (cryo has {:#x}); setting them needs CAP_SETPCAP",
                    saved.securebits(), caller.securebits);
    return {};
}

Result<void> check_credentials(const Caller& caller, const image::Credentials& saved)
{
    uint32_t uids[3] = { caller.uids[0], caller.uids[1], caller.uids[2] };
    uint32_t gids[3] = { caller.gids[0], caller.gids[1], caller.gids[2] };
    TRY(check_ids(saved.uids(), uids, "uid"));
    TRY(check_ids(saved.gids(), gids, "gid"));
    std::set<gid_t> mine(caller.groups.begin(), caller.groups.end());
    std::set<gid_t> wanted(saved.groups().begin(), saved.groups().end());
    for (gid_t group : wanted)
        if (!mine.contains(group))
            return fail("the image asks for supplementary group {}, which the user running cryo is not in: only root "
                        "can restore it",
                        group);
    if (wanted != mine && !caller.has(CAP_SETGID))
        return fail("the image has fewer supplementary groups than the user running cryo; changing them needs CAP_SETGID");
    return check_capabilities(caller, saved);
}

} // namespace

Result<void> check_process_privileges(const Caller& caller, const image::ProcessEntry& entry,
                                      const image::ProcessCore* alive)
{
    pid_t pid = entry.pid();
    if (entry.ns_pids_size() > 1 && !caller.has(CAP_SYS_ADMIN))
        return fail("pid {}: it lives in a PID namespace of its own; creating one needs CAP_SYS_ADMIN (run cryo as root)",
                    pid);
    if ((entry.uts_ns() != 0 || entry.ipc_ns() != 0) && !caller.has(CAP_SYS_ADMIN))
        return fail("pid {}: it lives in a UTS or IPC namespace of its own; creating one needs CAP_SYS_ADMIN (run cryo "
                    "as root)", pid);
    if (!alive)
        return {};
    const auto& core = *alive;
    if (!core.root().empty() && core.root() != "/" && !caller.has(CAP_SYS_CHROOT))
        return fail("pid {}: its root directory is {}; chroot needs CAP_SYS_CHROOT (run cryo as root)", pid, core.root());
    for (const auto& thread : core.threads())
        if (thread.seccomp_filters_size() > 0 && !core.credentials().no_new_privs() && !caller.has(CAP_SYS_ADMIN))
            return fail("thread {}: seccomp filters in a process without no_new_privs need CAP_SYS_ADMIN (run cryo as root)",
                        thread.tid());
    for (const auto& thread : core.threads())
        if (thread.seccomp_strict() && !caller.has(CAP_SYS_ADMIN))
            return fail("thread {}: it runs in seccomp strict mode; restoring it needs CAP_SYS_ADMIN to suspend seccomp "
                        "until the restore ends (run cryo as root)", thread.tid());
    if (caller.root)
        return {};
    TRY_CTX(check_credentials(caller, core.credentials()), "pid {}: credentials", pid);
    return {};
}

} // namespace cryo::restore
