// See remote.h.
#include "lazy/remote.h"

#include <unistd.h>

#include <algorithm>

#include <spdlog/spdlog.h>
#include <xxhash.h>

#include "base/syscalls.h"
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

Result<void> fetch_metadata(net::PageFetcher& fetcher, const image::Manifest& manifest, image::ImageWriter& writer,
                            FetchedMetadata& metadata)
{
    for (const auto& record : manifest.files()) {
        if (is_page_file(record.name()))
            continue;
        std::string content = TRY(fetcher.fetch_file(record.name()));
        if (content.size() != record.size() || XXH3_64bits(content.data(), content.size()) != record.xxh3())
            return fail("{} from page server {} does not match its manifest", record.name(), fetcher.peer());
        auto file = TRY(writer.create_file(record.name()));
        TRY(file.write(std::as_bytes(std::span(content.data(), content.size()))));
        TRY(writer.finish_file(std::move(file)));
        metadata.files[record.name()] = std::move(content);
    }
    return {};
}

// The page file ranges of the VMAs the lazy-pages server may fill, and
// those VMAs' starts.
Result<Ranges> left_out_ranges(const FetchedMetadata& metadata, const image::ProcessTree& tree, pid_t pid,
                               std::set<uint64_t>& left_out_vmas)
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
    Ranges ranges;
    for (const auto& run : page_map.runs()) {
        if (run.ancestor() != 0)
            return fail("{}: pages in a parent checkpoint cannot be fetched yet", image::pagemap_name(pid));
        auto vma = std::ranges::find_if(memory.vmas(), [&](const image::Vma& candidate) {
            return candidate.start() <= run.address() && run.address() < candidate.end();
        });
        if (vma == memory.vmas().end() || !mem::lazy_candidate(*vma) || vma->shares_with_parent()
            || shared_with_children.contains(vma->start()))
            continue;
        left_out_vmas.insert(vma->start());
        ranges[run.file_offset()] = run.file_offset() + run.page_count() * kPageSize;
    }
    return ranges;
}

// The page file `name` of `size` bytes in `directory`, holes where
// `left_out` says, everything else fetched.
Result<uint64_t> fetch_page_file(net::PageFetcher& fetcher, image::ImageWriter& writer, const std::string& name,
                                 uint64_t size, const Ranges& left_out)
{
    auto file = TRY(writer.create_file(name));
    if (::ftruncate(file.fd(), static_cast<off_t>(size)) < 0)
        return fail_errno(fmt::format("ftruncate {}/{}", writer.directory(), name));
    std::vector<std::byte> buffer(8u << 20);
    uint64_t fetched = 0;
    auto fetch_range = [&](uint64_t start, uint64_t end) -> Result<void> {
        for (uint64_t at = start; at < end;) {
            auto piece = std::span(buffer).first(std::min<uint64_t>(end - at, buffer.size()));
            TRY(fetcher.fetch(name, at, piece));
            TRY(pwrite_all(file.fd(), piece, at, fmt::format("{}/{}", writer.directory(), name)));
            at += piece.size();
            fetched += piece.size();
        }
        return {};
    };
    uint64_t at = 0;
    for (const auto& [start, end] : left_out) {
        if (start > at)
            TRY(fetch_range(at, std::min(start, size)));
        at = std::max(at, end);
    }
    if (at < size)
        TRY(fetch_range(at, size));
    TRY(writer.finish_file(std::move(file)));
    return fetched;
}

} // namespace

Result<RemoteCheckpoint> fetch_checkpoint(net::PageFetcher& fetcher, const std::string& directory)
{
    RemoteCheckpoint remote;
    image::Manifest manifest;
    TRY_CTX(image::decode_image(fetcher.manifest(), image::ImageKind::Manifest, manifest),
            "the manifest sent by page server {}", fetcher.peer());
    if (manifest.pre_dump() || !manifest.parent().empty())
        return fail("page server {} serves a pre-dump or an incremental checkpoint, which cannot be restored from it",
                    fetcher.peer());
    auto writer = TRY(image::ImageWriter::create(directory, image::SyncMode::NoSync));
    FetchedMetadata metadata;
    TRY(fetch_metadata(fetcher, manifest, writer, metadata));
    auto tree = TRY(metadata.decode<image::ProcessTree>(std::string(image::kTreeName), image::ImageKind::Tree));
    std::map<std::string, Ranges> left_out;
    for (const auto& entry : tree.processes()) {
        if (entry.state() != image::PROCESS_STATE_ALIVE)
            continue;
        left_out[image::pages_name(entry.pid())]
            = TRY(left_out_ranges(metadata, tree, entry.pid(), remote.left_out[entry.pid()]));
    }
    for (const auto& record : manifest.files())
        if (is_page_file(record.name()))
            remote.fetched_bytes += TRY(fetch_page_file(fetcher, writer, record.name(), record.size(), left_out[record.name()]));
    // The server's records: the page files here differ from them where
    // their holes are (see remote.h).
    writer.set_records({ manifest.files().begin(), manifest.files().end() });
    manifest.clear_files();
    TRY(writer.commit(std::move(manifest)));
    spdlog::info("fetched the checkpoint from page server {} into {}: {} KiB of pages, the rest left to the "
                 "lazy-pages server", fetcher.peer(), directory, remote.fetched_bytes >> 10);
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
