// Which processes a cryo without root may dump.
//
// A dump reads a process's memory, registers and open files. With
// CAP_SYS_PTRACE the kernel would let cryo trace anyone's processes; a cryo
// run by an ordinary user (with CAP_CHECKPOINT_RESTORE and CAP_SYS_PTRACE
// as file or ambient capabilities) keeps to what that user could trace
// without the capability: processes whose uids and gids are all the
// user's, that are dumpable (a set-user-ID or file-capability program is
// not: the kernel then gives its /proc/PID to root) and that hold no
// capability beyond the user's ambient set. Root dumps anything.
#pragma once

#include <sys/types.h>

#include "base/error.h"
#include "proc/caller.h"

namespace cryo::dump {

// Refuses `pid` unless `caller` is root or the process is the caller's own
// as above; the error names the process and what makes it someone else's.
Result<void> check_owned_by_caller(const proc::Caller& caller, pid_t pid);

} // namespace cryo::dump
