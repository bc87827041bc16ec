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
#include <span>
#include <string>

#include "base/error.h"
#include "net/page_client.h"
#include "net/page_protocol.h"

namespace cryo::net {

class PageFetcher {
public:
    static Result<PageFetcher> connect(const PageServerAddress& server);

    // The manifest file of the served checkpoint, as stored there.
    const std::string& manifest() const { return m_manifest; }
    // The whole of file `name`.
    Result<std::string> fetch_file(const std::string& name);
    // `out.size()` bytes of file `name` from `offset`.
    Result<void> fetch(const std::string& name, uint64_t offset, std::span<std::byte> out);

    const std::string& peer() const { return m_channel.peer(); }
    // Fetches asked so far (files and ranges).
    uint64_t requests() const { return m_requests; }
    // The connection, which a forked lazy-pages server keeps.
    int fd() const { return m_channel.fd(); }

private:
    explicit PageFetcher(Channel channel) : m_channel(std::move(channel)) { }
    // Sends the request and receives Data frames up to Close; each
    // payload goes to `take`.
    template <typename Take>
    Result<uint64_t> request(const std::string& name, uint64_t offset, uint64_t length, Take&& take);

    Channel m_channel;
    std::string m_manifest;
    uint64_t m_requests { 0 };
};

} // namespace cryo::net
