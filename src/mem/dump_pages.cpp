// Page scanning and copying; see dump_pages.h.
#include "mem/dump_pages.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>

#include "base/syscalls.h"
#include "mem/memory_reader.h"
#include "mem/page_writer.h"
#include "mem/vmas.h"

namespace cryo::mem {

namespace {

constexpr size_t kScanBatch = 1024;            // regions per PAGEMAP_SCAN call
constexpr size_t kCopyBuffer = 8ull << 20;     // bytes per write to the page file
constexpr size_t kCopyBuffers = 3;              // one filling, one writing, one ready
// Bytes per read of the process's memory: each piece is checksummed as soon
// as it is read, while it is still in the CPU's cache.
constexpr size_t kCopyPiece = 1ull << 20;

} // namespace

void append_scanned_region(std::vector<PageRange>& ranges, uint64_t start, uint64_t end)
{
    if (!ranges.empty())
        start = std::max(start, ranges.back().end);
    if (start >= end)
        return;
    if (!ranges.empty() && ranges.back().end == start)
        ranges.back().end = end;
    else
        ranges.push_back({ start, end });
}

Result<std::vector<PageRange>> scan_pages(int pagemap_fd, PagemapScanArgs args)
{
    args.size = sizeof(args);
    std::vector<PageRegion> regions(kScanBatch);
    std::vector<PageRange> ranges;
    while (args.start < args.end) {
        args.vec = reinterpret_cast<uint64_t>(regions.data());
        args.vec_len = regions.size();
        long found = ::ioctl(pagemap_fd, kPagemapScanIoctl, &args);
        if (found < 0)
            return fail_errno(fmt::format("PAGEMAP_SCAN {:#x}-{:#x}", args.start, args.end));
        for (long i = 0; i < found; ++i)
            append_scanned_region(ranges, regions[i].start, regions[i].end);
        if (args.walk_end <= args.start)
            break;
        args.start = args.walk_end;
    }
    return ranges;
}

Result<std::vector<PageRange>> scan_stored_pages(int pagemap_fd, const image::Vma& vma)
{
    using namespace page_category;
    PagemapScanArgs args {};
    args.start = vma.start();
    args.end = vma.end();
    args.category_anyof_mask = kPresent | kSwapped;
    if (vma.kind() != image::VMA_KIND_SHARED_ANONYMOUS && vma.kind() != image::VMA_KIND_SECRET) {
        // Private memory: leave out file pages and the zero page.
        args.category_inverted = kFile | kPfnZero;
        args.category_mask = kFile | kPfnZero;
    }
    args.return_mask = kPresent | kSwapped;
    return scan_pages(pagemap_fd, args);
}

Result<void> dump_pages(pid_t pid, std::vector<image::Vma>& vmas, image::OutputFile& pages, image::PageMap& map,
                        PageBuffers& buffers)
{
    auto reader = TRY(MemoryReader::open(pid));
    // Page data is written once and not read back by the dump: from the
    // second buffer on, bypass the page cache where the filesystem allows
    // it (every write is whole, aligned pages from a page-aligned buffer).
    // Not when the file is compressed or encrypted: what reaches it is then
    // neither. A small process's pages (less than a buffer) go through the
    // page cache: an O_DIRECT write waits for the disk, per process, where
    // the commit's writeback covers every small file at once.
    auto bypass_cache = [&, done = false]() mutable {
        if (done || !pages.is_raw())
            return;
        done = true;
        if (int flags = ::fcntl(pages.fd(), F_GETFL); flags >= 0)
            (void)::fcntl(pages.fd(), F_SETFL, flags | O_DIRECT);
    };
    // Reading the memory (this thread) and writing the file (the writer's)
    // overlap.
    auto writer = TRY(PageFileWriter::start(pages, kCopyBuffer, kCopyBuffers, buffers));
    uint64_t offset = pages.size();   // of the next byte handed to the writer
    std::span<std::byte> buffer = TRY(writer->take());
    size_t filled = 0;

    for (auto& vma : vmas) {
        if (!stores_pages(vma))
            continue;
        auto ranges = TRY_CTX(scan_stored_pages(reader.pagemap_fd(), vma), "pid {}", pid);
        uint64_t stored = 0;
        for (const auto& range : ranges) {
            auto* run = map.add_runs();
            run->set_address(range.start);
            run->set_page_count((range.end - range.start) / kPageSize);
            run->set_file_offset(offset + filled);
            for (uint64_t address = range.start; address < range.end;) {
                size_t chunk = std::min<uint64_t>({ range.end - address, buffer.size() - filled, kCopyPiece });
                TRY(reader.copy(address, buffer.subspan(filled, chunk)));
                filled += chunk;
                writer->filled(filled);
                address += chunk;
                if (filled == buffer.size()) {
                    bypass_cache();
                    writer->submit(filled);
                    offset += filled;
                    filled = 0;
                    buffer = TRY(writer->take());
                }
            }
            stored += range.end - range.start;
        }
        vma.set_stored_bytes(stored);
    }
    writer->submit(filled);
    return writer->finish();
}

} // namespace cryo::mem
