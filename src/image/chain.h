// The chain of checkpoints behind an incremental one.
//
// `cryo pre-dump` and `cryo dump --prev-images-dir` write checkpoints whose
// page maps may say "these pages are in the page file of the Nth
// checkpoint up the chain" (PageRun.ancestor) instead of storing them
// again. Each manifest names its parent by a path relative to its own
// directory and records the XXH3-64 of the parent's manifest file as it
// was, so a parent that was replaced or rewritten since is refused. Every
// ancestor is opened and fully verified (every file's size and checksum)
// before anything is restored from the chain; a lazy restore verifies
// their metadata only and checks their page files chunk by chunk as it
// reads them (ManifestFile.chunk_xxh3, lazy/page_source.h), as it does for
// the last checkpoint's own.
//
// A lazy restore from a page server (lazy/remote.h) fetches the ancestors
// into the directory it restores, each inside its child as
// `fetched-parent/`, manifests unchanged: a checkpoint whose directory
// holds `fetched-parent/` takes its parent from there instead of the path
// its manifest names, so the chain resolves without rewriting anything
// (the recorded manifest checksums still hold).
//
// `cryo dedup` (image/dedup.h) thins out the page files of the ancestors
// for the newest checkpoint and records that in their manifests
// (Manifest.deduped_by): such an ancestor still serves the chain it was
// thinned for, but cannot be restored itself nor be the parent of a new
// dump.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "image/reader.h"
#include "manifest.pb.h"
#include "mm.pb.h"

namespace cryo::image {

// The plan of a `cryo dedup` in progress, in the newest checkpoint of the
// chain (image/dedup.h); while it is there the chain is refused.
inline constexpr std::string_view kDedupJournalName = "dedup-journal.img";

// A chain longer than this is refused (and a cycle is caught by it).
inline constexpr size_t kMaxChainDepth = 32;

// Where a fetched parent is kept, inside its child (see above).
inline constexpr std::string_view kFetchedParentName = "fetched-parent";
// The path of fetched ancestor N (>= 1) relative to the last checkpoint:
// "fetched-parent" for the parent, "fetched-parent/fetched-parent" for its
// parent, ...
std::string fetched_ancestor_path(size_t n);

// What ParentChain::open checks of each ancestor besides the links.
enum class ChainVerify {
    Everything,          // every file whole (a restore, dedup, check)
    ChunkedPagesLater,   // page files with chunk checksums left to the reader (lazy restore)
    MetadataOnly,        // no page file (fetched from a page server that verified them, with holes)
    LinksOnly,           // nothing but the manifests' checksums (files verified elsewhere)
};

// A page file a lazy restore checks chunk by chunk as it reads it instead
// of whole up front: stored as written (not compressed, not sealed) with
// a chunk table (`cryo dedup` drops it from the files it punches).
bool verified_by_chunks(const ImageReader& reader, const ManifestFile& record);

class ParentChain {
public:
    // Opens and verifies every ancestor of the checkpoint in `directory`
    // whose manifest is `manifest` (none when it has no parent).
    static Result<ParentChain> open(const std::string& directory, const Manifest& manifest,
                                    ChainVerify verify = ChainVerify::Everything);

    // How many ancestors there are.
    size_t depth() const { return m_readers.size(); }
    // The Nth ancestor, N >= 1 (1 is the parent).
    const ImageReader& ancestor(size_t n) const { return m_readers.at(n - 1); }

private:
    std::vector<ImageReader> m_readers;
};

// The page files of the ancestors that the runs of one process's page map
// refer to: [N - 1] for ancestor N (an invalid fd and size 0 where no run
// refers to it). An ancestor beyond the chain is left out, so
// check_page_map() refuses the run.
struct AncestorPageFiles {
    std::vector<UniqueFd> files;
    std::vector<uint64_t> sizes;
};
Result<AncestorPageFiles> open_ancestor_page_files(const ParentChain& chain, const PageMap& map, int pid);

// The parent of the checkpoint in `child` whose manifest is
// `child_manifest` (which has one), as a path usable from here (its
// fetched-parent/ when it has one), once its
// manifest is found to be the one the child recorded. Errors name the child
// and the parent, and say so when the parent was deduplicated for another
// checkpoint since.
Result<std::string> checked_parent(const std::string& child, const Manifest& child_manifest);

// Refuses a checkpoint that `cryo dedup` thinned out for a later one, as
// the target of `what` ("restore", "--prev-images-dir").
Result<void> refuse_deduped(const std::string& directory, const Manifest& manifest, std::string_view what);

// Refuses the chain of the checkpoint in `directory` while the journal of
// an interrupted `cryo dedup` is there, saying how to finish it.
Result<void> refuse_interrupted_dedup(const std::string& directory);

// `parent` (as a manifest or --prev-images-dir gives it: relative to
// `directory`, or absolute) as a path usable from here.
std::string resolve_parent(const std::string& directory, const std::string& parent);

// The XXH3-64 of the manifest file of the checkpoint in `directory`.
Result<uint64_t> manifest_checksum(const std::string& directory);

} // namespace cryo::image
