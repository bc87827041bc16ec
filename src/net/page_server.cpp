// See page_server.h.
#include "net/page_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/fault.h"
#include "dump/incremental.h"
#include "image/chain.h"
#include "image/format.h"
#include "image/reader.h"
#include "image/transform.h"
#include "image/writer.h"
#include "net/page_protocol.h"

namespace cryo::net {

namespace {

Result<UniqueFd> listen_on(const std::string& address, uint16_t port)
{
    std::string where = endpoint(address, port);
    addrinfo hints {};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    addrinfo* found = nullptr;
    std::string service = std::to_string(port);
    if (int error = ::getaddrinfo(address.empty() ? nullptr : address.c_str(), service.c_str(), &hints, &found);
        error != 0)
        return fail("page server {}: cannot resolve the address: {}", where, ::gai_strerror(error));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
    UniqueFd socket(::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol));
    if (!socket)
        return fail_errno(fmt::format("page server {}: socket", where));
    int on = 1;
    (void)::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (::bind(socket.get(), found->ai_addr, found->ai_addrlen) < 0)
        return fail_errno(fmt::format("page server: bind {}", where));
    if (::listen(socket.get(), 4) < 0)
        return fail_errno(fmt::format("page server: listen on {}", where));
    return socket;
}

std::string peer_name(const sockaddr_storage& address)
{
    char host[NI_MAXHOST] = "?";
    char service[NI_MAXSERV] = "?";
    (void)::getnameinfo(reinterpret_cast<const sockaddr*>(&address), sizeof(address), host, sizeof(host), service,
                        sizeof(service), NI_NUMERICHOST | NI_NUMERICSERV);
    return endpoint(host, static_cast<uint16_t>(std::stoi(service)));
}

// Every file received must be in the manifest with the same size and
// checksum, and every file of the manifest must have been received.
Result<void> check_received(const image::Manifest& manifest, const std::vector<image::ManifestFile>& received)
{
    std::map<std::string, const image::ManifestFile*> by_name;
    for (const auto& file : received)
        by_name[file.name()] = &file;
    for (const auto& listed : manifest.files()) {
        auto found = by_name.find(listed.name());
        if (found == by_name.end())
            return fail("the manifest lists {}, which was never received", listed.name());
        if (found->second->size() != listed.size() || found->second->xxh3() != listed.xxh3())
            return fail("{}: received {} bytes (XXH3 {:016x}), the manifest says {} bytes (XXH3 {:016x})",
                        listed.name(), found->second->size(), found->second->xxh3(), listed.size(), listed.xxh3());
        by_name.erase(found);
    }
    if (!by_name.empty())
        return fail("{} was received but is not in the manifest", by_name.begin()->first);
    return {};
}

class Session {
public:
    // `directory` receives the checkpoint; `last` is the one received
    // before (with --restore), what a restore request restores.
    Session(const PageServerOptions& options, Channel& channel, std::string directory, std::string last,
            const ServedCheckpoint* served)
        : m_options(options), m_channel(channel), m_directory(std::move(directory)), m_last(std::move(last)),
          m_served(served)
    {
    }

    Result<void> run()
    {
        TRY(server_handshake(m_channel, m_options.key ? &*m_options.key : nullptr));
        auto frame = TRY(m_channel.expect(FrameType::Request));
        image::PageServerRequest request;
        if (!request.ParseFromArray(frame.payload.data(), static_cast<int>(frame.payload.size())))
            return fail("{} sent a request that cannot be decoded", m_channel.peer());
        if (request.restore() && request.lazy())
            return restore_lazily();
        if (request.restore())
            return restore();
        if (request.serve() != (m_served != nullptr)) {
            std::string reason = m_served ? "this page server serves a checkpoint (--serve): it receives none"
                                          : "this page server was not started with --serve";
            (void)m_channel.send_text(FrameType::Error, reason);
            return fail("{}: {}", m_channel.peer(), reason);
        }
        if (m_served)
            return serve();
        TRY(answer_request(request));
        // Created only now: a client that cannot authenticate never touches
        // the directory.
        m_writer.emplace(TRY(image::ImageWriter::create(
            m_directory, m_options.sync ? image::SyncMode::Fsync : image::SyncMode::NoSync)));
        auto route = [this](uint32_t id) { return splice_target(id); };
        for (;;) {
            auto frame = TRY(m_channel.receive(route));
            switch (frame.type) {
            case FrameType::Open: TRY(open(frame)); break;
            case FrameType::Data: TRY(data(frame)); break;
            case FrameType::Close: TRY(close(frame)); break;
            case FrameType::Commit: return commit(frame);
            default:
                return fail("{} sent an unexpected {} frame", m_channel.peer(), frame_name(frame.type));
            }
        }
    }

