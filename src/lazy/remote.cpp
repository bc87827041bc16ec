// See remote.h.
#include "lazy/remote.h"

#include <unistd.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "base/scope_guard.h"
#include "base/syscalls.h"
#include "base/xxh3.h"
#include "image/chain.h"
#include "image/format.h"
#include "image/reader.h"
#include "image/writer.h"
#include "manifest.pb.h"
#include "mem/restore_memory.h"
#include "mm.pb.h"
#include "tree.pb.h"

namespace cryo::lazy {

namespace {

bool is_page_file(const std::string& name) { return name.starts_with("pages-"); }

// Byte ranges of a page file, by start.
using Ranges = std::map<uint64_t, uint64_t>;

struct FetchedMetadata {
    std::map<std::string, std::string> files;   // name -> content

    template <typename Message>
    Result<Message> decode(const std::string& name, image::ImageKind kind) const
    {
        auto found = files.find(name);
        if (found == files.end())
            return fail("the checkpoint has no {}", name);
        Message message;
        TRY_CTX(image::decode_image(found->second, kind, message), "{}", name);
        return message;
    }
};

Result<void> fetch_metadata(net::PageFetcher& fetcher, const image::Manifest& manifest, const std::string& prefix,
                            image::ImageWriter& writer, FetchedMetadata& metadata)
{
    for (const auto& record : manifest.files()) {
        if (is_page_file(record.name()))
            continue;
        std::string content = TRY(fetcher.fetch_file(prefix + record.name()));
        if (content.size() != record.size() || xxh3::hash(content.data(), content.size()) != record.xxh3())
            return fail("{}{} from page server {} does not match its manifest", prefix, record.name(), fetcher.peer());
        auto file = TRY(writer.create_file(record.name()));
        TRY(file.write(std::as_bytes(std::span(content.data(), content.size()))));
        TRY(writer.finish_file(std::move(file)));
        metadata.files[record.name()] = std::move(content);
    }
    return {};
}

// The name on the page server (and the path relative to the directory
// fetched into) of the page file of `pid` in ancestor `ancestor` (0: the
// last checkpoint).
std::string served_page_file(size_t ancestor, pid_t pid)
{
    return ancestor == 0 ? image::pages_name(pid)
                         : fmt::format("{}/{}", image::fetched_ancestor_path(ancestor), image::pages_name(pid));
}

// Byte ranges of the page files of one process, by served name: those the
// lazy-pages server may fill (left out) and those the restore reads.
struct PageRanges {
    std::map<std::string, Ranges> left_out;
    std::map<std::string, Ranges> needed;
};

// The page file ranges of the VMAs the lazy-pages server may fill, and
// those VMAs' starts.
Result<void> left_out_ranges(const FetchedMetadata& metadata, const image::ProcessTree& tree, pid_t pid,
                             std::set<uint64_t>& left_out_vmas, PageRanges& ranges)
{
    auto memory = TRY(metadata.decode<image::MemoryImage>(image::memory_name(pid), image::ImageKind::Memory));
    auto page_map = TRY(metadata.decode<image::PageMap>(image::pagemap_name(pid), image::ImageKind::PageMap));
    // VMAs a child shares copy-on-write with this process: its restorer
    // fills them before the child is forked.
    std::set<uint64_t> shared_with_children;
    for (const auto& entry : tree.processes()) {
        if (entry.ppid() != pid || entry.state() != image::PROCESS_STATE_ALIVE)
            continue;
        auto child = TRY(metadata.decode<image::MemoryImage>(image::memory_name(entry.pid()), image::ImageKind::Memory));
        for (const auto& vma : child.vmas())
            if (vma.shares_with_parent())
                shared_with_children.insert(vma.start());
    }
    for (const auto& run : page_map.runs()) {
        if (run.ancestor() > image::kMaxChainDepth)
            return fail("{}: a run in ancestor {}, beyond any chain", image::pagemap_name(pid), run.ancestor());
        auto vma = std::ranges::find_if(memory.vmas(), [&](const image::Vma& candidate) {
            return candidate.start() <= run.address() && run.address() < candidate.end();
        });
        bool lazy = vma != memory.vmas().end() && mem::lazy_candidate(*vma) && !vma->shares_with_parent()
            && !shared_with_children.contains(vma->start());
        auto& into = lazy ? ranges.left_out : ranges.needed;
        uint64_t end = run.file_offset() + run.page_count() * kPageSize;
        auto& file = into[served_page_file(run.ancestor(), pid)];
        file[run.file_offset()] = std::max(file[run.file_offset()], end);
        if (lazy)
            left_out_vmas.insert(vma->start());
    }
    return {};
}

// `ranges` merged where they touch or overlap.
Ranges merged(const Ranges& ranges)
{
    Ranges result;
    for (const auto& [start, end] : ranges) {
        if (!result.empty() && std::prev(result.end())->second >= start)
            std::prev(result.end())->second = std::max(std::prev(result.end())->second, end);
        else
            result[start] = end;
    }
    return result;
}

// The page file `served` of `size` bytes, written as `name` by `writer`:
// only the `fetched` ranges, holes elsewhere.
Result<uint64_t> fetch_page_file(net::PageFetcher& fetcher, image::ImageWriter& writer, const std::string& served,
                                 const std::string& name, uint64_t size, const Ranges& fetched_ranges)
{
    auto file = TRY(writer.create_file(name));
    if (::ftruncate(file.fd(), static_cast<off_t>(size)) < 0)
        return fail_errno(fmt::format("ftruncate {}/{}", writer.directory(), name));
    std::vector<std::byte> buffer(8u << 20);
    uint64_t fetched = 0;
    for (auto [start, end] : merged(fetched_ranges)) {
        end = std::min(end, size);
        for (uint64_t at = start; at < end;) {
            auto piece = std::span(buffer).first(std::min<uint64_t>(end - at, buffer.size()));
            TRY(fetcher.fetch(served, at, piece));
            TRY(pwrite_all(file.fd(), piece, at, fmt::format("{}/{}", writer.directory(), name)));
            at += piece.size();
            fetched += piece.size();
        }
    }
    TRY(writer.finish_file(std::move(file)));
    return fetched;
}

// [0, size) but `left_out`.
Ranges complement(const Ranges& left_out, uint64_t size)
{
    Ranges result;
    uint64_t at = 0;
    for (const auto& [start, end] : merged(left_out)) {
        if (start > at)
            result[at] = std::min(start, size);
        at = std::max(at, end);
    }
    if (at < size)
        result[at] = size;
    return result;
}

// One checkpoint of the chain fetched: the last one (level 0, into the
// directory) or ancestor N (into fetched_ancestor_path(N) there).
struct FetchedLevel {
    image::Manifest manifest;
    std::string prefix;   // of its files' names on the page server
    uint64_t manifest_xxh3 { 0 };   // what its child recorded (ancestors)
};

// The manifests of the ancestors of `last`, each checked against the
// checksum its child recorded.
Result<void> fetch_ancestor_manifests(net::PageFetcher& fetcher, std::vector<FetchedLevel>& levels)
{
    while (!levels.back().manifest.parent().empty()) {
        if (levels.size() > image::kMaxChainDepth)
            return fail("page server {} serves a chain of more than {} checkpoints", fetcher.peer(),
                        image::kMaxChainDepth);
        FetchedLevel level;
        level.prefix = image::fetched_ancestor_path(levels.size()) + "/";
        level.manifest_xxh3 = levels.back().manifest.parent_manifest_xxh3();
        std::string content = TRY(fetcher.fetch_file(level.prefix + std::string(image::kManifestName)));
        if (xxh3::hash(content.data(), content.size()) != level.manifest_xxh3)
            return fail("the parent checkpoint {} sent by page server {} is not the one its child recorded",
                        levels.back().manifest.parent(), fetcher.peer());
        TRY_CTX(image::decode_image(content, image::ImageKind::Manifest, level.manifest),
                "the manifest of parent checkpoint {} sent by page server {}", levels.back().manifest.parent(),
                fetcher.peer());
        levels.push_back(std::move(level));
    }
    return {};
}

} // namespace

Result<RemoteCheckpoint> fetch_checkpoint(net::PageFetcher& fetcher, const std::string& directory)
{
    RemoteCheckpoint remote;
    std::vector<FetchedLevel> levels(1);
    TRY_CTX(image::decode_image(fetcher.manifest(), image::ImageKind::Manifest, levels[0].manifest),
            "the manifest sent by page server {}", fetcher.peer());
    if (levels[0].manifest.pre_dump())
        return fail("page server {} serves a pre-dump, which cannot be restored", fetcher.peer());
    TRY(fetch_ancestor_manifests(fetcher, levels));
    // Ancestors inside their children (image/chain.h); on failure the
    // deepest goes first, so that each directory is empty when its writer
    // removes it.
    auto last_writer = TRY(image::ImageWriter::create(directory, image::SyncMode::NoSync));
    std::vector<image::ImageWriter> writers;
    ScopeGuard remove_deepest_first([&] {
        while (!writers.empty())
            writers.pop_back();
    });
    for (size_t level = 1; level < levels.size(); ++level)
        writers.push_back(TRY(image::ImageWriter::create(
            fmt::format("{}/{}", directory, image::fetched_ancestor_path(level)), image::SyncMode::NoSync)));
    auto writer_of = [&](size_t level) -> image::ImageWriter& { return level == 0 ? last_writer : writers[level - 1]; };
    FetchedMetadata metadata;   // the last checkpoint's: which pages the restore reads
    for (size_t level = 0; level < levels.size(); ++level) {
        FetchedMetadata level_metadata;
        TRY(fetch_metadata(fetcher, levels[level].manifest, levels[level].prefix, writer_of(level), level_metadata));
        if (level == 0)
            metadata = std::move(level_metadata);
    }
    auto tree = TRY(metadata.decode<image::ProcessTree>(std::string(image::kTreeName), image::ImageKind::Tree));
    PageRanges ranges;
    for (const auto& entry : tree.processes())
        if (entry.state() == image::PROCESS_STATE_ALIVE)
            TRY(left_out_ranges(metadata, tree, entry.pid(), remote.left_out[entry.pid()], ranges));
    // The last checkpoint's page files whole but for the lazy pages (they
    // may hold bytes no run describes: memfd content); of the ancestors'
    // only the pages the restore reads.
    for (size_t level = 0; level < levels.size(); ++level)
        for (const auto& record : levels[level].manifest.files()) {
            if (!is_page_file(record.name()))
                continue;
            std::string served = levels[level].prefix + record.name();
            Ranges wanted = level == 0 ? complement(ranges.left_out[served], record.size()) : ranges.needed[served];
            remote.fetched_bytes
                += TRY(fetch_page_file(fetcher, writer_of(level), served, record.name(), record.size(), wanted));
        }
    // The server's records: the page files here differ from them where
    // their holes are (see remote.h). The oldest first, the last
    // checkpoint's manifest last; each ancestor's manifest must come out as
    // the one its child recorded.
    for (size_t level = levels.size(); level-- > 0;) {
        auto& manifest = levels[level].manifest;
        auto& writer = writer_of(level);
        writer.set_records({ manifest.files().begin(), manifest.files().end() });
        manifest.clear_files();
        TRY(writer.commit(std::move(manifest)));
        if (level > 0 && TRY(image::manifest_checksum(writer.directory())) != levels[level].manifest_xxh3)
            return fail("{}: the manifest of the fetched parent checkpoint does not come out as the page server's",
                        writer.directory());
    }
    remove_deepest_first.dismiss();
    spdlog::info("fetched the checkpoint from page server {} into {} ({} checkpoints): {} KiB of pages, the rest "
                 "left to the lazy-pages server", fetcher.peer(), directory, levels.size(), remote.fetched_bytes >> 10);
    return remote;
}

Result<void> check_left_out(const RemoteCheckpoint& remote, pid_t pid, const std::vector<uint64_t>& lazy_vmas)
{
    auto found = remote.left_out.find(pid);
    if (found == remote.left_out.end())
        return {};
    for (uint64_t start : found->second)
        if (std::ranges::count(lazy_vmas, start) == 0)
            return fail("the mapping at {:#x} is filled by the restore, but its pages were left on the page server",
                        start);
    return {};
}

} // namespace cryo::lazy
