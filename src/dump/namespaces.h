// Namespaces a dump cannot carry yet.
//
// cryo recreates PID namespaces (restore/restorer.cpp) but no other kind:
// a restored process lands in cryo's own mount, network, UTS, IPC, cgroup,
// user and time namespaces. A process that lived in another one would come
// back silently in the wrong world (other mounts, hostname, SysV IPC
// objects, clocks), so the dump refuses it, comparing the namespace
// identities in /proc/PID/ns with cryo's own.
#pragma once

#include <sys/types.h>

#include "base/error.h"

namespace cryo::dump {

// Refuses `pid` if it is in another namespace than cryo of a kind cryo does
// not restore; the error names the process and the namespace.
Result<void> check_namespaces(pid_t pid);

} // namespace cryo::dump
