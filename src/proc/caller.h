// Who runs cryo: its ids, groups and capabilities (getresuid/getresgid,
// /proc/self/status), for the checks that keep a cryo without root to the
// processes and privileges of the user running it (restore/privilege.h,
// dump/ownership.h).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace cryo::proc {

struct Caller {
    bool root { false };   // real and effective uid 0
    uid_t uids[3] {};      // real, effective, saved
    gid_t gids[3] {};
    std::vector<gid_t> groups;   // sorted
    uint64_t cap_effective { 0 };
    uint64_t cap_permitted { 0 };
    uint64_t cap_inheritable { 0 };
    uint64_t cap_ambient { 0 };
    uint64_t cap_bounding { 0 };
    uint32_t securebits { 0 };

    bool has(int capability) const { return cap_effective & (1ull << capability); }
};

Result<Caller> current_caller();

// "CAP_NET_RAW, CAP_SYS_ADMIN" for the bits of a capability mask.
std::string capability_names(uint64_t mask);

} // namespace cryo::proc
