// Keeping dirty-page tracking alive between two cryo commands.
//
// A userfaultfd context lives as long as one of its descriptors; once the
// last one closes, the kernel unregisters every VMA and the tracking is
// lost. `cryo pre-dump` and the next `cryo dump` are separate processes, so
// pre-dump leaves a small tracker process behind that holds the
// userfaultfd of each tracked process and nothing else of the tree:
//
// - It is forked from cryo (twice, so it is nobody's child but init's or a
//   sub-reaper's) in its own session, never from or into the target tree;
//   the tree cannot see it, and since WP_ASYNC faults are resolved by the
//   kernel without a message, holding the descriptors never makes a target
//   thread wait.
// - It listens on an abstract unix socket (SOCK_SEQPACKET) whose name, with
//   its pid, the pre-dump records in its manifest. The next dump or
//   pre-dump connects, checks the peer is that pid, and receives each
//   process's userfaultfd with SCM_RIGHTS; the tracker then exits. Only a
//   peer with the tracker's own uid is served.
// - It also exits when every tracked process is gone (it polls their
//   pidfds) and after a timeout, so it never outlives its use by long.
//
// Losing the tracker loses nothing but time: the next dump stores the
// memory of every process it cannot get a userfaultfd for in full.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "manifest.pb.h"

namespace cryo::mem {

struct TrackedFd {
    pid_t pid { 0 };
    UniqueFd uffd;
    UniqueFd pidfd;   // the tracker watches it to notice the process exit
};

// Starts a tracker holding `tracked` (cryo's copies are kept: the tracker
// gets its own by fork) and returns what the manifest records about it.
Result<image::DirtyTracker> spawn_tracker(std::vector<TrackedFd>& tracked, std::chrono::seconds timeout);

// Takes every descriptor from the tracker the manifest names and makes it
// exit. A tracker that is gone is not an error: nothing is returned (the
// caller then dumps in full), with a warning.
Result<std::vector<TrackedFd>> take_over_tracker(const image::DirtyTracker& tracker);

} // namespace cryo::mem
