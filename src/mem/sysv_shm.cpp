// Attachments of System V shared memory; see sysv_shm.h.
#include "mem/sysv_shm.h"

#include <sys/mman.h>
#include <sys/shm.h>

#include <algorithm>

namespace cryo::mem {

namespace {

bool same_attachment(const image::Vma& a, const image::Vma& b)
{
    return a.kind() == image::VMA_KIND_SYSV_SHM && b.kind() == image::VMA_KIND_SYSV_SHM && a.shmem_id() == b.shmem_id()
        && a.start() - a.pgoff() == b.start() - b.pgoff();
}

} // namespace

Result<SysvAttachment> sysv_attachment(const image::MemoryImage& image, const image::Vma& vma)
{
    SysvAttachment attachment;
    attachment.base = vma.start() - vma.pgoff();
    attachment.size = (vma.shmem_size() + 4095) & ~uint64_t { 4095 };
    uint64_t end = attachment.base + attachment.size;
    if (vma.pgoff() > vma.start() || end < attachment.base || vma.end() > end)
        return fail("mapping {:#x}-{:#x}: offset {:#x} and size {} of System V segment {} do not fit", vma.start(),
                    vma.end(), vma.pgoff(), vma.shmem_size(), vma.shmem_id());
    // Read-only unless a part of it may be written; executable if a part is.
    attachment.flags = SHM_REMAP | SHM_RDONLY;
    std::vector<std::pair<uint64_t, uint64_t>> covered;
    for (const auto& other : image.vmas()) {
        if (!same_attachment(vma, other))
            continue;
        covered.emplace_back(other.start(), other.end());
        if (other.may_write())
            attachment.flags &= ~SHM_RDONLY;
        if (other.prot() & PROT_EXEC)
            attachment.flags |= SHM_EXEC;
    }
    std::ranges::sort(covered);
    uint64_t at = attachment.base;
    for (const auto& [start, stop] : covered) {
        if (start > at)
            attachment.holes.emplace_back(at, start);
        at = std::max(at, stop);
    }
    if (at < end)
        attachment.holes.emplace_back(at, end);
    for (const auto& [start, stop] : attachment.holes)
        for (const auto& other : image.vmas())
            if (other.start() < stop && start < other.end())
                return fail("mapping {:#x}-{:#x} of System V segment {}: its attachment spans {:#x}-{:#x}, where the "
                            "process mapped something else: not supported",
                            vma.start(), vma.end(), vma.shmem_id(), other.start(), other.end());
    return attachment;
}

} // namespace cryo::mem
