// See dedup.h.
#include "image/dedup.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <utility>

#include "base/syscalls.h"
#include "image/chain.h"
#include "image/reader.h"
#include "image/validate.h"
#include "image/writer.h"
#include "tree.pb.h"

namespace cryo::image {

namespace {

using Range = std::pair<uint64_t, uint64_t>;   // [first, second) of a page file
using RangesByFile = std::map<std::string, std::vector<Range>>;

constexpr size_t kHashBuffer = 1 << 20;

// Sorted, overlapping and touching ranges merged.
void normalise(std::vector<Range>& ranges)
{
    std::ranges::sort(ranges);
    std::vector<Range> merged;
    for (const auto& range : ranges) {
        if (!merged.empty() && range.first <= merged.back().second)
            merged.back().second = std::max(merged.back().second, range.second);
        else
            merged.push_back(range);
    }
    ranges = std::move(merged);
}

// `from` without `keep`; both normalised.
std::vector<Range> subtract(const std::vector<Range>& from, const std::vector<Range>& keep)
{
    std::vector<Range> out;
    size_t next = 0;
    for (auto [start, end] : from) {
        while (next < keep.size() && keep[next].second <= start)
            ++next;
        for (size_t i = next; i < keep.size() && keep[i].first < end; ++i) {
            if (keep[i].first > start)
                out.push_back({ start, keep[i].first });
            start = std::max(start, keep[i].second);
        }
        if (start < end)
            out.push_back({ start, end });
    }
    return out;
}

// Calls `visit(pid, page map)` for every process of the checkpoint that has
// a page map (pre-dumps and dumps alike list them in tree.img).
Result<void> for_each_page_map(const ImageReader& reader, const std::function<Result<void>(int, const PageMap&)>& visit)
{
    auto tree = TRY(reader.read<ProcessTree>(std::string(kTreeName), ImageKind::Tree));
    for (const auto& process : tree.processes()) {
        if (!reader.has_file(pagemap_name(process.pid())))
            continue;
        auto map = TRY(reader.read<PageMap>(pagemap_name(process.pid()), ImageKind::PageMap));
        TRY(visit(process.pid(), map));
    }
    return {};
}

// Per ancestor ([N - 1] for ancestor N), the byte ranges of each of its page
// files that the newest checkpoint reads; its page maps are checked as a
// restore checks them first.
Result<std::vector<RangesByFile>> needed_ranges(const ImageReader& newest, const ParentChain& chain)
{
    std::vector<RangesByFile> needed(chain.depth());
    TRY(for_each_page_map(newest, [&](int pid, const PageMap& map) -> Result<void> {
        auto files = TRY(open_ancestor_page_files(chain, map, pid));
        TRY_CTX(check_page_map(map, map.page_file(), newest.file_size(map.page_file()), files.sizes), "{}/{}",
                newest.directory(), pagemap_name(pid));
        for (const auto& run : map.runs())
            if (run.ancestor() > 0)
                needed[run.ancestor() - 1][pages_name(pid)].push_back(
                    { run.file_offset(), run.file_offset() + run.page_count() * kPageSize });
        return {};
    }));
    for (auto& files : needed)
        for (auto& [name, ranges] : files)
            normalise(ranges);
    return needed;
}

// The byte ranges of each page file that a checkpoint's own page maps
// stored itself (runs without an ancestor).
Result<RangesByFile> own_ranges(const ImageReader& reader)
{
    RangesByFile own;
    TRY(for_each_page_map(reader, [&](int pid, const PageMap& map) -> Result<void> {
        for (const auto& run : map.runs())
            if (run.ancestor() == 0)
                own[pages_name(pid)].push_back({ run.file_offset(), run.file_offset() + run.page_count() * kPageSize });
        return {};
    }));
    for (auto& [name, ranges] : own)
        normalise(ranges);
    return own;
}

uint64_t allocated_bytes(int fd)
{
    struct stat st;
    return ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
}

// Punches `ranges` out of the page file `record` of `reader`'s checkpoint,
// records its new checksum in `record` and counts in `result`.
Result<void> punch(const ImageReader& reader, ManifestFile& record, const std::vector<Range>& ranges,
                   std::vector<std::byte>& buffer, DedupedCheckpoint& result)
{
    auto path = fmt::format("{}/{}", reader.directory(), record.name());
    UniqueFd file = TRY(open_file_at(reader.directory_fd(), record.name(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    result.disk_before += allocated_bytes(file.get());
    uint64_t punched = 0;
    for (auto [start, end] : ranges) {
        end = std::min(end, record.size());
        if (start >= end)
            continue;
        if (::fallocate(file.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(start),
                        static_cast<off_t>(end - start)) < 0) {
            if (errno == EOPNOTSUPP)
                return fail("{}: its filesystem cannot punch holes (fallocate PUNCH_HOLE): nothing to gain here", path);
            return fail_errno(fmt::format("punch a hole of {} bytes at {:#x} into {}", end - start, start, path));
        }
        punched += end - start;
    }
    if (::fdatasync(file.get()) < 0)
        return fail_errno(fmt::format("fsync {}", path));
    record.set_xxh3(TRY(file_xxh3(file.get(), record.size(), buffer, path)));
    result.punched_bytes += punched;
    result.disk_after += allocated_bytes(file.get());
    return {};
}

Result<void> rewrite_manifest(const ImageReader& reader, const Manifest& manifest)
{
    TRY(write_file_atomically(reader.directory_fd(), reader.directory(), std::string(kManifestName),
                              TRY(encode_image(ImageKind::Manifest, manifest))));
    if (::fsync(reader.directory_fd()) < 0)
        return fail_errno(fmt::format("fsync {}", reader.directory()));
    return {};
}

std::string relative_to(const std::string& target, const std::string& base)
{
    auto absolute = [](const std::string& path) { return std::filesystem::absolute(path).lexically_normal(); };
    return absolute(target).lexically_relative(absolute(base)).string();
}

// Thins out one ancestor for `newest` and rewrites its manifest;
// `parent_xxh3` is the checksum of its parent's manifest as rewritten just
// before (0: it has no parent).
Result<DedupedCheckpoint> thin_out(const ImageReader& ancestor, const RangesByFile& needed, const std::string& newest,
                                   uint64_t parent_xxh3)
{
    DedupedCheckpoint result { ancestor.directory() };
    if (ancestor.encrypted())
        return fail("{}: an encrypted checkpoint cannot be deduplicated", ancestor.directory());
    auto own = TRY(own_ranges(ancestor));
    Manifest manifest = ancestor.manifest();
    std::vector<std::byte> buffer(kHashBuffer);
    for (auto& record : *manifest.mutable_files()) {
        auto found = own.find(record.name());
        if (found == own.end())
            continue;
        if (is_transformed(record))
            return fail("{}/{}: a compressed page file cannot be deduplicated", ancestor.directory(), record.name());
        auto keep = needed.find(record.name());
        auto ranges = keep == needed.end() ? found->second : subtract(found->second, keep->second);
        TRY(punch(ancestor, record, ranges, buffer, result));
    }
    manifest.set_deduped_by(relative_to(newest, ancestor.directory()));
    if (!manifest.parent().empty())
        manifest.set_parent_manifest_xxh3(parent_xxh3);
    TRY(rewrite_manifest(ancestor, manifest));
    return result;
}

} // namespace

Result<DedupResult> dedup_chain(const std::string& directory)
{
    auto newest = TRY(ImageReader::open(directory));
    TRY(refuse_deduped(directory, newest.manifest(), "newest checkpoint of a dedup"));
    DedupResult result;
    if (newest.manifest().parent().empty())
        return result;
    // Everything is verified before anything changes.
    TRY(newest.verify());
    auto chain = TRY(ParentChain::open(directory, newest.manifest()));
    auto needed = TRY(needed_ranges(newest, chain));
    // Oldest first: each manifest then records its parent's new checksum.
    uint64_t parent_xxh3 = 0;
    for (size_t n = chain.depth(); n >= 1; --n) {
        const auto& ancestor = chain.ancestor(n);
        auto done = TRY(thin_out(ancestor, needed[n - 1], directory, parent_xxh3));
        result.punched_bytes += done.punched_bytes;
        result.ancestors.insert(result.ancestors.begin(), std::move(done));
        parent_xxh3 = TRY(manifest_checksum(ancestor.directory()));
    }
    Manifest manifest = newest.manifest();
    manifest.set_parent_manifest_xxh3(parent_xxh3);
    TRY(rewrite_manifest(newest, manifest));
    return result;
}

Result<void> run_dedup(const std::string& directory)
{
    auto result = TRY(dedup_chain(directory));
    if (result.ancestors.empty()) {
        fmt::print("{}: no parent checkpoint, nothing to deduplicate\n", directory);
        return {};
    }
    auto mib = [](uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); };
    uint64_t before = 0, after = 0;
    for (const auto& ancestor : result.ancestors) {
        before += ancestor.disk_before;
        after += ancestor.disk_after;
    }
    fmt::print("{}: {} ancestor(s) deduplicated: the pages it does not need ({:.1f} MiB) are holes now; their page "
               "files use {:.1f} MiB of disk, were {:.1f} MiB\n",
               directory, result.ancestors.size(), mib(result.punched_bytes), mib(after), mib(before));
    for (const auto& ancestor : result.ancestors)
        fmt::print("  {}: {:.1f} MiB of disk, was {:.1f} MiB; no longer restorable itself\n", ancestor.directory,
                   mib(ancestor.disk_after), mib(ancestor.disk_before));
    return {};
}

} // namespace cryo::image
