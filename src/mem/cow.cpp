// See cow.h.
#include "mem/cow.h"

#include <fcntl.h>

#include <vector>

#include "base/fd.h"
#include "base/syscalls.h"

namespace cryo::mem {

namespace {

constexpr uint64_t kPresent = 1ull << 63;
constexpr uint64_t kPfnMask = (1ull << 55) - 1;

Result<std::vector<uint64_t>> read_pagemap(int fd, uint64_t start, uint64_t end, pid_t pid)
{
    std::vector<uint64_t> entries((end - start) / kPageSize);
    TRY(pread_exact(fd, std::as_writable_bytes(std::span(entries)), start / kPageSize * sizeof(uint64_t),
                    fmt::format("/proc/{}/pagemap", pid)));
    return entries;
}

const image::Vma* same_range(const image::Vma& vma, const image::MemoryImage& memory)
{
    for (const auto& other : memory.vmas())
        if (other.start() == vma.start() && other.end() == vma.end())
            return &other;
    return nullptr;
}

} // namespace

bool inheritable(const image::Vma& child_vma, const image::MemoryImage& parent_memory)
{
    bool file = child_vma.kind() == image::VMA_KIND_FILE_PRIVATE;
    if ((child_vma.kind() != image::VMA_KIND_ANONYMOUS && !file) || child_vma.grows_down() || child_vma.dont_fork())
        return false;
    const auto* parent_vma = same_range(child_vma, parent_memory);
    if (!parent_vma || parent_vma->kind() != child_vma.kind() || parent_vma->grows_down() || parent_vma->dont_fork()
        || parent_vma->wipe_on_fork())
        return false;
    // A private mapping of one file at one offset: its stored pages are
    // the anonymous copies of written pages (the file's own are not
    // stored), shared after fork like any private page.
    return !file
        || (parent_vma->path() == child_vma.path() && parent_vma->device() == child_vma.device()
            && parent_vma->inode() == child_vma.inode() && parent_vma->pgoff() == child_vma.pgoff());
}

Result<void> mark_shared_with_parent(pid_t child, pid_t parent, image::MemoryImage& child_memory,
                                     const image::MemoryImage& parent_memory, image::PageMap& child_map)
{
    auto child_fd = TRY(open_file(fmt::format("/proc/{}/pagemap", child), O_RDONLY | O_CLOEXEC));
    auto parent_fd = TRY(open_file(fmt::format("/proc/{}/pagemap", parent), O_RDONLY | O_CLOEXEC));
    google::protobuf::RepeatedPtrField<image::PageRun> runs;
    size_t vma_index = 0;
    auto& vmas = *child_memory.mutable_vmas();
    for (const auto& run : child_map.runs()) {
        uint64_t run_end = run.address() + run.page_count() * kPageSize;
        while (vma_index < static_cast<size_t>(vmas.size()) && vmas[static_cast<int>(vma_index)].end() <= run.address())
            ++vma_index;
        auto* vma = vma_index < static_cast<size_t>(vmas.size()) ? &vmas[static_cast<int>(vma_index)] : nullptr;
        if (!vma || vma->start() > run.address() || !inheritable(*vma, parent_memory)) {
            *runs.Add() = run;
            continue;
        }
        auto mine = TRY(read_pagemap(child_fd.get(), run.address(), run_end, child));
        auto theirs = TRY(read_pagemap(parent_fd.get(), run.address(), run_end, parent));
        // Split the run where sharing changes.
        for (size_t page = 0; page < mine.size();) {
            auto shared = [&](size_t i) {
                return (mine[i] & kPresent) && (theirs[i] & kPresent) && (mine[i] & kPfnMask) != 0
                    && (mine[i] & kPfnMask) == (theirs[i] & kPfnMask);
            };
            bool state = shared(page);
            size_t end = page;
            while (end < mine.size() && shared(end) == state)
                ++end;
            auto* piece = runs.Add();
            piece->set_address(run.address() + page * kPageSize);
            piece->set_page_count(end - page);
            piece->set_file_offset(run.file_offset() + page * kPageSize);
            piece->set_ancestor(run.ancestor());
            piece->set_same_as_parent(state);
            if (state)
                vma->set_shares_with_parent(true);
            page = end;
        }
    }
    *child_map.mutable_runs() = std::move(runs);
    return {};
}

} // namespace cryo::mem
