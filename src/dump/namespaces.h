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

#include <map>
#include <set>

#include "base/error.h"

namespace cryo::dump {

// Refuses `pid` if it is in another namespace than cryo of a kind cryo does
// not restore; the error names the process and the namespace.
Result<void> check_namespaces(pid_t pid);

// Processes made by clone() with CLONE_FS, CLONE_SIGHAND or CLONE_VM but
// not CLONE_THREAD share their cwd/root/umask, signal handlers or memory
// with their parent; restore would give each its own copy, so the dump
// refuses a process of the tree when kcmp() finds it sharing one with its
// parent, if the parent is in the tree too. The error names both and what
// they share.
//
// An fd table shared by clone(CLONE_FILES) is restored shared: the returned
// pids share theirs with their parent. A table shared with a process of the
// tree that is not the parent that made the child (an exit in between) is
// refused.
// `proc_pids`: every live process of the tree, by pid, with the pid its
// /proc files and kcmp() are read by (a live thread's, dump/freeze.h).
Result<std::set<pid_t>> check_shared_with_parents(const std::map<pid_t, pid_t>& proc_pids);

} // namespace cryo::dump
