// The wire protocol between `cryo dump/pre-dump --page-server` (the client)
// and `cryo page-server` (the server), over one TCP connection.
//
// Every message is a frame: a 24-byte header (magic, type, file id, payload
// length), the payload, and a tag over a per-direction sequence number, the
// header and the payload. Without a key the tag is an XXH3-64 (it catches
// corruption, truncation and reordering, not an attacker); with a key it is
// an HMAC-SHA256 under the session key, so every frame after the handshake
// is authenticated and cannot be forged, replayed, reordered or dropped
// unnoticed. Payloads are not encrypted: the pages can be read on the wire
// (dump --encrypt is not available with --page-server yet).
//
// The conversation:
//   client: Hello (version, whether it has a key, client nonce)
//   server: Challenge (server nonce, and with a key its proof:
//           HMAC(key, "server" | client nonce | server nonce))
//   client: Proof (HMAC(key, "client" | client nonce | server nonce))
//   server: Welcome, or Error (wrong key); then both sides switch to the
//           session key HMAC(key, "session" | nonces)
//   client: Request (the parent checkpoint, if any)
//   server: Ready (with the parent's page maps and manifest) or Error
//   client: Open(id, name), Data(id, bytes)..., Close(id) for every file
//   client: Commit (the encoded manifest)
//   server: Done once every file matched the manifest and the manifest is
//           on disk, or Error saying why.
// A lazy restore from `cryo page-server --serve` asks for a checkpoint the
// server has instead (Request with serve set): the server answers Ready
// with the checkpoint's manifest file, then each Fetch (a file name and a
// byte range of it) with Data frames holding exactly those bytes and a
// Close. The client may say Ready ("running": the restored tree runs)
// in between, and ends with Done (every page in place) or Error.
// `cryo migrate --lazy` turns this round: the sender of the checkpoint
// sends Request (restore and lazy set) and Ready with its manifest, then
// answers the Fetch frames of the page server, which restores lazily.
// Either side may send Error (a message) instead of the frame expected and
// close: the other side reports it. A connection that ends anywhere before
// Done leaves the server's directory without a manifest.
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "image/key.h"

namespace cryo::net {

inline constexpr uint32_t kProtocolVersion = 1;
// Frames carry at most this much payload; a bigger length is refused (a
// corrupted or hostile header must not make the receiver allocate GiBs).
// The parent's page maps travel in one frame, hence more than the data
// frames, which carry at most kDataFramePayload.
inline constexpr uint64_t kMaxFramePayload = 64u << 20;
inline constexpr uint64_t kDataFramePayload = 8u << 20;
inline constexpr size_t kNonceSize = 32;
inline constexpr size_t kMacSize = 32;

enum class FrameType : uint32_t {
    Hello = 1,
    Challenge,
    Proof,
    Welcome,
    Request,
    Ready,
    Open,
    Data,
    Close,
    Commit,
    Done,
    Error,
    Fetch,
};

// The payload of a Fetch frame: this header, then the file's name. A
// length of kWholeFile asks for the file from `offset` to its end.
struct FetchHeader {
    uint64_t offset;
    uint64_t length;
};
inline constexpr uint64_t kWholeFile = ~0ull;

const char* frame_name(FrameType type);

// A frame received; its payload lives in the channel's buffer (or, when
// `spliced`, in a mapping of the file it was spliced into) until the next
// receive().
struct Frame {
    FrameType type;
    uint32_t file { 0 };
    std::span<const std::byte> payload;
    bool spliced { false };

    std::string text() const { return { reinterpret_cast<const char*>(payload.data()), payload.size() }; }
};

// Where Channel::receive() may put a frame's payload instead of its
// buffer: appended to a regular file with splice(2) (socket to pipe to
// file, at the descriptor's position, which it advances). `fd` is the
// file open for writing, `read_fd` the same file open for reading (for
// the mapping the tag is checked over), `end` its size before, which
// must be that position; `name` is for messages.
struct SpliceTarget {
    int fd { -1 };
    int read_fd { -1 };
    uint64_t end { 0 };
    std::string name;
};
// Payloads shorter than this are received into the buffer even when a
// target is offered: for them the pipe round trips and the mapping cost
// more than the copy they save.
inline constexpr uint64_t kSpliceMinPayload = 64u << 10;

using Mac = std::array<std::byte, kMacSize>;
using Nonce = std::array<std::byte, kNonceSize>;

// HMAC-SHA256(key, label | first | second).
Result<Mac> keyed_proof(std::span<const std::byte> key, std::string_view label, const Nonce& first,
                        const Nonce& second);

class MappedRange;

// One end of a connection: frames out and in, checked.
class Channel {
public:
    Channel(UniqueFd socket, std::string peer);
    Channel(Channel&&) noexcept;
    ~Channel();

