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
#include <optional>
#include <utility>

#include "base/fault.h"
#include "base/syscalls.h"
#include "base/xxh3.h"
#include "image/chain.h"
#include "image/reader.h"
#include "image/validate.h"
#include "image/writer.h"
#include "manifest.pb.h"
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

// The XXH3-64 the page file `record` of `reader`'s checkpoint will have once
// `ranges` are holes (read as zeros), computed before anything is punched.
Result<uint64_t> hash_with_holes(const ImageReader& reader, const ManifestFile& record, const std::vector<Range>& ranges,
                                 std::vector<std::byte>& buffer)
{
    auto path = fmt::format("{}/{}", reader.directory(), record.name());
    UniqueFd file = TRY(open_file_at(reader.directory_fd(), record.name(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    xxh3::Stream state;
    size_t next = 0;
    for (uint64_t offset = 0; offset < record.size();) {
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(buffer.size(), record.size() - offset));
        auto piece = std::span(buffer.data(), chunk);
        TRY(pread_exact(file.get(), piece, offset, path));
        while (next < ranges.size() && ranges[next].second <= offset)
            ++next;
        for (size_t i = next; i < ranges.size() && ranges[i].first < offset + chunk; ++i) {
            uint64_t from = std::max(ranges[i].first, offset), to = std::min(ranges[i].second, offset + chunk);
            std::fill(piece.begin() + static_cast<std::ptrdiff_t>(from - offset),
                      piece.begin() + static_cast<std::ptrdiff_t>(to - offset), std::byte { 0 });
        }
        state.update(piece.data(), chunk);
        offset += chunk;
    }
    return state.digest();
}

std::string relative_to(const std::string& target, const std::string& base)
{
    auto absolute = [](const std::string& path) { return std::filesystem::absolute(path).lexically_normal(); };
    return absolute(target).lexically_relative(absolute(base)).string();
}

// Plans the thinning of one ancestor for the newest checkpoint (in
// `newest`): the ranges to punch out of its page files, and its new
// manifest with the checksums they will have, `deduped_by` and
// `parent_xxh3`, the checksum of its parent's new manifest (0: it has no
// parent).
Result<DedupStep> plan_ancestor(const ImageReader& ancestor, const RangesByFile& needed, const std::string& newest,
                                uint64_t parent_xxh3, DedupResult& result)
{
    if (ancestor.encrypted())
        return fail("{}: an encrypted checkpoint cannot be deduplicated", ancestor.directory());
    DedupStep step;
    step.set_directory(relative_to(ancestor.directory(), newest));
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
        auto* punch = step.add_punches();
        punch->set_file(record.name());
        for (auto [start, end] : ranges) {
            end = std::min(end, record.size());
            if (start >= end)
                continue;
            punch->add_ranges(start);
            punch->add_ranges(end);
            result.punched_bytes += end - start;
        }
        record.set_xxh3(TRY(hash_with_holes(ancestor, record, ranges, buffer)));
        // The chunk checksums no longer match the holes: verified whole.
        record.clear_chunk_size();
        record.clear_chunk_xxh3();
    }
    manifest.set_deduped_by(relative_to(newest, ancestor.directory()));
    if (!manifest.parent().empty())
        manifest.set_parent_manifest_xxh3(parent_xxh3);
    step.set_manifest(TRY(encode_image(ImageKind::Manifest, manifest)));
    return step;
}

// Everything dedup will do, decided from the verified chain.
Result<DedupJournal> plan_dedup(const ImageReader& newest, const ParentChain& chain, DedupResult& result)
{
    auto needed = TRY(needed_ranges(newest, chain));
    DedupJournal journal;
    // Oldest first: each manifest records its parent's new checksum.
    uint64_t parent_xxh3 = 0;
    for (size_t n = chain.depth(); n >= 1; --n) {
        auto step = TRY(plan_ancestor(chain.ancestor(n), needed[n - 1], newest.directory(), parent_xxh3, result));
        parent_xxh3 = xxh3::hash(step.manifest().data(), step.manifest().size());
        *journal.add_steps() = std::move(step);
    }
    Manifest manifest = newest.manifest();
    manifest.set_parent_manifest_xxh3(parent_xxh3);
    auto* last = journal.add_steps();
    last->set_manifest(TRY(encode_image(ImageKind::Manifest, manifest)));
    return journal;
}

// Punches the holes of one step (again, when an interrupted dedup did
// some: punching a hole twice changes nothing) and counts the disk.
Result<void> punch_step(const std::string& directory, int dir_fd, const DedupStep& step, DedupedCheckpoint& done)
{
    for (const auto& punch : step.punches()) {
        auto path = fmt::format("{}/{}", directory, punch.file());
        if (!is_safe_image_name(punch.file()) || punch.ranges_size() % 2)
            return fail("{}: the dedup journal names an invalid file or ranges", path);
        UniqueFd file = TRY(open_file_at(dir_fd, punch.file(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
        done.disk_before += allocated_bytes(file.get());
        TRY(fault::step([&] { return fmt::format("dedup punch {}", path); }));
        for (int i = 0; i < punch.ranges_size(); i += 2) {
            uint64_t start = punch.ranges(i), end = punch.ranges(i + 1);
            if (start >= end || end > INT64_MAX)
                return fail("{}: the dedup journal names an invalid range", path);
            if (::fallocate(file.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(start),
                            static_cast<off_t>(end - start)) < 0) {
                if (errno == EOPNOTSUPP)
                    return fail("{}: its filesystem cannot punch holes (fallocate PUNCH_HOLE): nothing to gain here",
                                path);
                return fail_errno(fmt::format("punch a hole of {} bytes at {:#x} into {}", end - start, start, path));
            }
        }
        TRY(fault::step([&] { return fmt::format("dedup punched {}", path); }));
        if (::fdatasync(file.get()) < 0)
            return fail_errno(fmt::format("fsync {}", path));
        done.disk_after += allocated_bytes(file.get());
    }
    return {};
}

// Carries the journal out: every hole first, then every manifest, oldest
// first, the newest last; then the journal goes.
Result<void> carry_out(const std::string& newest, const DedupJournal& journal, DedupResult& result)
{
    std::vector<std::pair<std::string, UniqueFd>> directories;
    for (const auto& step : journal.steps()) {
        auto directory = step.directory().empty() ? newest : resolve_parent(newest, step.directory());
        directories.emplace_back(directory, TRY(open_file(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)));
        DedupedCheckpoint done { directory };
        TRY(punch_step(directory, directories.back().second.get(), step, done));
        if (!step.directory().empty())
            result.ancestors.insert(result.ancestors.begin(), std::move(done));
    }
    for (int i = 0; i < journal.steps_size(); ++i) {
        const auto& [directory, dir_fd] = directories[static_cast<size_t>(i)];
        TRY(fault::step([&] { return fmt::format("dedup manifest of {}", directory); }));
        TRY(write_file_atomically(dir_fd.get(), directory, std::string(kManifestName), journal.steps(i).manifest()));
        if (::fsync(dir_fd.get()) < 0)
            return fail_errno(fmt::format("fsync {}", directory));
    }
    UniqueFd dir = TRY(open_file(newest, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (::unlinkat(dir.get(), std::string(kDedupJournalName).c_str(), 0) < 0)
        return fail_errno(fmt::format("remove {}/{}", newest, kDedupJournalName));
    if (::fsync(dir.get()) < 0)
        return fail_errno(fmt::format("fsync {}", newest));
    return {};
}

// An interrupted dedup's journal, if there is one.
Result<std::optional<DedupJournal>> read_journal(const std::string& directory)
{
    auto path = fmt::format("{}/{}", directory, kDedupJournalName);
    auto file = open_file(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (!file && file.error().code() == ENOENT)
        return std::nullopt;
    if (!file)
        return fail(file.error());
    auto bytes = TRY(read_all(file->get(), path));
    DedupJournal journal;
    TRY_CTX(decode_image(bytes, ImageKind::DedupJournal, journal), "{}", path);
    if (journal.steps_size() == 0 || !journal.steps(journal.steps_size() - 1).directory().empty())
        return fail("{}: not a complete dedup journal", path);
    return journal;
}

} // namespace

Result<DedupResult> dedup_chain(const std::string& directory)
{
    DedupResult result;
    if (auto journal = TRY(read_journal(directory))) {
        // An interrupted dedup: finish it, then verify what it made (the
        // holes are the planned ones, so every new checksum must hold).
        TRY_CTX(carry_out(directory, *journal, result), "finishing the interrupted dedup of {}", directory);
        auto newest = TRY(ImageReader::open(directory));
        TRY(newest.verify());
        TRY(ParentChain::open(directory, newest.manifest()));
        return result;
    }
    auto newest = TRY(ImageReader::open(directory));
    TRY(refuse_deduped(directory, newest.manifest(), "newest checkpoint of a dedup"));
    if (newest.manifest().parent().empty())
        return result;
    // Everything is verified and planned before anything changes.
    TRY(newest.verify());
    auto chain = TRY(ParentChain::open(directory, newest.manifest()));
    auto journal = TRY(plan_dedup(newest, chain, result));
    TRY(write_file_atomically(newest.directory_fd(), directory, std::string(kDedupJournalName),
                              TRY(encode_image(ImageKind::DedupJournal, journal))));
    if (::fsync(newest.directory_fd()) < 0)
        return fail_errno(fmt::format("fsync {}", directory));
    TRY(carry_out(directory, journal, result));
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
