// UTS and IPC namespaces of the tree: recorded at dump, recreated at
// restore.
//
// A namespace is known by the inode of /proc/PID/ns/uts or ns/ipc. At dump
// each process records the identity of its namespaces that are not cryo's
// own (ProcessEntry.uts_ns, ipc_ns), and each such namespace is read once
// (proto/namespaces.proto) by a short-lived child of cryo that setns()
// into it: the hostname and domain name, or the System V objects and
// sysctls (ns/ipc.h). The dumped processes are not touched.
//
// At restore each namespace of the checkpoint is created and filled by a
// helper child of cryo that unshare()s and then waits; cryo keeps a
// descriptor of the new namespace (/proc/HELPER/ns/KIND), which keeps the
// namespace alive after the helper is gone. Every new process of the tree,
// first thing, setns()es into its namespaces where they differ from its
// parent's (its children inherit them), so processes that shared one
// namespace share one again, however the tree nests them.
#pragma once

#include <sys/types.h>

#include <map>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "namespaces.pb.h"
#include "tree.pb.h"

namespace cryo::ns {

// Fills ProcessEntry.uts_ns and ipc_ns of every process of `tree` (zombies
// take their parent's) and adds each namespace that is not cryo's to
// tree.namespaces with its content, and the System V segments of cryo's
// IPC namespace the tree attached to tree.host_shared_memory.
Result<void> record_namespaces(image::ProcessTree& tree);

// One line about `saved` for `cryo show`: its content in brief and the
// processes of `tree` in it.
std::string describe_namespace(const image::Namespace& saved, const image::ProcessTree& tree);

class NamespaceSet {
public:
    // Creates every namespace of the checkpoint, filled, and the segments
    // of tree.host_shared_memory that are not there any more.
    static Result<NamespaceSet> create(const image::ProcessTree& tree);
    NamespaceSet(NamespaceSet&&) noexcept = default;

    // In a new process of the tree, before anything else: enters the
    // namespaces of `entry` that are not those of `parent` (null for the
    // root, whose parent is cryo).
    Result<void> enter(const image::ProcessEntry& entry, const image::ProcessEntry* parent) const;

    // Once every process attached its System V segments: marks removed
    // (IPC_RMID) again those that were when dumped.
    Result<void> remove_destroyed_segments(const image::ProcessTree& tree) const;
    // The restore succeeded: the segments made in cryo's IPC namespace
    // stay (dropping the set otherwise removes them).
    void keep_segments() { m_host_segments.clear(); }
    ~NamespaceSet();

private:
    NamespaceSet() = default;
    std::map<std::pair<int, uint64_t>, UniqueFd> m_created;   // (kind, id) -> namespace
    std::map<int, UniqueFd> m_own;                            // kind -> cryo's own
    std::vector<int> m_host_segments;   // made in cryo's IPC namespace by this restore
};

} // namespace cryo::ns
