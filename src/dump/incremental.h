// What `cryo pre-dump` and `cryo dump --prev-images-dir / --track-mem` add
// to a dump: the parent chain, the dirty-page tracking of each process, and
// handing that tracking on to the next command.
//
// Order of use, all while the tree is frozen except the last step:
//   prepare()  opens and verifies the parent chain and takes the
//              userfaultfds over from the parent's tracker process;
//   arm()      gives every process of the frozen tree a userfaultfd (taken
//              over, or created now when tracking is wanted), except those
//              that use userfaultfd themselves (stored in full, said once);
//   plan()     per process: which pages to store, which are in the chain
//              (mem/incremental.h), re-arming the tracking;
//   keep_tracking()  starts a tracker holding the userfaultfds for the next
//              command (pre-dump; dump with --track-mem and
//              --leave-running), and records it in the manifest.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "dump/tree.h"
#include "image/chain.h"
#include "manifest.pb.h"
#include "mem/dirty_tracking.h"
#include "mem/incremental.h"
#include "mm.pb.h"
#include "page_server.pb.h"

namespace cryo::dump {

struct IncrementalOptions {
    std::string directory;        // the checkpoint being written
    std::string parent;           // --prev-images-dir, relative to `directory` (or absolute); may be empty
    bool track { false };         // arm tracking for a later checkpoint
    bool pre_dump { false };
    // The parent as a page server sent it (net/page_client.h); loaded from
    // `parent` here when null.
    const image::ParentCheckpoint* remote_parent { nullptr };
};

// Opens and verifies the checkpoint `parent` (relative to `directory`, or
// absolute) and its chain, and reads what an incremental dump needs of it.
Result<image::ParentCheckpoint> load_parent(const std::string& directory, const std::string& parent);

class IncrementalDump {
public:
    static Result<IncrementalDump> prepare(const IncrementalOptions& options);

    Result<void> arm(FrozenTree& tree);
    // Plans the pages of one process (its VMAs just collected); stored runs
    // start at `base_offset` of its page file.
    Result<mem::PagePlan> plan(pid_t pid, std::vector<image::Vma>& vmas, uint64_t base_offset, image::PageMap& map);
    // Starts the tracker when tracking is wanted and fills the manifest's
    // chain fields.
    Result<void> finish(image::Manifest& manifest, std::chrono::seconds tracker_timeout);

    // The checkpoint that records the tracker is complete: keep it. Until
    // then a failed command makes its tracker exit again.
    void committed() { m_spawned.keep(); }

    bool has_parent() const { return !m_options.parent.empty(); }
    uint64_t parent_bytes() const { return m_parent_bytes; }

private:
    // The tracker this command started; it is told to exit (by taking its
    // descriptors) when dropped before keep().
    class SpawnedTracker {
    public:
        SpawnedTracker() = default;
        SpawnedTracker(SpawnedTracker&& other) noexcept : m_record(std::exchange(other.m_record, std::nullopt)) { }
        SpawnedTracker& operator=(SpawnedTracker&&) = delete;
        ~SpawnedTracker();
        void set(image::DirtyTracker record) { m_record = std::move(record); }
        void keep() { m_record.reset(); }

    private:
        std::optional<image::DirtyTracker> m_record;
    };

    explicit IncrementalDump(IncrementalOptions options) : m_options(std::move(options)) { }

    IncrementalOptions m_options;
    std::optional<image::ParentCheckpoint> m_parent;
    uint64_t m_parent_manifest_xxh3 { 0 };
    std::map<pid_t, UniqueFd> m_taken_over;               // from the parent's tracker
    std::map<pid_t, mem::ProcessTracking> m_tracking;     // this dump's
    std::map<pid_t, UniqueFd> m_pidfds;                   // for the next tracker
    uint64_t m_parent_bytes { 0 };
    SpawnedTracker m_spawned;
};

} // namespace cryo::dump
