// /proc/PID/limits: a process's resource limits, readable by anyone.
//
// prlimit() on another process needs CAP_SYS_RESOURCE when it runs as
// another user (root in a container often lacks it), and asking the process
// itself costs an injected call per limit; this file gives all of them in one
// read. Rows come in resource number order (RLIMIT_CPU first), with the name
// in a 26-character column, then the soft and the hard limit ("unlimited"
// for RLIM_INFINITY) and the unit.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <optional>
#include <string_view>
#include <vector>

namespace cryo::proc {

// The limits, indexed by resource number; nullopt when the text is not as
// described above (the caller then asks the process itself).
std::optional<std::vector<rlimit>> parse_limits(std::string_view text);
std::optional<std::vector<rlimit>> read_limits(pid_t pid);

} // namespace cryo::proc
