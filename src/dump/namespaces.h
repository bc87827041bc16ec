// Namespaces and shared process resources a dump cannot carry yet.
//
// cryo recreates PID namespaces (restore/restorer.cpp) and UTS and IPC
// namespaces (ns/namespaces.h) but no other kind: a restored process lands
// in cryo's own mount, network, cgroup, user and time namespaces. A process
// that lived in another one would come back silently in the wrong world
// (other mounts, interfaces, clocks), so the dump refuses it, comparing
// the namespace identities in /proc/PID/ns with cryo's own.
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/error.h"

namespace cryo::dump {

// Refuses `pid` if it is in another namespace than cryo of a kind cryo does
// not restore; the error names the process and the namespace.
Result<void> check_namespaces(pid_t pid);

// Processes made by clone() with CLONE_FILES, CLONE_FS, CLONE_SIGHAND or
// CLONE_VM but not CLONE_THREAD share their fd table, cwd/root/umask,
// signal handlers or memory with their parent; restore would give each its
// own copy, so the dump refuses a process of `pids` (the live processes of
// the tree) when kcmp() finds it sharing one with its parent, if the parent
// is in `pids` too. The error names both and what they share.
Result<void> check_shared_with_parents(const std::vector<pid_t>& pids);

} // namespace cryo::dump
