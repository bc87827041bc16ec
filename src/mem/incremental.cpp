// Incremental page dumps; see incremental.h.
#include "mem/incremental.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/syscalls.h"
#include "mem/copy_buffer.h"
#include "mem/vmas.h"

namespace cryo::mem {

namespace {

constexpr size_t kCopyBuffer = 16ull << 20;

// Where the parent chain has a page: walked with increasing addresses.
class ParentLookup {
public:
    explicit ParentLookup(const image::PageMap* map)
    {
        if (!map)
            return;
        for (const auto& run : map->runs())
            m_runs.push_back(&run);
        std::ranges::sort(m_runs, {}, [](const image::PageRun* run) { return run->address(); });
    }
    // The run holding `address`, or null. Addresses must not decrease.
    const image::PageRun* find(uint64_t address)
    {
        while (m_next < m_runs.size() && end(*m_runs[m_next]) <= address)
            ++m_next;
        if (m_next < m_runs.size() && m_runs[m_next]->address() <= address)
            return m_runs[m_next];
        return nullptr;
    }

private:
    static uint64_t end(const image::PageRun& run) { return run.address() + run.page_count() * kPageSize; }
    std::vector<const image::PageRun*> m_runs;
    size_t m_next { 0 };
};

// Whether a page lies in sorted ranges: walked with increasing addresses.
class RangeCursor {
public:
    explicit RangeCursor(const std::vector<PageRange>& ranges) : m_ranges(ranges) { }
    bool contains(uint64_t address)
    {
        while (m_next < m_ranges.size() && m_ranges[m_next].end <= address)
            ++m_next;
        return m_next < m_ranges.size() && m_ranges[m_next].start <= address;
    }

private:
    const std::vector<PageRange>& m_ranges;
    size_t m_next { 0 };
};

// Appends runs to the page map, merging a page into the last run when it
// continues it (same place, next address, next file offset).
class RunBuilder {
public:
    RunBuilder(image::PageMap& map, uint64_t base_offset, PagePlan& plan)
        : m_map(map), m_offset(base_offset), m_plan(plan) { }

    void store(uint64_t address)
    {
        if (!extend(address, 0, m_offset))
            add(address, 0, m_offset);
        if (!m_plan.copies.empty() && m_plan.copies.back().address + m_plan.copies.back().length == address)
            m_plan.copies.back().length += kPageSize;
        else
            m_plan.copies.push_back({ address, kPageSize });
        m_offset += kPageSize;
        m_plan.stored_bytes += kPageSize;
    }

    // Runs never cross a mapping (restore checks each lies in one).
    void next_vma() { m_first_run = m_map.runs_size(); }

    void from_parent(uint64_t address, const image::PageRun& parent)
    {
        uint32_t ancestor = parent.ancestor() + 1;
        uint64_t offset = parent.file_offset() + (address - parent.address());
        if (!extend(address, ancestor, offset))
            add(address, ancestor, offset);
        m_plan.parent_bytes += kPageSize;
    }

private:
    bool extend(uint64_t address, uint32_t ancestor, uint64_t offset)
    {
        if (m_map.runs_size() == 0 || m_map.runs_size() <= m_first_run)
            return false;
        auto& last = *m_map.mutable_runs(m_map.runs_size() - 1);
        uint64_t length = last.page_count() * kPageSize;
        if (last.ancestor() != ancestor || last.address() + length != address || last.file_offset() + length != offset)
            return false;
        last.set_page_count(last.page_count() + 1);
        return true;
    }
    void add(uint64_t address, uint32_t ancestor, uint64_t offset)
    {
        auto* run = m_map.add_runs();
        run->set_address(address);
        run->set_page_count(1);
        run->set_file_offset(offset);
        run->set_ancestor(ancestor);
    }

