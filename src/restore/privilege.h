// What a restore may give the restored processes, checked before any of them
// exists.
//
// The new processes are forks of cryo: until their credentials are set (the
// last step) they hold cryo's. Run by root, cryo gives them the credentials
// of the image, whatever they are. Run by another user with
// CAP_CHECKPOINT_RESTORE and CAP_SYS_PTRACE (file capabilities on the cryo
// binary, or ambient ones), cryo must never hand out more than that user
// has, whatever a (possibly edited, hostile) image says: every uid and gid
// must be one the user already has, the supplementary groups a subset of
// the user's, and no capability beyond the user's ambient set (the
// capabilities the user passed down on purpose; those that came from the
// cryo binary's file capabilities are cryo's, not the user's). Open files
// are safe by construction: cryo opens them with the user's own rights.
//
// Some steps need a capability of their own whoever runs cryo: a PID
// namespace (CAP_SYS_ADMIN), a chroot (CAP_SYS_CHROOT), seccomp filters in a
// process without no_new_privs (CAP_SYS_ADMIN), dropping from the bounding
// set or changing securebits (CAP_SETPCAP), other supplementary groups
// (CAP_SETGID). They are refused up front with the capability named, not
// half-way through the restore.
#pragma once

#include "base/error.h"
#include "proc/caller.h"
#include "core.pb.h"
#include "tree.pb.h"

namespace cryo::restore {

// Refuses a process of the image whose restore would give it credentials the
// caller does not have, or that needs a capability the caller lacks. The
// error names the process, the field and what would be needed. `alive` is
// the process's core image, nullptr for a zombie.
Result<void> check_process_privileges(const proc::Caller& caller, const image::ProcessEntry& entry,
                                      const image::ProcessCore* alive);

} // namespace cryo::restore
