// See page_client.h.
#include "net/page_client.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>

#include <spdlog/spdlog.h>

namespace cryo::net {

Result<UniqueFd> connect_to(const std::string& address, uint16_t port)
{
    std::string where = endpoint(address, port);
    addrinfo hints {};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    std::string service = std::to_string(port);
    if (int error = ::getaddrinfo(address.c_str(), service.c_str(), &hints, &found); error != 0)
        return fail("page server {}: cannot resolve the address: {}", where, ::gai_strerror(error));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
    int last_errno = 0;
    for (addrinfo* candidate = found; candidate; candidate = candidate->ai_next) {
        UniqueFd socket(::socket(candidate->ai_family, candidate->ai_socktype | SOCK_CLOEXEC, candidate->ai_protocol));
        if (!socket)
            return fail_errno(fmt::format("page server {}: socket", where));
        set_peer_options(socket.get());
        if (::connect(socket.get(), candidate->ai_addr, candidate->ai_addrlen) == 0)
            return socket;
        last_errno = errno;
    }
    return fail_errno(fmt::format("connect to page server {}", where), last_errno);
}

Result<std::unique_ptr<PageClient>> PageClient::connect(const PageServerAddress& server, const std::string& parent)
{
    UniqueFd socket = TRY(connect_to(server.address, server.port));
    std::unique_ptr<PageClient> client(new PageClient(Channel(std::move(socket), endpoint(server.address, server.port))));
    TRY(client_handshake(client->m_channel, server.key ? &*server.key : nullptr));
    image::PageServerRequest request;
    request.set_parent(parent);
    TRY(client->m_channel.send_text(FrameType::Request, request.SerializeAsString()));
    auto ready = TRY(client->m_channel.expect(FrameType::Ready));
    if (!parent.empty()) {
        image::ParentCheckpoint checkpoint;
        if (!checkpoint.ParseFromArray(ready.payload.data(), static_cast<int>(ready.payload.size())))
            return fail("page server {}: cannot decode the parent checkpoint it sent", client->m_channel.peer());
        checkpoint.set_directory(fmt::format("{} on page server {}", checkpoint.directory(), client->m_channel.peer()));
        client->m_parent = std::move(checkpoint);
    }
    spdlog::debug("connected to page server {}{}", client->m_channel.peer(),
                  server.key ? " (authenticated)" : " (no key: trusted network only)");
    return client;
}

Result<Channel> connect_channel(const PageServerAddress& server)
{
    Channel channel(TRY(connect_to(server.address, server.port)), endpoint(server.address, server.port));
    TRY(client_handshake(channel, server.key ? &*server.key : nullptr));
    return channel;
}

Result<std::string> request_restore(const PageServerAddress& server)
{
    Channel channel = TRY(connect_channel(server));
    image::PageServerRequest request;
    request.set_restore(true);
    TRY(channel.send_text(FrameType::Request, request.SerializeAsString()));
    auto done = TRY_CTX(channel.expect(FrameType::Done), "restore on page server {}", channel.peer());
    return done.text();
}

Result<uint32_t> PageClient::open(const std::string& name)
{
    uint32_t file = m_next_file++;
    TRY(m_channel.send(FrameType::Open, file, std::as_bytes(std::span(name.data(), name.size()))));
    return file;
}

Result<void> PageClient::append(uint32_t file, std::span<const std::byte> data)
{
    while (!data.empty()) {
        size_t step = std::min<size_t>(data.size(), kDataFramePayload);
        TRY(m_channel.send(FrameType::Data, file, data.first(step)));
        data = data.subspan(step);
    }
    return {};
}

Result<void> PageClient::finish(uint32_t file)
{
    return m_channel.send(FrameType::Close, file, {});
}

Result<void> PageClient::commit(const std::string& manifest)
{
    TRY(m_channel.send_text(FrameType::Commit, manifest));
    TRY(m_channel.expect(FrameType::Done));
    return {};
}

Result<image::ImageWriter> open_image_writer(std::unique_ptr<PageClient>& client, const std::string& directory,
                                             image::SyncMode sync, image::WriteTransforms transforms)
{
    if (client)
        return image::ImageWriter::create_remote(std::move(client), std::move(transforms));
    return image::ImageWriter::create(directory, sync, std::move(transforms));
}

} // namespace cryo::net
