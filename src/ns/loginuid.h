// The audit login uid (/proc/PID/loginuid, set by login through PAM).
//
// Dump reads it from outside. Only a process itself may write its own, and
// only with CAP_AUDIT_CONTROL (and never again once set if the kernel
// makes it immutable), so the new process writes it from the inside while
// it still runs cryo's code, and only when cryo runs as root: a rootless
// restore keeps the login uid cryo has.
#pragma once

#include "base/error.h"
#include "tree.pb.h"

namespace cryo::ns {

// Sets loginuid of every live process of `tree`; leaves it out where the
// kernel has no audit support.
Result<void> record_loginuids(image::ProcessTree& tree);

// In the new process of `entry`: writes its saved login uid if it is not
// the one inherited from cryo. A refusal is a warning naming the process:
// the program runs on with cryo's.
void restore_loginuid(const image::ProcessEntry& entry);

} // namespace cryo::ns
