// The fetching side of `cryo page-server --serve`: a lazy restore on
// another host (`cryo restore --lazy-pages --page-server ...`) connects,
// authenticates as a sender would (net/page_protocol.h), receives the
// manifest of the checkpoint the server serves, and then asks for files
// and byte ranges of files by name. Every answer is framed and tagged like
// every other frame of the protocol (HMAC with a key), and must hold
// exactly the bytes asked for: a connection that breaks or a server that
// answers something else is an error, never fewer bytes or zeros.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "base/error.h"
#include "net/page_client.h"
#include "net/page_protocol.h"

namespace cryo::net {

class PageFetcher {
public:
    // Connects, authenticates and asks the server (page-server --serve)
    // for its checkpoint.
    static Result<std::unique_ptr<PageFetcher>> connect(const PageServerAddress& server);
    // On a connection where the peer serves a checkpoint of its own accord
    // (`cryo migrate --lazy` sends its manifest in a Ready frame first);
    // `channel` must outlive the fetcher.
    static Result<std::unique_ptr<PageFetcher>> over(Channel& channel);
    PageFetcher(const PageFetcher&) = delete;
    PageFetcher& operator=(const PageFetcher&) = delete;

    // The manifest file of the served checkpoint, as stored there.
    const std::string& manifest() const { return m_manifest; }
    // The whole of file `name`.
    Result<std::string> fetch_file(const std::string& name);
    // `out.size()` bytes of file `name` from `offset`.
    Result<void> fetch(const std::string& name, uint64_t offset, std::span<std::byte> out);
    // Tells the server that the restored tree runs (a Ready frame), then,
    // at the end, that every page is in place (Done) or why not (Error):
    // `cryo migrate --lazy` keeps the source frozen until then.
    Result<void> announce_running();
    Result<void> finish(const std::string& error);

    const std::string& peer() const { return m_channel->peer(); }
    // Fetches asked so far (files and ranges).
    uint64_t requests() const { return m_requests; }
    // The connection, which a forked lazy-pages server keeps.
    int fd() const { return m_channel->fd(); }

private:
    PageFetcher() = default;
    // Sends the request and receives Data frames up to Close; each
    // payload goes to `take`.
    template <typename Take>
    Result<uint64_t> request(const std::string& name, uint64_t offset, uint64_t length, Take&& take);

    std::optional<Channel> m_owned;
    Channel* m_channel { nullptr };
    std::string m_manifest;
    uint64_t m_requests { 0 };
};

} // namespace cryo::net
