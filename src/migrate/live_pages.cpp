// See live_pages.h.
#include "migrate/live_pages.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/fault.h"
#include "base/syscalls.h"
#include "image/format.h"
#include "image/reader.h"
#include "image/writer.h"
#include "manifest.pb.h"
#include "mem/dump_pages.h"
#include "mem/vmas.h"

namespace cryo::migrate {

Result<void> LivePages::record(pid_t pid, pid_t proc_pid, std::vector<image::Vma>& vmas, uint64_t offset,
                               image::PageMap& map)
{
    ServedFile& file = m_files[image::pages_name(pid)];
    file.memory.emplace(TRY(mem::MemoryReader::open(proc_pid)));
    uint64_t listed = 0;
    for (auto& vma : vmas) {
        if (!mem::stores_pages(vma))
            continue;
        uint64_t in_vma = 0;
        for (const auto& range : TRY(mem::scan_stored_pages(file.memory->pagemap_fd(), vma))) {
            uint64_t length = range.end - range.start;
            auto* run = map.add_runs();
            run->set_address(range.start);
            run->set_page_count(length / kPageSize);
            run->set_file_offset(offset + listed);
            file.runs[offset + listed] = { .offset = offset + listed, .length = length, .address = range.start };
            listed += length;
            in_vma += length;
        }
        vma.set_stored_bytes(vma.stored_bytes() + in_vma);
    }
    file.size = offset + listed;
    m_listed_bytes += listed;
    return {};
}

Result<void> LivePages::open(const std::string& directory)
{
    m_directory = TRY(open_file(directory, O_PATH | O_DIRECTORY | O_CLOEXEC));
    std::optional<image::CheckpointId> no_id;
    auto manifest = TRY(image::read_manifest(m_directory.get(), directory, nullptr, no_id));
    for (auto& record : *manifest.mutable_files()) {
        ServedFile& file = m_files[record.name()];
        file.stored = TRY(open_file_at(m_directory.get(), record.name(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        file.stored_size = record.size();
        if (file.runs.empty()) {
            file.size = record.size();
            continue;
        }
        if (file.size < record.size())
            return fail("{}/{}: {} bytes stored, more than the {} its page map reaches", directory, record.name(),
                        record.size(), file.size);
        // Its checksums would need every page read now (see live_pages.h).
        record.set_size(file.size);
        record.clear_xxh3();
        record.clear_chunk_size();
        record.clear_chunk_xxh3();
    }
    for (const auto& [name, file] : m_files)
        if (!file.stored)
            return fail("{}: the manifest does not list {}", directory, name);
    m_manifest = TRY(image::encode_image(image::ImageKind::Manifest, manifest));
    return {};
}

Result<void> LivePages::send_range(net::Channel& channel, const std::string& name, ServedFile& file, uint64_t offset,
                                   uint64_t length)
{
    m_buffer.resize(net::kDataFramePayload);
    for (uint64_t at = offset, end = offset + length; at < end;) {
        uint64_t piece = std::min<uint64_t>(end - at, net::kDataFramePayload);
        if (at < file.stored_size) {
            piece = std::min(piece, file.stored_size - at);
            TRY(channel.send_file_range(net::FrameType::Data, 0, file.stored.get(), at, piece, name, m_buffer));
            at += piece;
            continue;
        }
        // Past the stored bytes: in one run (they follow each other).
        auto run = file.runs.upper_bound(at);
        if (run == file.runs.begin())
            return fail("{}: no memory listed at offset {}", name, at);
        const Run& listed = std::prev(run)->second;
        piece = std::min(piece, listed.offset + listed.length - at);
        auto bytes = std::span(m_buffer).first(piece);
        TRY_CTX(file.memory->copy(listed.address + (at - listed.offset), bytes), "{} at offset {}", name, at);
        TRY(channel.send(net::FrameType::Data, 0, bytes));
        at += piece;
    }
    return channel.send(net::FrameType::Close, 0, {});
}

Result<net::ServeStats> LivePages::serve(net::Channel& channel, const std::function<void()>& on_running)
{
    net::ServeStats stats;
    bool running = false;
    for (;;) {
        auto frame = TRY(channel.receive_or_end());
        if (!frame)
            return fail("{} closed the connection before it had every page (broken transfer)", channel.peer());
        if (frame->type == net::FrameType::Done)
            return stats;
        if (frame->type == net::FrameType::Ready) {
            running = true;
            on_running();
            continue;
        }
        if (frame->type != net::FrameType::Fetch || frame->payload.size() < sizeof(net::FetchHeader))
            return fail("{} sent an unexpected {} frame", channel.peer(), net::frame_name(frame->type));
        net::FetchHeader header {};
        std::memcpy(&header, frame->payload.data(), sizeof(header));
        std::string name = frame->text().substr(sizeof(header));
        if (auto step = fault::step([&] {
                return fmt::format("fetch #{} ({}{})", stats.fetches + 1, name, running ? ", the tree runs" : "");
            });
            !step) {
            ::shutdown(channel.fd(), SHUT_RDWR);
            return fail("connection to {} broken at fetch #{}: {}", channel.peer(), stats.fetches + 1,
                        step.error().message());
        }
        auto file = m_files.find(name);
        std::string refusal;
        uint64_t size = file == m_files.end() ? 0 : file->second.size;
        uint64_t length = header.length == net::kWholeFile && header.offset <= size ? size - header.offset : header.length;
        if (file == m_files.end())
            refusal = fmt::format("{} is not a file of the served checkpoint", name);
        else if (header.offset > size || length > size - header.offset)
            refusal = fmt::format("{} bytes at {} of {} are past its end ({} bytes)", length, header.offset, name, size);
        if (!refusal.empty()) {
            (void)channel.send_text(net::FrameType::Error, refusal);
            return fail("{}: {}", channel.peer(), refusal);
        }
        TRY(send_range(channel, name, file->second, header.offset, length));
        ++stats.fetches;
        stats.bytes += length;
    }
}

} // namespace cryo::migrate
