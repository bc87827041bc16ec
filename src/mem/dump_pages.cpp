// Page scanning and copying; see dump_pages.h.
#include "mem/dump_pages.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include <algorithm>

#include "base/syscalls.h"
#include "mem/page_writer.h"
#include "mem/vmas.h"

namespace cryo::mem {

namespace {

constexpr size_t kScanBatch = 1024;            // regions per PAGEMAP_SCAN call
constexpr size_t kCopyBuffer = 8ull << 20;     // bytes per write to the page file
constexpr size_t kCopyBuffers = 3;              // one filling, one writing, one ready

// Pages are read with process_vm_readv() (one copy, the pages looked up a
// thousand at a time) where the pagemap says every page of the chunk is
// present and mapped by this process alone; through /proc/PID/mem (a copy
// into a kernel page, then one to cryo, a lookup per page) otherwise.
// process_vm_readv() pins the pages (FOLL_PIN), and pinning a page shared
// copy-on-write with another process makes the kernel unshare it: dumping a
// tree (or with --leave-running) would silently double its memory, and the
// frames compared by mem/cow.h would change. A page mapped once is not
// copied by that (the kernel only marks it exclusive again). /proc/PID/mem
// also reaches swapped-out pages, which process_vm_readv() would have to
// fault in anyway.
constexpr uint64_t kPagemapPresent = 1ull << 63;
constexpr uint64_t kPagemapExclusive = 1ull << 56;

struct MemoryReader {
    pid_t pid;
    int mem_fd;
    int pagemap_fd;
    std::vector<uint64_t> entries;

    bool mapped_once(uint64_t address, size_t length)
    {
        entries.resize(length / kPageSize);
        auto bytes = std::as_writable_bytes(std::span(entries));
        ssize_t got = ::pread(pagemap_fd, bytes.data(), bytes.size(), static_cast<off_t>(address / kPageSize * 8));
        if (got != static_cast<ssize_t>(bytes.size()))
            return false;
        return std::ranges::all_of(entries, [](uint64_t entry) {
            return (entry & (kPagemapPresent | kPagemapExclusive)) == (kPagemapPresent | kPagemapExclusive);
        });
    }

    Result<void> copy(uint64_t address, std::span<std::byte> out)
    {
        if (mapped_once(address, out.size())) {
            iovec local { out.data(), out.size() };
            iovec remote { reinterpret_cast<void*>(address), out.size() };
            if (::process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(out.size()))
                return {};
        }
        return pread_exact(mem_fd, out, address, fmt::format("memory of pid {}", pid));
    }
};

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
    auto pagemap = TRY(open_file(fmt::format("/proc/{}/pagemap", pid), O_RDONLY | O_CLOEXEC));
    auto memory = TRY(open_file(fmt::format("/proc/{}/mem", pid), O_RDONLY | O_CLOEXEC));
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
    MemoryReader reader { .pid = pid, .mem_fd = memory.get(), .pagemap_fd = pagemap.get() };

    for (auto& vma : vmas) {
        if (!stores_pages(vma))
            continue;
        auto ranges = TRY_CTX(scan_stored_pages(pagemap.get(), vma), "pid {}", pid);
        uint64_t stored = 0;
        for (const auto& range : ranges) {
            auto* run = map.add_runs();
            run->set_address(range.start);
            run->set_page_count((range.end - range.start) / kPageSize);
            run->set_file_offset(offset + filled);
            for (uint64_t address = range.start; address < range.end;) {
                size_t chunk = std::min<uint64_t>(range.end - address, buffer.size() - filled);
                TRY(reader.copy(address, buffer.subspan(filled, chunk)));
                filled += chunk;
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
