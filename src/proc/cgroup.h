// Parser for /proc/PID/cgroup: which cgroup a process (or thread) is in.
//
// Each line is "ID:CONTROLLERS:PATH"; the cgroup v2 (unified) hierarchy is
// the line "0::PATH", the path relative to the reader's cgroup namespace
// root (the whole hierarchy, as cryo refuses other cgroup namespaces). v1
// hierarchies (lines with another ID) are not recorded.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace cryo::proc {

// The cgroup v2 path in the text of /proc/PID/cgroup; nullopt when the
// kernel shows no unified hierarchy line.
std::optional<std::string> parse_cgroup_v2_path(std::string_view text);

// The cgroup v2 path of process `pid` ("" without a unified hierarchy),
// checked to be the same for every thread in `tids`: threads in different
// cgroups (threaded cgroups) are refused.
Result<std::string> read_process_cgroup(pid_t pid, const std::vector<pid_t>& tids);

} // namespace cryo::proc
