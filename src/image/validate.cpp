// See validate.h.
#include "image/validate.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "base/syscalls.h"

namespace cryo::image {

namespace {

using Range = std::pair<uint64_t, uint64_t>;   // [first, second)

std::vector<Range> sorted_mappings(const MemoryImage& memory)
{
    std::vector<Range> ranges;
    ranges.reserve(static_cast<size_t>(memory.vmas_size()));
    for (const auto& vma : memory.vmas())
        ranges.emplace_back(vma.start(), vma.end());
    std::ranges::sort(ranges);
    return ranges;
}

std::string describe_run(int index, const PageRun& run)
{
    return fmt::format("run {} ({:#x}, {} pages at offset {:#x})", index, run.address(), run.page_count(),
                       run.file_offset());
}

} // namespace

Result<void> check_mappings(const MemoryImage& memory)
{
    for (const auto& vma : memory.vmas())
        if (vma.start() >= vma.end() || vma.start() % kPageSize || vma.end() % kPageSize)
            return fail("invalid mapping {:#x}-{:#x}", vma.start(), vma.end());
    auto ranges = sorted_mappings(memory);
    for (size_t i = 1; i < ranges.size(); ++i)
        if (ranges[i].first < ranges[i - 1].second)
            return fail("mappings {:#x}-{:#x} and {:#x}-{:#x} overlap", ranges[i - 1].first, ranges[i - 1].second,
                        ranges[i].first, ranges[i].second);
    return {};
}

Result<void> check_page_map(const PageMap& map, std::string_view page_file, uint64_t page_file_size,
                            std::span<const uint64_t> ancestor_sizes)
{
    std::vector<std::pair<Range, int>> runs;
    runs.reserve(static_cast<size_t>(map.runs_size()));
    for (int i = 0; i < map.runs_size(); ++i) {
        const auto& run = map.runs(i);
        if (run.address() % kPageSize || run.page_count() == 0 || run.address() >= kUserAddressLimit
            || run.page_count() > (kUserAddressLimit - run.address()) / kPageSize)
            return fail("{}: not a valid range of pages", describe_run(i, run));
        uint64_t bytes = run.page_count() * kPageSize;
        if (run.ancestor() > ancestor_sizes.size())
            return fail("{}: refers to ancestor checkpoint {}, but {} of them are known", describe_run(i, run),
                        run.ancestor(), ancestor_sizes.size());
        uint64_t size = run.ancestor() == 0 ? page_file_size : ancestor_sizes[run.ancestor() - 1];
        if (run.file_offset() > size || bytes > size - run.file_offset())
            return fail("{}: lies beyond the end of {}{} ({} bytes; truncated?)", describe_run(i, run), page_file,
                        run.ancestor() == 0 ? "" : fmt::format(" of ancestor checkpoint {}", run.ancestor()), size);
        runs.push_back({ { run.address(), run.address() + bytes }, i });
    }
    std::ranges::sort(runs);
    for (size_t i = 1; i < runs.size(); ++i)
        if (runs[i].first.first < runs[i - 1].first.second)
            return fail("runs {} at {:#x} and {} at {:#x} overlap", runs[i - 1].second, runs[i - 1].first.first,
                        runs[i].second, runs[i].first.first);
    return {};
}

Result<void> check_runs_in_mappings(const PageMap& map, const MemoryImage& memory)
{
    auto ranges = sorted_mappings(memory);
    for (int i = 0; i < map.runs_size(); ++i) {
        const auto& run = map.runs(i);
        uint64_t end = run.address() + run.page_count() * kPageSize;
        // The last mapping that starts at or before the run.
        auto after = std::ranges::upper_bound(ranges, run.address(), {}, &Range::first);
        if (after == ranges.begin() || end > std::prev(after)->second)
            return fail("{}: not inside one mapping of the memory image", describe_run(i, run));
    }
    return {};
}

Result<void> check_chain_fields(const Manifest& manifest)
{
    constexpr size_t kMaxPath = 4096;
    for (const auto& [field, value] : { std::pair { "parent", &manifest.parent() }, { "deduped_by", &manifest.deduped_by() } })
        if (value->size() > kMaxPath || value->find('\0') != std::string::npos)
            return fail("{} is not a usable path ({} bytes)", field, value->size());
    if (!manifest.parent().empty() && manifest.parent_manifest_xxh3() == 0)
        return fail("names parent {} without the checksum of its manifest", manifest.parent());
    return {};
}

} // namespace cryo::image