    bool restore_requested() const { return m_restore_requested; }
    uint64_t fetches() const { return m_fetches; }
    uint64_t sent_bytes() const { return m_sent_bytes; }
    uint64_t received_bytes() const { return m_writer ? m_writer->total_bytes() : 0; }
    uint64_t spliced_bytes() const { return m_spliced_bytes; }

private:
    // --serve: the manifest, then every Fetch answered.
    Result<void> serve()
    {
        TRY(m_channel.send_text(FrameType::Ready, m_served->manifest()));
        auto stats = TRY(m_served->serve(m_channel, [&] {
            fmt::print("cryo page-server: the tree restored by {} runs\n", m_channel.peer());
            std::fflush(stdout);
        }));
        m_fetches = stats.fetches;
        m_sent_bytes = stats.bytes;
        return {};
    }

    // cryo migrate --lazy: the client serves the checkpoint; restored
    // lazily into the next numbered directory. Once the lazy-pages server
    // runs, it (not this process) tells the client the outcome.
    Result<void> restore_lazily()
    {
        m_restore_requested = true;
        if (!m_options.restore_lazily)
            return refuse_restore("this page server was not started with --restore");
        auto fetcher = TRY(PageFetcher::over(m_channel));
        auto result = m_options.restore_lazily(m_directory, *fetcher);
        if (!result)
            return refuse_restore(result.error().message());
        fmt::print("cryo page-server: {}\n", *result);
        return {};
    }

    std::unexpected<Error> refuse_restore(const std::string& reason)
    {
        (void)m_channel.send_text(FrameType::Error, reason);
        return fail("{}", reason);
    }

    // The answer to a restore request goes back whatever it is.
    Result<void> restore()
    {
        m_restore_requested = true;
        Result<std::string> result = fail("this page server was not started with --restore");
        if (m_options.restore && m_last.empty())
            result = fail("no checkpoint was received yet");
        else if (m_options.restore)
            result = m_options.restore(m_last);
        if (!result) {
            (void)m_channel.send_text(FrameType::Error, result.error().message());
            return fail(result.error());
        }
        fmt::print("cryo page-server: {}\n", *result);
        return m_channel.send_text(FrameType::Done, *result);
    }

    Result<void> answer_request(const image::PageServerRequest& request)
    {
        if (request.parent().empty())
            return m_channel.send(FrameType::Ready, 0, {});
        auto parent = dump::load_parent(m_directory, request.parent());
        if (!parent) {
            (void)m_channel.send_text(FrameType::Error, parent.error().message());
            return fail(parent.error());
        }
        std::string bytes = parent->SerializeAsString();
        if (bytes.size() > kMaxFramePayload) {
            std::string reason = fmt::format("the page maps of parent {} take {} MiB, more than the {} MiB a frame holds",
                                             request.parent(), bytes.size() >> 20, kMaxFramePayload >> 20);
            (void)m_channel.send_text(FrameType::Error, reason);
            return fail("{}", reason);
        }
        return m_channel.send_text(FrameType::Ready, bytes);
    }

    Result<void> open(const Frame& frame)
    {
        if (m_files.contains(frame.file))
            return fail("{} opened file id {} twice", m_channel.peer(), frame.file);
        m_files.emplace(frame.file, TRY(m_writer->create_file(frame.text())));
        return {};
    }

    Result<image::OutputFile*> file(const Frame& frame)
    {
        auto found = m_files.find(frame.file);
        if (found == m_files.end())
            return fail("{} sent data for file id {}, which is not open", m_channel.peer(), frame.file);
        return &found->second;
    }

