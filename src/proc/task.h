// Enumerating what lives under /proc/PID: threads (task/), children of each
// thread (task/TID/children) and open descriptors (fd/).
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/error.h"

namespace cryo::proc {

// Thread ids of the process, ascending.
Result<std::vector<pid_t>> list_threads(pid_t pid);
// Children created by one thread (needs CONFIG_PROC_CHILDREN), as listed.
Result<std::vector<pid_t>> list_children(pid_t pid, pid_t tid);
// Children of every thread of the process, ascending, without duplicates.
Result<std::vector<pid_t>> list_process_children(pid_t pid);
// Open descriptor numbers, ascending.
Result<std::vector<int>> list_fds(pid_t pid);
// The caller's own open descriptors (through /proc/self, which is right
// even inside a PID namespace whose numbers differ from /proc's).
Result<std::vector<int>> list_own_fds();
// True when /proc/PID exists.
bool process_exists(pid_t pid);

} // namespace cryo::proc
