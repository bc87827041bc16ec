// The one way cryo (and its tests) send signals to processes.
//
// As root a slip in a kill() call is catastrophic: pid -1 signals every
// process on the machine, 0 the caller's own group, a negative pid a whole
// group, 1 is init. Every signal cryo sends goes through these helpers, which
// refuse any pid <= 1, so no code path can turn into a mass kill.
#pragma once

#include <sys/types.h>

#include "base/error.h"

namespace cryo {

// kill(2) to exactly one process; pid <= 1 is refused with EINVAL.
Result<void> signal_process(pid_t pid, int signal);

// tgkill(2) to exactly one thread of one process.
Result<void> signal_thread(pid_t tgid, pid_t tid, int signal);

// SIGKILL, ignoring "no such process"; used on cleanup paths.
void kill_quietly(pid_t pid);

} // namespace cryo