    Result<void> close(const Frame& frame)
    {
        auto found = m_files.find(frame.file);
        if (found == m_files.end())
            return fail("{} closed file id {}, which is not open", m_channel.peer(), frame.file);
        TRY(m_writer->finish_file(std::move(found->second)));
        m_files.erase(found);
        m_readers.erase(frame.file);
        return {};
    }

    // A spliced payload is in the file already: only counted and hashed.
    Result<void> data(const Frame& frame)
    {
        image::OutputFile* output = TRY(file(frame));
        if (frame.spliced) {
            m_spliced_bytes += frame.payload.size();
            return output->account_written(frame.payload);
        }
        return output->write(frame.payload);
    }

    // Data for an open file goes straight into it (Channel::receive), when
    // the file takes bytes as they are. The tag and the file's checksums
    // are then read through a mapping, which needs the file open for
    // reading too (the writer's descriptor is write-only): opened again
    // through /proc, once per file. Nothing (the frame is received into
    // the buffer, and an unknown id refused there) when that fails.
    std::optional<SpliceTarget> splice_target(uint32_t id)
    {
        auto found = m_files.find(id);
        if (found == m_files.end() || !found->second.is_raw())
            return std::nullopt;
        image::OutputFile& output = found->second;
        auto& reader = m_readers[id];
        if (!reader) {
            auto opened = open_file(fmt::format("/proc/self/fd/{}", output.fd()), O_RDONLY | O_CLOEXEC);
            if (!opened) {
                spdlog::debug("{}: no splice ({})", output.name(), opened.error().message());
                m_readers.erase(id);
                return std::nullopt;
            }
            reader = std::move(*opened);
        }
        return SpliceTarget { .fd = output.fd(), .read_fd = reader.get(), .end = output.size(), .name = output.name() };
    }

    Result<void> commit(const Frame& frame)
    {
        auto result = check_and_commit(frame);
        if (!result) {
            (void)m_channel.send_text(FrameType::Error, result.error().message());
            return result;
        }
        return m_channel.send(FrameType::Done, 0, {});
    }

    Result<void> check_and_commit(const Frame& frame)
    {
        if (!m_files.empty())
            return fail("the manifest came while {} was still open", m_files.begin()->second.name());
        image::Manifest manifest;
        TRY_CTX(image::decode_image(frame.text(), image::ImageKind::Manifest, manifest),
                "the manifest sent by {} (an encrypted checkpoint cannot be received yet)", m_channel.peer());
        TRY(check_received(manifest, m_writer->records()));
        // The client's records, now known to match what is on disk here,
        // carry what only the client knows (compression, content sizes).
        m_writer->set_records({ manifest.files().begin(), manifest.files().end() });
        manifest.clear_files();
        return m_writer->commit(std::move(manifest));
    }

    const PageServerOptions& m_options;
    Channel& m_channel;
    std::string m_directory;
    std::string m_last;
    const ServedCheckpoint* m_served;
    uint64_t m_fetches { 0 };
    uint64_t m_sent_bytes { 0 };
    uint64_t m_spliced_bytes { 0 };
    bool m_restore_requested { false };
    std::optional<image::ImageWriter> m_writer;
    std::map<uint32_t, image::OutputFile> m_files;
    std::map<uint32_t, UniqueFd> m_readers;   // the open files, for reading (splice_target)
};

// With --restore the numbered subdirectories start at 1: DIR must be new
// or empty, so that ../N is the checkpoint the client sent as round N.
Result<void> prepare_numbered(const std::string& directory)
{
    std::error_code error;
    std::filesystem::create_directories(directory, error);
    if (error)
        return fail("page server: create {}: {}", directory, error.message());
    if (!std::filesystem::is_empty(directory, error))
        return fail("page server --restore: {} is not empty (each migration needs a new directory)", directory);
    return {};
}

} // namespace

