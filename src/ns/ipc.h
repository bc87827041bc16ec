// The content of an IPC namespace: System V shared memory segments,
// semaphore sets and message queues, and the namespace's sysctls.
//
// Both halves run inside the namespace (ns/namespaces.h puts a helper
// process of cryo there): the kernel shows a namespace's objects and its
// /proc/sys/kernel/{shm,sem,msg}* files only to its own members.
//
// Dump lists every object by index with the *_STAT_ANY commands of
// shmctl/semctl/msgctl (no permission check, nothing changed), reads a
// segment through a read-only attachment, the semaphore values with
// GETALL, and the messages with msgrcv(MSG_COPY), which copies the Nth
// message without taking it off the queue. Nothing of the dumped tree is
// disturbed (a segment's attach time and count change for a moment).
//
// Restore, in a new and empty namespace, writes the wanted id into
// /proc/sys/kernel/{shm,sem,msg}_next_id before each shmget/semget/msgget
// so every object gets its id back, fills it (content, SETALL, msgsnd in
// order), gives it its owner and mode (IPC_SET), and writes the sysctls
// last. The creator is cryo (root): cuid/cgid and the times are not kept.
#pragma once

#include <map>
#include <set>
#include <vector>
#include <string_view>

#include "base/error.h"
#include "namespaces.pb.h"

namespace cryo::ns {

// Reads the IPC namespace the caller is in.
Result<image::IpcNamespace> read_ipc_namespace();

// Fills the (new, empty) IPC namespace the caller is in. Everything but
// kernel/shm_rmid_forced, which would destroy the segments when the
// creating helper exits: write_shm_rmid_forced() writes it afterwards.
Result<void> fill_ipc_namespace(const image::IpcNamespace& saved);
Result<void> write_shm_rmid_forced(const image::IpcNamespace& saved);

// Segments of the caller's IPC namespace by id (the ones the tree
// attached), each with its content.
Result<void> read_shared_memory_segments(const std::set<int>& ids,
                                         google::protobuf::RepeatedPtrField<image::SysvSharedMemory>& out);

// A segment of cryo's own IPC namespace the tree attached: kept if it is
// still there with its key and size (a restore on the same machine: the
// content is what it is now, it may be shared with others), else made
// again with its id, key, content and mode; an id taken by another
// segment is an error naming both. True if it was made again.
Result<bool> restore_host_segment(const image::SysvSharedMemory& saved);

// IPC_RMID, for segments that were marked removed while still attached.
Result<void> remove_segment(int id);

// The values of every semaphore set of the caller's IPC namespace, by id
// (best effort: empty where they cannot be read).
using SemaphoreValues = std::map<int, std::vector<unsigned short>>;
SemaphoreValues read_semaphore_values();

// After the dumped tree was killed: a warning for each set whose values
// changed since `before`. Undo entries (semop with SEM_UNDO) are not
// visible, but the kernel applies them when the process dies, so a set
// of cryo's namespace changes under the checkpoint: a restore on this
// machine finds the new values (another process's semop in between shows
// up the same way).
void warn_changed_semaphores(const SemaphoreValues& before);

// The sysctl files (under /proc/sys) that belong to an IPC namespace:
// the only names a checkpoint may carry.
bool is_ipc_sysctl(std::string_view name);

} // namespace cryo::ns