    image::PageMap& m_map;
    uint64_t m_offset;
    PagePlan& m_plan;
    int m_first_run { m_map.runs_size() };   // runs before this call are not ours to extend
};

// Reads [address, address + out.size()) of a running process; what cannot
// be read any more reads as zeros (see copy_planned_pages()).
void read_running(int mem_fd, uint64_t address, std::span<std::byte> out)
{
    ssize_t got = ::pread(mem_fd, out.data(), out.size(), static_cast<off_t>(address));
    if (got == static_cast<ssize_t>(out.size()))
        return;
    for (size_t offset = 0; offset < out.size(); offset += kPageSize) {
        auto page = out.subspan(offset, kPageSize);
        if (::pread(mem_fd, page.data(), page.size(), static_cast<off_t>(address + offset)) != static_cast<ssize_t>(page.size()))
            std::memset(page.data(), 0, page.size());
    }
}

} // namespace

Result<PagePlan> plan_pages(pid_t pid, std::vector<image::Vma>& vmas, const IncrementalSource& source,
                            uint64_t base_offset, image::PageMap& map)
{
    auto pagemap = TRY(open_file(fmt::format("/proc/{}/pagemap", pid), O_RDONLY | O_CLOEXEC));
    PagePlan plan;
    RunBuilder runs(map, base_offset, plan);
    ParentLookup parent(source.parent_map);
    for (auto& vma : vmas) {
        if (!stores_pages(vma))
            continue;
        auto present = TRY_CTX(scan_stored_pages(pagemap.get(), vma), "pid {}", pid);
        std::optional<std::vector<PageRange>> written;
        if (source.tracking && trackable(vma)) {
            written = TRY(source.tracking->take_written(pagemap.get(), vma.start(), vma.end()));
            // Not tracked (new since, or never armed): stored in full now,
            // and tracked from now on.
            if (!written && source.arm_untracked)
                source.tracking->track(vma);
        }
        std::vector<PageRange> none;
        RangeCursor was_written(written ? *written : none);
        uint64_t before = plan.stored_bytes + plan.parent_bytes;
        runs.next_vma();
        for (const auto& range : present) {
            for (uint64_t page = range.start; page < range.end; page += kPageSize) {
                const image::PageRun* in_parent = nullptr;
                if (written && !was_written.contains(page))
                    in_parent = parent.find(page);
                if (in_parent)
                    runs.from_parent(page, *in_parent);
                else
                    runs.store(page);
            }
        }
        if (written)
            plan.tracked_bytes += vma.end() - vma.start();
        vma.set_stored_bytes(plan.stored_bytes + plan.parent_bytes - before);
    }
    return plan;
}

namespace {

// Reads the copies into `out` with process_vm_readv() calls
// of up to IOV_MAX stretches; what one call does not read completely is
// read again through /proc/PID/mem.
Result<void> read_scattered(pid_t pid, int mem_fd, std::span<const PageCopy> copies, std::byte* out)
{
    constexpr size_t kMaxIovecs = 1024;
    std::vector<iovec> local;
    std::vector<iovec> remote;
    for (size_t first = 0; first < copies.size(); first += kMaxIovecs) {
        auto batch = copies.subspan(first, std::min(kMaxIovecs, copies.size() - first));
        local.clear();
        remote.clear();
        size_t bytes = 0;
        std::byte* start = out;
        for (const auto& copy : batch) {
            local.push_back({ out, copy.length });
            remote.push_back({ reinterpret_cast<void*>(copy.address), copy.length });
            out += copy.length;
            bytes += copy.length;
        }
        ssize_t got = ::process_vm_readv(pid, local.data(), local.size(), remote.data(), remote.size(), 0);
        if (got == static_cast<ssize_t>(bytes))
            continue;
        for (const auto& copy : batch) {
            TRY(pread_exact(mem_fd, std::span(start, copy.length), copy.address, fmt::format("memory of pid {}", pid)));
            start += copy.length;
        }
    }
    return {};
}

} // namespace

Result<void> copy_planned_pages(pid_t pid, const PagePlan& plan, image::OutputFile& pages, Target target)
{
    auto memory = TRY(open_file(fmt::format("/proc/{}/mem", pid), O_RDONLY | O_CLOEXEC));
    auto buffer = TRY(CopyBuffer::create(kCopyBuffer));
    // Whole aligned pages from an aligned buffer: the page cache can be
    // bypassed, as for a full dump.
    if (int flags = ::fcntl(pages.fd(), F_GETFL); flags >= 0)
        (void)::fcntl(pages.fd(), F_SETFL, flags | O_DIRECT);
    size_t filled = 0;
    if (target == Target::FrozenToBeKilled) {
        // Stretches that fit in the buffer, in batches.
        std::span<const PageCopy> copies(plan.copies);
        while (!copies.empty()) {
            size_t count = 0;
            size_t bytes = 0;
            while (count < copies.size() && bytes + copies[count].length <= buffer.size())
                bytes += copies[count++].length;
            if (count == 0)
                break;   // a stretch larger than the buffer: the loop below
            TRY(read_scattered(pid, memory.get(), copies.first(count), buffer.data()));
            TRY(pages.write(std::span(buffer.data(), bytes)));
            copies = copies.subspan(count);
        }
        PagePlan rest;
        rest.copies.assign(copies.begin(), copies.end());
        return copy_planned_pages(pid, rest, pages, Target::Frozen);
    }
    auto what = fmt::format("memory of pid {}", pid);
    for (const auto& copy : plan.copies) {
        for (uint64_t done = 0; done < copy.length;) {
            size_t chunk = std::min<uint64_t>(copy.length - done, buffer.size() - filled);
            std::span out(buffer.data() + filled, chunk);
            if (target == Target::Running)
                read_running(memory.get(), copy.address + done, out);
            else
                TRY(pread_exact(memory.get(), out, copy.address + done, what));
            filled += chunk;
            done += chunk;
            if (filled == buffer.size()) {
                TRY(pages.write(std::span(buffer.data(), filled)));
                filled = 0;
            }
        }
    }
    if (filled > 0)
        TRY(pages.write(std::span(buffer.data(), filled)));
    return {};
}

} // namespace cryo::mem
