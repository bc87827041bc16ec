// Verifying a page file while loading it into the memory it belongs in.
//
// A restore must refuse a damaged checkpoint before any process exists, so
// every page file is read once, whole, to check its checksum. Read into a
// buffer and thrown away, that pass costs as long as the disk takes; then
// the pages are read again (from the page cache) into the new process, and
// every first touch of its memory takes a page fault: the two costs add up.
//
// Instead, cryo maps each private anonymous VMA of the image that holds
// pages at its own address in cryo itself (where that range is free there),
// populates it (MADV_POPULATE_WRITE: page allocation without a fault per
// page, on a thread of its own that stays a few pieces ahead) and reads the
// page file's runs straight into it (O_DIRECT unless the file is mostly in
// the page cache already) while a third thread hashes them, in file order:
// allocating, reading and hashing overlap. The file's checksum is known at the end of
// that pass, before any process is created; a mismatch unmaps everything.
// The processes are then cloned from cryo, so each restorer inherits its
// memory, already filled, at the right address (copy-on-write, no copy: cryo
// unmaps its side right after), keeps it as a "materialized" VMA and
// unmaps what belongs to other processes (restore/restorer.cpp). Bytes of
// the file outside those VMAs (other mappings, memfd contents) are hashed
// through a buffer and read into the process later, as before.
//
// A VMA is left to the ordinary path when its range is taken in cryo or lies
// where cryo's stack may grow, when it grows down (a stack), when it is
// shared copy-on-write with a parent or a child (mem/cow.h handles those),
// when one of its runs is in an ancestor's page file (an incremental
// checkpoint, image/chain.h), and every VMA of a process whose own runs
// overlap in the page file (no valid dump writes that). Transformed page
// files (compressed or sealed) are not loaded here at all: their checksum
// covers the stored bytes, which are verified as stored (restore/restore.cpp).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "mm.pb.h"

namespace cryo::mem {

struct PrefilledVma {
    size_t process;   // index of the owner in the restore plan
    uint64_t start;
    uint64_t end;
};

class Prefill {
public:
    Prefill() = default;
    Prefill(Prefill&& other) noexcept : m_vmas(std::exchange(other.m_vmas, {})), m_bytes(other.m_bytes) { }
    Prefill& operator=(Prefill&&) = delete;
    ~Prefill() { unmap(); }

    struct PageFile {
        int fd;
        std::string path;      // for errors
        uint64_t size;
        uint64_t xxh3;         // from the manifest
    };
    // Checks `file`'s checksum, loading the pages of the VMAs of `memory`
    // that `eligible` accepts into cryo's memory on the way.
    template <typename Eligible>
    Result<void> load(size_t process, const PageFile& file, const image::MemoryImage& memory,
                      const image::PageMap& map, Eligible&& eligible)
    {
        std::vector<const image::Vma*> candidates;
        for (const auto& vma : memory.vmas())
            if (eligible(vma))
                candidates.push_back(&vma);
        return load_candidates(process, file, candidates, map);
    }

    const std::vector<PrefilledVma>& vmas() const { return m_vmas; }
    // Bytes of page data loaded into place.
    uint64_t bytes() const { return m_bytes; }
    // Cryo's own mappings go, once the processes inherited them.
    void unmap();

private:
    Result<void> load_candidates(size_t process, const PageFile& file, const std::vector<const image::Vma*>& candidates,
                                 const image::PageMap& map);

    std::vector<PrefilledVma> m_vmas;
    uint64_t m_bytes { 0 };
};

} // namespace cryo::mem
