// Attachments of System V shared memory (shmat) in a restored process.
//
// The kernel maps a whole segment per shmat(); munmap() or mprotect() of a
// part later splits it into several VMAs with the same segment and the
// same base (start - offset) and may leave holes. Restore attaches each
// segment once per base with an injected shmat(SHM_REMAP) and unmaps the
// holes again; mprotect() of each VMA comes later with the others. The
// segment itself was made again before (ns/namespaces.h), with its id.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "base/error.h"
#include "mm.pb.h"

namespace cryo::mem {

struct SysvAttachment {
    uint64_t base { 0 };
    uint64_t size { 0 };    // the segment's size, in whole pages
    int flags { 0 };        // SHM_RDONLY, SHM_EXEC, SHM_REMAP
    std::vector<std::pair<uint64_t, uint64_t>> holes;   // [start, end) no VMA of it covers
};

// The attachment `vma` (VMA_KIND_SYSV_SHM) belongs to in `image`. Refused
// when another mapping lies in one of its holes: shmat() would replace it.
Result<SysvAttachment> sysv_attachment(const image::MemoryImage& image, const image::Vma& vma);

} // namespace cryo::mem