Result<void> run_page_server(const PageServerOptions& options)
{
    if (options.restore && options.serve)
        return fail("page server: --restore and --serve exclude each other");
    if (options.restore)
        TRY(prepare_numbered(options.directory));
    std::optional<ServedCheckpoint> served;
    if (options.serve)
        served.emplace(TRY(ServedCheckpoint::open(options.directory, Verify::Checksums)));
    UniqueFd listener = TRY(listen_on(options.address, options.port));
    int received = 0;   // with --restore: checkpoints kept, in DIR/1..DIR/received
    // The line scripts and tests wait for before they start a dump.
    fmt::print("cryo page-server: listening on {} for {}{}\n", endpoint(options.address, options.port),
               options.directory, options.key ? "" : " (no --key: any client is accepted, trusted networks only)");
    std::fflush(stdout);
    for (;;) {
        sockaddr_storage address {};
        socklen_t length = sizeof(address);
        UniqueFd socket(::accept4(listener.get(), reinterpret_cast<sockaddr*>(&address), &length, SOCK_CLOEXEC));
        if (!socket) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return fail_errno("page server: accept");
        }
        // One checkpoint at a time: a client that stops sending only holds
        // the server for the timeout.
        set_peer_options(socket.get());
        Channel channel(std::move(socket), peer_name(address));
        auto numbered = [&](int number) { return fmt::format("{}/{}", options.directory, number); };
        std::string directory = options.restore ? numbered(received + 1) : options.directory;
        Session session(options, channel, directory, received > 0 ? numbered(received) : "", served ? &*served : nullptr);
        auto result = session.run();
        if (served) {
            if (result)
                fmt::print("cryo page-server: served {} to {}: {} fetches, {} MiB\n", options.directory, channel.peer(),
                           session.fetches(), session.sent_bytes() >> 20);
            else
                fmt::print(stderr, "cryo page-server: serving {} to {} failed: {}\n", options.directory,
                           channel.peer(), result.error().message());
            std::fflush(stdout);
            if (options.once)
                return result;
            continue;
        }
        if (session.restore_requested() && options.restore) {
            if (!result)
                return fail("page server: restore asked by {}: {}", channel.peer(), result.error().message());
            return {};
        }
        if (result && options.restore)
            ++received;
        if (result)
            fmt::print("cryo page-server: received a checkpoint from {} into {} ({} MiB, {} MiB of them spliced "
                       "straight into the files)\n",
                       channel.peer(), directory, session.received_bytes() >> 20, session.spliced_bytes() >> 20);
        else if (options.once)
            return fail("page server: checkpoint from {} refused, nothing kept: {}", channel.peer(),
                        result.error().message());
        else
            fmt::print(stderr, "cryo page-server: checkpoint from {} refused, nothing kept: {}\n", channel.peer(),
                       result.error().message());
        std::fflush(stdout);
        if (options.once)
            return {};
    }
}

Result<ServedCheckpoint> ServedCheckpoint::open(const std::string& directory, Verify verify)
{
    auto reader = TRY_CTX(image::ImageReader::open(directory), "serve {}", directory);
    const auto& manifest = reader.manifest();
    if (manifest.pre_dump())
        return fail("serve {}: a pre-dump cannot be restored", directory);
    ServedCheckpoint served;
    for (const auto& file : manifest.files()) {
        if (image::is_transformed(file))
            return fail("serve {}: {} is compressed, which cannot be served yet", directory, file.name());
        served.m_sizes[file.name()] = file.size();
    }
    if (verify == Verify::Checksums)
        TRY_CTX(reader.verify(), "serve {}", directory);
    served.m_directory = TRY(open_file(directory, O_PATH | O_DIRECTORY | O_CLOEXEC));
    // An incremental checkpoint's ancestors are served too, under the
    // names a lazy restore keeps them by (image::fetched_ancestor_path).
    auto chain = TRY_CTX(image::ParentChain::open(directory, manifest, verify == Verify::Checksums
                                                                          ? image::ChainVerify::Everything
                                                                          : image::ChainVerify::LinksOnly),
                         "serve {}", directory);
    for (size_t n = 1; n <= chain.depth(); ++n)
        TRY(served.add_ancestor(chain.ancestor(n), image::fetched_ancestor_path(n)));
    auto manifest_file = TRY(open_file_at(served.m_directory.get(), std::string(image::kManifestName), O_RDONLY | O_CLOEXEC));
    served.m_manifest = TRY(read_all(manifest_file.get(), fmt::format("{}/{}", directory, image::kManifestName)));
    return served;
}

