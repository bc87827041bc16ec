// Parser for /proc/PID/status: "Key:\tvalue" lines with identity,
// credentials, signal masks, capabilities and namespace PIDs.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace cryo::proc {

struct ProcStatus {
    std::string name;
    uint32_t umask { 0 };          // "Umask:" (octal); absent on very old kernels
    bool has_umask { false };
    char state { '?' };
    pid_t tgid { 0 };
    pid_t pid { 0 };
    pid_t ppid { 0 };
    pid_t tracer_pid { 0 };
    std::array<uint32_t, 4> uids {};  // real, effective, saved, filesystem
    std::array<uint32_t, 4> gids {};
    std::vector<uint32_t> groups;
    std::vector<pid_t> ns_tgid;    // outermost namespace first, as printed
    std::vector<pid_t> ns_pid;
    std::vector<pid_t> ns_pgid;
    std::vector<pid_t> ns_sid;
    int threads { 0 };
    uint64_t sig_pending { 0 };    // SigPnd (this thread)
    uint64_t shared_pending { 0 }; // ShdPnd (process-wide)
    uint64_t sig_blocked { 0 };
    uint64_t sig_ignored { 0 };
    uint64_t sig_caught { 0 };
    uint64_t cap_inheritable { 0 };
    uint64_t cap_permitted { 0 };
    uint64_t cap_effective { 0 };
    uint64_t cap_bounding { 0 };
    uint64_t cap_ambient { 0 };
    bool no_new_privs { false };
    int seccomp_mode { 0 };
    int seccomp_filters { 0 };
};

Result<ProcStatus> parse_status(std::string_view text);
Result<ProcStatus> read_status(pid_t pid);
Result<ProcStatus> read_thread_status(pid_t pid, pid_t tid);

} // namespace cryo::proc
