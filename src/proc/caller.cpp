// See caller.h.
#include "proc/caller.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>

#include "proc/status.h"

namespace cryo::proc {

// Names by number, as in linux/capability.h.
std::string capability_names(uint64_t mask)
{
    static constexpr const char* kNames[] = {
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
        "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
        "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
        "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
        "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
        "CHECKPOINT_RESTORE",
    };
    std::string text;
    for (size_t bit = 0; bit < 64; ++bit) {
        if (!(mask & (1ull << bit)))
            continue;
        std::string name = bit < std::size(kNames) ? fmt::format("CAP_{}", kNames[bit]) : fmt::format("capability {}", bit);
        text += (text.empty() ? "" : ", ") + name;
    }
    return text;
}

Result<Caller> current_caller()
{
    Caller caller;
    if (::getresuid(&caller.uids[0], &caller.uids[1], &caller.uids[2]) < 0)
        return fail_errno("getresuid");
    if (::getresgid(&caller.gids[0], &caller.gids[1], &caller.gids[2]) < 0)
        return fail_errno("getresgid");
    caller.root = caller.uids[0] == 0 && caller.uids[1] == 0;
    auto status = TRY_CTX(read_status(::getpid()), "cryo's own credentials");
    caller.groups.assign(status.groups.begin(), status.groups.end());
    std::ranges::sort(caller.groups);
    caller.cap_effective = status.cap_effective;
    caller.cap_permitted = status.cap_permitted;
    caller.cap_inheritable = status.cap_inheritable;
    caller.cap_ambient = status.cap_ambient;
    caller.cap_bounding = status.cap_bounding;
    int securebits = ::prctl(PR_GET_SECUREBITS);
    if (securebits < 0)
        return fail_errno("prctl(PR_GET_SECUREBITS)");
    caller.securebits = static_cast<uint32_t>(securebits);
    return caller;
}

} // namespace cryo::proc