    Result<void> send(FrameType type, uint32_t file, std::span<const std::byte> payload);
    Result<void> send_text(FrameType type, std::string_view text);
    // A frame whose payload is `length` bytes of file `fd` (named `what`)
    // at `offset`. Without a key the bytes go from the page cache to the
    // socket with sendfile(2), never copied through cryo: the checksum is
    // computed over a read-only mapping of the range. With a key every
    // byte must pass through the HMAC anyway: read into `buffer` (at least
    // `length` bytes), then sent as by send().
    Result<void> send_file_range(FrameType type, uint32_t file, int fd, uint64_t offset, uint64_t length,
                                 const std::string& what, std::span<std::byte> buffer);
    // The next frame; an Error frame from the peer becomes an error here.
    Result<Frame> receive();
    // The next frame; the payload of a Data frame (at least
    // kSpliceMinPayload bytes) for which `target` names a file (it is
    // asked with the frame's file id) goes from the socket into that file
    // with splice(2), never through cryo's memory. Its tag is then checked
    // over a read-only mapping of the bytes in the file, which becomes the
    // frame's payload (`spliced` set). On any error (a bad tag, a broken
    // connection) the bytes that arrived are in the file already, the
    // channel is unusable and the file must be discarded.
    using SpliceRoute = std::function<std::optional<SpliceTarget>(uint32_t file)>;
    Result<Frame> receive(const SpliceRoute& target);
    // The next frame, or nothing when the peer closed the connection
    // cleanly between two frames.
    Result<std::optional<Frame>> receive_or_end();
    // The next frame, which must be of this type.
    Result<Frame> expect(FrameType type);

    // From now on every frame is authenticated with this key.
    void use_session_key(const Mac& key);

    const std::string& peer() const { return m_peer; }
    int fd() const { return m_socket.get(); }

private:
    Result<std::optional<Frame>> receive_frame(const SpliceRoute& route);
    Result<std::span<const std::byte>> splice_payload(uint64_t length, const SpliceTarget& target);
    Result<void> splice_into(uint64_t length, const SpliceTarget& target);
    Result<void> send_parts(FrameType type, std::span<iovec> parts, int flags);
    Result<std::array<std::byte, kMacSize>> tag(uint64_t sequence, std::span<const std::byte> header,
                                                std::span<const std::byte> payload) const;
    size_t tag_size() const { return m_session_key ? kMacSize : sizeof(uint64_t); }

    UniqueFd m_socket;
    std::string m_peer;
    std::optional<Mac> m_session_key;
    uint64_t m_sent { 0 };
    uint64_t m_received { 0 };
    std::vector<std::byte> m_buffer;   // the payload of the last frame received
    // splice(2) goes through a pipe, made on first use; the mapping holds
    // the payload of the last frame spliced.
    UniqueFd m_pipe_read;
    UniqueFd m_pipe_write;
    size_t m_pipe_size { 0 };
    std::unique_ptr<MappedRange> m_mapped;
};

// The handshake of each side (see above). With a key, both sides have
// proved that they hold it when these return, and the channel
// authenticates every later frame with the session key.
Result<void> client_handshake(Channel& channel, const image::Key* key);
Result<void> server_handshake(Channel& channel, const image::Key* key);

// Send and receive timeouts on a connection (a peer that stops answering
// must not keep a tree frozen, or a server busy, forever), and no Nagle
// delay: a lazy restore's fetches are small requests answered at once,
// and a small frame held back until the previous one is acknowledged
// costs a delayed ACK (40 ms) each.
inline constexpr int kPeerTimeoutSeconds = 120;
void set_peer_options(int socket);

// "HOST:PORT" for messages.
std::string endpoint(const std::string& address, uint16_t port);

} // namespace cryo::net
