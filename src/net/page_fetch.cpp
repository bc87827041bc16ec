// See page_fetch.h.
#include "net/page_fetch.h"

#include <cstring>

#include <spdlog/spdlog.h>

#include "page_server.pb.h"

namespace cryo::net {

Result<std::unique_ptr<PageFetcher>> PageFetcher::connect(const PageServerAddress& server)
{
    UniqueFd socket = TRY(connect_to(server.address, server.port));
    std::unique_ptr<PageFetcher> fetcher(new PageFetcher());
    fetcher->m_owned.emplace(std::move(socket), endpoint(server.address, server.port));
    fetcher->m_channel = &*fetcher->m_owned;
    TRY(client_handshake(*fetcher->m_channel, server.key ? &*server.key : nullptr));
    image::PageServerRequest request;
    request.set_serve(true);
    TRY(fetcher->m_channel->send_text(FrameType::Request, request.SerializeAsString()));
    auto ready = TRY(fetcher->m_channel->expect(FrameType::Ready));
    fetcher->m_manifest = ready.text();
    spdlog::debug("fetching from page server {}{}", fetcher->peer(),
                  server.key ? " (authenticated)" : " (no key: trusted network only)");
    return fetcher;
}

Result<std::unique_ptr<PageFetcher>> PageFetcher::over(Channel& channel)
{
    std::unique_ptr<PageFetcher> fetcher(new PageFetcher());
    fetcher->m_channel = &channel;
    fetcher->m_manifest = TRY(channel.expect(FrameType::Ready)).text();
    return fetcher;
}

Result<void> PageFetcher::announce_running()
{
    return m_channel->send_text(FrameType::Ready, "running");
}

Result<void> PageFetcher::finish(const std::string& error)
{
    if (error.empty())
        return m_channel->send(FrameType::Done, 0, {});
    return m_channel->send_text(FrameType::Error, error);
}

template <typename Take>
Result<uint64_t> PageFetcher::request(const std::string& name, uint64_t offset, uint64_t length, Take&& take)
{
    std::string payload(sizeof(FetchHeader), '\0');
    FetchHeader header { .offset = offset, .length = length };
    std::memcpy(payload.data(), &header, sizeof(header));
    payload += name;
    TRY(m_channel->send_text(FrameType::Fetch, payload));
    ++m_requests;
    uint64_t received = 0;
    for (;;) {
        auto frame = TRY_CTX(m_channel->receive(), "fetch {} from page server {}", name, peer());
        if (frame.type == FrameType::Close)
            return received;
        if (frame.type != FrameType::Data)
            return fail("page server {} answered a fetch of {} with a {} frame", peer(), name, frame_name(frame.type));
        if (length != kWholeFile && received + frame.payload.size() > length)
            return fail("page server {} sent more of {} than asked ({} bytes at {})", peer(), name, length, offset);
        TRY(take(frame.payload, received));
        received += frame.payload.size();
    }
}

Result<std::string> PageFetcher::fetch_file(const std::string& name)
{
    std::string content;
    TRY(request(name, 0, kWholeFile, [&](std::span<const std::byte> data, uint64_t) -> Result<void> {
        content.append(reinterpret_cast<const char*>(data.data()), data.size());
        return {};
    }));
    return content;
}

Result<void> PageFetcher::fetch(const std::string& name, uint64_t offset, std::span<std::byte> out)
{
    uint64_t received = TRY(request(name, offset, out.size(), [&](std::span<const std::byte> data, uint64_t at) -> Result<void> {
        std::memcpy(out.data() + at, data.data(), data.size());
        return {};
    }));
    if (received != out.size())
        return fail("page server {} sent {} bytes of {} at {}, {} were asked", peer(), received, name, offset, out.size());
    return {};
}

} // namespace cryo::net