Result<void> ServedCheckpoint::add_ancestor(const image::ImageReader& ancestor, const std::string& prefix)
{
    for (const auto& file : ancestor.manifest().files()) {
        if (image::is_transformed(file))
            return fail("serve: parent checkpoint {}: {} is compressed, which cannot be served yet",
                        ancestor.directory(), file.name());
        m_sizes[fmt::format("{}/{}", prefix, file.name())] = file.size();
    }
    struct stat st {};
    if (::fstatat(ancestor.directory_fd(), std::string(image::kManifestName).c_str(), &st, 0) < 0)
        return fail_errno(fmt::format("stat {}/{}", ancestor.directory(), image::kManifestName));
    m_sizes[fmt::format("{}/{}", prefix, image::kManifestName)] = static_cast<uint64_t>(st.st_size);
    m_ancestors.push_back(TRY(open_file(ancestor.directory(), O_PATH | O_DIRECTORY | O_CLOEXEC)));
    return {};
}

Result<UniqueFd> ServedCheckpoint::open_served(const std::string& name) const
{
    // Listed names only (m_sizes): "fetched-parent/" N times, then a file
    // of ancestor N.
    std::string_view rest = name;
    size_t ancestor = 0;
    std::string prefix = fmt::format("{}/", image::kFetchedParentName);
    while (rest.starts_with(prefix) && ancestor < m_ancestors.size()) {
        rest.remove_prefix(prefix.size());
        ++ancestor;
    }
    int directory = ancestor == 0 ? m_directory.get() : m_ancestors[ancestor - 1].get();
    return open_file_at(directory, std::string(rest), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
}

namespace {

std::unexpected<Error> refuse_fetch(Channel& channel, const std::string& reason)
{
    (void)channel.send_text(FrameType::Error, reason);
    return fail("{}: {}", channel.peer(), reason);
}

} // namespace

Result<ServeStats> ServedCheckpoint::serve(Channel& channel, const std::function<void()>& on_running) const
{
    ServeStats stats;
    std::map<std::string, UniqueFd> opened;
    std::vector<std::byte> buffer(kDataFramePayload);   // with a key only
    for (;;) {
        auto frame = TRY(channel.receive_or_end());
        if (!frame)
            return fail("{} closed the connection before it had every page (broken transfer)", channel.peer());
        if (frame->type == FrameType::Done)
            return stats;
        if (frame->type == FrameType::Ready) {
            on_running();
            continue;
        }
        if (frame->type != FrameType::Fetch || frame->payload.size() < sizeof(FetchHeader))
            return fail("{} sent an unexpected {} frame", channel.peer(), frame_name(frame->type));
        FetchHeader header {};
        std::memcpy(&header, frame->payload.data(), sizeof(header));
        std::string name = frame->text().substr(sizeof(header));
        if (auto step = fault::step([&] { return fmt::format("fetch #{} ({})", stats.fetches + 1, name); }); !step)
            return refuse_fetch(channel, step.error().message());
        auto listed = m_sizes.find(name);
        if (listed == m_sizes.end())
            return refuse_fetch(channel, fmt::format("{} is not a file of the served checkpoint", name));
        uint64_t size = listed->second;
        uint64_t length = header.length == kWholeFile && header.offset <= size ? size - header.offset : header.length;
        if (header.offset > size || length > size - header.offset)
            return refuse_fetch(channel, fmt::format("{} bytes at {} of {} are past its end ({} bytes)", length,
                                                     header.offset, name, size));
        auto& fd = opened[name];
        if (!fd)
            fd = TRY(open_served(name));
        for (uint64_t done = 0; done < length;) {
            uint64_t piece = std::min<uint64_t>(length - done, kDataFramePayload);
            TRY(channel.send_file_range(FrameType::Data, 0, fd.get(), header.offset + done, piece, name,
                                          buffer));
            done += piece;
        }
        TRY(channel.send(FrameType::Close, 0, {}));
        ++stats.fetches;
        stats.bytes += length;
    }
}

} // namespace cryo::net
