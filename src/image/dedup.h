// `cryo dedup -D DIR` and `dump/pre-dump --auto-dedup`: a chain of
// incremental checkpoints takes no more disk than its newest one needs.
//
// Each pre-dump round stores the pages written since the previous round,
// so a page written in every round sits in every page file of the chain
// although only its newest copy is ever restored. The newest checkpoint's
// page maps say exactly which bytes of which ancestor's page file it reads
// (runs with `ancestor` N, at file_offset). Every other page an ancestor
// stored for its own page map is punched out of its page file
// (fallocate(PUNCH_HOLE | KEEP_SIZE): offsets stay valid, the blocks are
// freed; what is punched reads as zeros). Nothing else of a page file is
// touched (memfd and deleted-file content that a full dump keeps there is
// not described by runs, and is left alone).
//
// Checksums stay true: each ancestor gets a new manifest with the
// checksums its page files will have once punched (hashed beforehand, the
// ranges to punch read as zeros), `deduped_by` (the newest checkpoint,
// relative to the ancestor) and the checksum of its parent's new manifest
// (so they are made oldest first); the newest checkpoint's manifest gets
// its parent's. An ancestor so marked is refused as a restore target and
// as the --prev-images-dir of a new dump; the newest checkpoint (and any
// later one made on top of it) restores as before.
//
// Order, so that an interruption loses nothing: the whole chain is
// verified (every file's size and checksum, every parent link) and the
// plan made; the plan (holes and new manifests) is written into the newest
// checkpoint as dedup-journal.img (atomically, fsynced); the holes are
// punched, then the manifests replaced (temporary file, fsync, rename,
// fsync of the directory), oldest first, the newest last; the journal is
// removed. While a journal is there the chain is refused with the way out:
// `cryo dedup -D NEWEST` again, which punches the planned holes again
// (idempotent), writes the planned manifests and verifies the whole chain.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"

namespace cryo::image {

struct DedupedCheckpoint {
    std::string directory;
    uint64_t punched_bytes { 0 };   // page data it does not need: holes now (some may have been before)
    // Disk its page files use (allocated blocks), before and after.
    uint64_t disk_before { 0 };
    uint64_t disk_after { 0 };
};

struct DedupResult {
    std::vector<DedupedCheckpoint> ancestors;   // parent first
    uint64_t punched_bytes { 0 };
};

// Thins out the ancestors of the checkpoint in `directory` for it (see
// above). A checkpoint without a parent has nothing to do.
Result<DedupResult> dedup_chain(const std::string& directory);

// `cryo dedup`: dedup_chain() and one line per ancestor on stdout.
Result<void> run_dedup(const std::string& directory);

} // namespace cryo::image
