// The sending side of `--page-server`: `cryo dump` and `cryo pre-dump`
// connect to a `cryo page-server` before they freeze anything (so a server
// that is not there, or holds another key, is found while the tree still
// runs), get the parent checkpoint's page maps from it when the dump is
// incremental, then hand this client to an ImageWriter as its sink: every
// file of the checkpoint goes over the connection instead of to a local
// directory. Dropping the client before commit() closes the connection,
// which makes the server discard what it received.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/error.h"
#include "image/key.h"
#include "image/sink.h"
#include "image/writer.h"
#include "net/page_protocol.h"
#include "page_server.pb.h"

namespace cryo::net {

struct PageServerAddress {
    std::string address;
    uint16_t port { 0 };
    std::optional<image::Key> key;   // --key: mutual authentication, every frame authenticated
};

// A TCP connection to a page server, with the peer timeouts set.
Result<UniqueFd> connect_to(const std::string& address, uint16_t port);

// A connection to a page server, authenticated (the handshake of
// page_protocol.h done).
Result<Channel> connect_channel(const PageServerAddress& server);

class PageClient final : public image::ImageSink {
public:
    // Connects and authenticates; `parent` (--prev-images-dir, resolved by
    // the server against its directory) may be empty.
    static Result<std::unique_ptr<PageClient>> connect(const PageServerAddress& server, const std::string& parent);

    // The parent checkpoint as the server found it, when one was asked for.
    const image::ParentCheckpoint* parent() const { return m_parent ? &*m_parent : nullptr; }

    Result<uint32_t> open(const std::string& name) override;
    Result<void> append(uint32_t file, std::span<const std::byte> data) override;
    Result<void> finish(uint32_t file) override;
    Result<void> commit(const std::string& manifest) override;
    std::string describe() const override { return "page server " + m_channel.peer(); }

private:
    explicit PageClient(Channel channel) : m_channel(std::move(channel)) { }

    Channel m_channel;
    uint32_t m_next_file { 1 };
    std::optional<image::ParentCheckpoint> m_parent;
};

// `cryo migrate`: asks a `cryo page-server --restore` to restore the last
// checkpoint it received; returns what the server says it did.
Result<std::string> request_restore(const PageServerAddress& server);

// The writer of a dump or pre-dump: to the page server when `client` is
// set (it is then handed over to the writer), to `directory` otherwise.
Result<image::ImageWriter> open_image_writer(std::unique_ptr<PageClient>& client, const std::string& directory,
                                             image::SyncMode sync, image::WriteTransforms transforms = {});

} // namespace cryo::net
