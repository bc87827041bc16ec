// See page_protocol.h.
#include "net/page_protocol.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <csignal>
#include <cstring>
#include <memory>
#include <utility>

#include <pthread.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "base/xxh3.h"

namespace cryo::net {

namespace {

constexpr uint32_t kFrameMagic = 0x53505943; // "CYPS"
constexpr size_t kSplicePipeSize = 1u << 20;

struct FrameHeader {
    uint32_t magic;
    uint32_t type;
    uint32_t file;
    uint32_t reserved;
    uint64_t length;
};
static_assert(sizeof(FrameHeader) == 24);

// HMAC-SHA256 fed in pieces (OpenSSL's EVP_MAC interface).
class Hmac {
public:
    static Result<Hmac> create(std::span<const std::byte> key)
    {
        std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr), EVP_MAC_free);
        if (!mac)
            return fail("OpenSSL has no HMAC");
        Hmac hmac;
        hmac.m_context.reset(EVP_MAC_CTX_new(mac.get()));
        char digest[] = "SHA256";
        OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                OSSL_PARAM_construct_end() };
        if (!hmac.m_context
            || !EVP_MAC_init(hmac.m_context.get(), reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                             params))
            return fail("HMAC-SHA256: cannot set up the key");
        return hmac;
    }
    void update(std::span<const std::byte> data)
    {
        EVP_MAC_update(m_context.get(), reinterpret_cast<const unsigned char*>(data.data()), data.size());
    }
    Result<Mac> finish()
    {
        Mac out {};
        size_t length = 0;
        if (!EVP_MAC_final(m_context.get(), reinterpret_cast<unsigned char*>(out.data()), &length, out.size())
            || length != out.size())
            return fail("HMAC-SHA256 failed");
        return out;
    }

private:
    Hmac() = default;
    std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> m_context { nullptr, EVP_MAC_CTX_free };
};

template<typename T>
std::span<const std::byte> bytes_of(const T& value)
{
    return std::as_bytes(std::span(&value, 1));
}

// recv() until `out` is full. False (no error) when the peer closed the
// connection before the first byte.
Result<bool> receive_exact(int fd, std::span<std::byte> out, const std::string& peer)
{
    size_t done = 0;
    while (done < out.size()) {
        ssize_t got = ::recv(fd, out.data() + done, out.size() - done, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return fail("{} sent nothing for {} s (timed out)", peer, kPeerTimeoutSeconds);
        if (got < 0)
            return fail_errno(fmt::format("receive from {}", peer));
        if (got == 0) {
            if (done == 0)
                return false;
            return fail("{} closed the connection in the middle of a frame (broken transfer)", peer);
        }
        done += got;
    }
    return true;
}

} // namespace

// A read-only mapping of a byte range of a file (page-aligned below).
class MappedRange {
public:
    // `populate`: every page mapped at once (bytes about to be read in
    // full, already in the page cache), instead of a fault per few pages.
    static Result<MappedRange> map(int fd, uint64_t offset, uint64_t length, const std::string& what,
                                   bool populate = false)
    {
        static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
        // Past the end of the file a mapping faults with SIGBUS: refused
        // here (the file must not shrink while it is served).
        struct stat status {};
        if (::fstat(fd, &status) < 0)
            return fail_errno(fmt::format("stat {}", what));
        if (offset + length > static_cast<uint64_t>(status.st_size))
            return fail("{} holds {} bytes, {} at {} were asked", what, status.st_size, length, offset);
        MappedRange range;
        uint64_t start = offset & ~(page - 1);
        range.m_length = offset + length - start;
        range.m_base = ::mmap(nullptr, range.m_length, PROT_READ, MAP_SHARED | (populate ? MAP_POPULATE : 0), fd,
                              static_cast<off_t>(start));
        if (range.m_base == MAP_FAILED)
            return fail_errno(fmt::format("map {} bytes at {} of {}", length, offset, what));
        range.m_bytes = std::span(static_cast<const std::byte*>(range.m_base) + (offset - start), length);
        return range;
    }
    MappedRange(MappedRange&& other) noexcept
        : m_base(std::exchange(other.m_base, MAP_FAILED)), m_length(other.m_length), m_bytes(other.m_bytes)
    {
    }
    MappedRange& operator=(MappedRange&&) = delete;
    ~MappedRange()
    {
        if (m_base != MAP_FAILED)
            ::munmap(m_base, m_length);
    }
    std::span<const std::byte> bytes() const { return m_bytes; }

private:
    MappedRange() = default;
    void* m_base { MAP_FAILED };
    size_t m_length { 0 };
    std::span<const std::byte> m_bytes;
};

const char* frame_name(FrameType type)
{
    switch (type) {
    case FrameType::Hello: return "hello";
    case FrameType::Challenge: return "challenge";
    case FrameType::Proof: return "proof";
    case FrameType::Welcome: return "welcome";
    case FrameType::Request: return "request";
    case FrameType::Ready: return "ready";
    case FrameType::Open: return "open";
    case FrameType::Data: return "data";
    case FrameType::Close: return "close";
    case FrameType::Commit: return "commit";
    case FrameType::Done: return "done";
    case FrameType::Error: return "error";
    case FrameType::Fetch: return "fetch";
    }
    return "unknown";
}

Result<Mac> keyed_proof(std::span<const std::byte> key, std::string_view label, const Nonce& first,
                        const Nonce& second)
{
    auto hmac = TRY(Hmac::create(key));
    hmac.update(std::as_bytes(std::span(label.data(), label.size())));
    hmac.update(first);
    hmac.update(second);
    return hmac.finish();
}

void set_peer_options(int socket)
{
    timeval timeout { .tv_sec = kPeerTimeoutSeconds, .tv_usec = 0 };
    (void)::setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    (void)::setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    int on = 1;
    (void)::setsockopt(socket, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

std::string endpoint(const std::string& address, uint16_t port)
{
    return address.find(':') != std::string::npos ? fmt::format("[{}]:{}", address, port)
                                                   : fmt::format("{}:{}", address, port);
}

Channel::Channel(UniqueFd socket, std::string peer)
    : m_socket(std::move(socket))
    , m_peer(std::move(peer))
{
}

Channel::Channel(Channel&&) noexcept = default;

Channel::~Channel()
{
    if (m_session_key)
        OPENSSL_cleanse(m_session_key->data(), m_session_key->size());
}

void Channel::use_session_key(const Mac& key) { m_session_key = key; }

Result<Mac> Channel::tag(uint64_t sequence, std::span<const std::byte> header, std::span<const std::byte> payload) const
{
    Mac out {};
    if (m_session_key) {
        auto hmac = TRY(Hmac::create(*m_session_key));
        hmac.update(bytes_of(sequence));
        hmac.update(header);
        hmac.update(payload);
        return hmac.finish();
    }
    xxh3::Stream state(sequence);
    state.update(header);
    state.update(payload);
    uint64_t digest = state.digest();
    std::memcpy(out.data(), &digest, sizeof(digest));
    return out;
}

Result<void> Channel::send(FrameType type, uint32_t file, std::span<const std::byte> payload)
{
    FrameHeader header { .magic = kFrameMagic, .type = static_cast<uint32_t>(type), .file = file, .reserved = 0,
                         .length = payload.size() };
    Mac mac = TRY(tag(m_sent++, bytes_of(header), payload));
    iovec parts[3] = { { &header, sizeof(header) },
                       { const_cast<std::byte*>(payload.data()), payload.size() },
                       { mac.data(), tag_size() } };
    return send_parts(type, parts, 0);
}

Result<void> Channel::send_parts(FrameType type, std::span<iovec> parts, int flags)
{
    msghdr message {};
    message.msg_iov = parts.data();
    message.msg_iovlen = parts.size();
    size_t left = 0;
    for (const auto& part : parts)
        left += part.iov_len;
    while (left > 0) {
        // MSG_NOSIGNAL: a peer that went away is an error here, not a
        // SIGPIPE that would end cryo with the tree still frozen.
        ssize_t sent = ::sendmsg(m_socket.get(), &message, MSG_NOSIGNAL | flags);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return fail("{} took nothing for {} s (timed out)", m_peer, kPeerTimeoutSeconds);
        if (sent < 0)
            return fail_errno(fmt::format("send {} frame to {} (broken transfer)", frame_name(type), m_peer));
        left -= sent;
        while (sent > 0) {
            size_t step = std::min<size_t>(sent, message.msg_iov->iov_len);
            message.msg_iov->iov_base = static_cast<char*>(message.msg_iov->iov_base) + step;
            message.msg_iov->iov_len -= step;
            sent -= step;
            if (message.msg_iov->iov_len == 0 && message.msg_iovlen > 1) {
                ++message.msg_iov;
                --message.msg_iovlen;
            }
        }
    }
    return {};
}

namespace {

// sendfile(2) has no MSG_NOSIGNAL: SIGPIPE is blocked in this thread while
// it runs, and one it raised is taken off the pending set before the mask
// is restored, so a peer that went away is an error, not the end of cryo.
class SigpipeBlocked {
public:
    SigpipeBlocked()
    {
        sigemptyset(&m_pipe);
        sigaddset(&m_pipe, SIGPIPE);
        ::pthread_sigmask(SIG_BLOCK, &m_pipe, &m_old);
    }
    ~SigpipeBlocked()
    {
        timespec none {};
        while (::sigtimedwait(&m_pipe, nullptr, &none) == SIGPIPE) {
        }
        ::pthread_sigmask(SIG_SETMASK, &m_old, nullptr);
    }
    SigpipeBlocked(const SigpipeBlocked&) = delete;
    SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

private:
    sigset_t m_pipe {};
    sigset_t m_old {};
};

} // namespace

Result<void> Channel::send_file_range(FrameType type, uint32_t file, int fd, uint64_t offset, uint64_t length,
                                      const std::string& what, std::span<std::byte> buffer)
{
    if (m_session_key || length == 0) {
        if (buffer.size() < length)
            return fail("send {} bytes of {}: a buffer of {} bytes is too small", length, what, buffer.size());
        auto payload = buffer.first(length);
        TRY(pread_exact(fd, payload, offset, what));
        return send(type, file, payload);
    }
    FrameHeader header { .magic = kFrameMagic, .type = static_cast<uint32_t>(type), .file = file, .reserved = 0,
                         .length = length };
    Mac mac {};
    {
        // The checksum is read from the page cache through a mapping (no
        // copy); the same pages are then sent by the kernel.
        auto range = TRY(MappedRange::map(fd, offset, length, what));
        mac = TRY(tag(m_sent++, bytes_of(header), range.bytes()));
    }
    iovec head[1] = { { &header, sizeof(header) } };
    TRY(send_parts(type, head, MSG_MORE));
    {
        SigpipeBlocked blocked;
        auto position = static_cast<off_t>(offset);
        for (uint64_t left = length; left > 0;) {
            ssize_t sent = ::sendfile(m_socket.get(), fd, &position, left);
            if (sent < 0 && errno == EINTR)
                continue;
            if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return fail("{} took nothing for {} s (timed out)", m_peer, kPeerTimeoutSeconds);
            if (sent < 0)
                return fail_errno(fmt::format("send {} frame ({} bytes at {} of {}) to {} (broken transfer)",
                                              frame_name(type), length, offset, what, m_peer));
            if (sent == 0)
                return fail("{} ended at {} while {} bytes at {} were sent to {} (the file shrank)", what,
                            static_cast<uint64_t>(position), length, offset, m_peer);
            left -= static_cast<uint64_t>(sent);
        }
    }
    iovec tail[1] = { { mac.data(), tag_size() } };
    return send_parts(type, tail, 0);
}

Result<void> Channel::send_text(FrameType type, std::string_view text)
{
    return send(type, 0, std::as_bytes(std::span(text.data(), text.size())));
}

Result<Frame> Channel::receive() { return receive(SpliceRoute {}); }

Result<Frame> Channel::receive(const SpliceRoute& target)
{
    auto frame = TRY(receive_frame(target));
    if (!frame)
        return fail("{} closed the connection (broken transfer)", m_peer);
    return *frame;
}

Result<std::optional<Frame>> Channel::receive_or_end() { return receive_frame({}); }

Result<std::optional<Frame>> Channel::receive_frame(const SpliceRoute& route)
{
    m_mapped.reset();
    FrameHeader header {};
    if (!TRY(receive_exact(m_socket.get(), std::as_writable_bytes(std::span(&header, 1)), m_peer)))
        return std::nullopt;
    if (header.magic != kFrameMagic)
        return fail("{} does not speak the cryo page-server protocol (bad frame magic {:#x})", m_peer, header.magic);
    if (header.length > kMaxFramePayload)
        return fail("{} sent a frame of {} bytes, more than the {} allowed", m_peer, header.length, kMaxFramePayload);
    Frame frame { .type = static_cast<FrameType>(header.type), .file = header.file, .payload = {} };
    std::optional<SpliceTarget> target;
    if (route && frame.type == FrameType::Data && header.length >= kSpliceMinPayload)
        target = route(frame.file);
    if (target) {
        frame.payload = TRY(splice_payload(header.length, *target));
        frame.spliced = true;
    } else {
        // The buffer only grows: no allocation (nor zero-filling) per frame.
        if (m_buffer.size() < header.length)
            m_buffer.resize(header.length);
        std::span<std::byte> payload(m_buffer.data(), header.length);
        frame.payload = payload;
        if (!TRY(receive_exact(m_socket.get(), payload, m_peer)) && header.length > 0)
            return fail("{} closed the connection in the middle of a frame (broken transfer)", m_peer);
    }
    Mac received {};
    if (!TRY(receive_exact(m_socket.get(), std::span(received.data(), tag_size()), m_peer)))
        return fail("{} closed the connection in the middle of a frame (broken transfer)", m_peer);
    Mac expected = TRY(tag(m_received++, bytes_of(header), frame.payload));
    if (CRYPTO_memcmp(expected.data(), received.data(), tag_size()) != 0)
        return fail("a {} frame from {} failed its {} check (corrupted or forged)", frame_name(frame.type), m_peer,
                    m_session_key ? "HMAC" : "checksum");
    if (frame.type == FrameType::Error)
        return fail("{} says: {}", m_peer, frame.text());
    return frame;
}

Result<std::span<const std::byte>> Channel::splice_payload(uint64_t length, const SpliceTarget& target)
{
    if (!m_pipe_read) {
        int ends[2];
        if (::pipe2(ends, O_CLOEXEC) < 0)
            return fail_errno(fmt::format("receive from {}: pipe for splice", m_peer));
        m_pipe_read = UniqueFd(ends[0]);
        m_pipe_write = UniqueFd(ends[1]);
        // A bigger pipe: fewer round trips per frame. Past
        // /proc/sys/fs/pipe-max-size only root may go; the size the pipe
        // has is what counts.
        (void)::fcntl(m_pipe_write.get(), F_SETPIPE_SZ, static_cast<int>(kSplicePipeSize));
        int size = ::fcntl(m_pipe_write.get(), F_GETPIPE_SZ);
        if (size <= 0)
            return fail_errno(fmt::format("receive from {}: size of the splice pipe", m_peer));
        m_pipe_size = static_cast<size_t>(size);
    }
    auto moved = splice_into(length, target);
    if (!moved) {
        // Bytes may be left in the pipe: never used again.
        m_pipe_read.reset();
        m_pipe_write.reset();
        return fail(moved.error());
    }
    m_mapped = std::make_unique<MappedRange>(
        TRY(MappedRange::map(target.read_fd, target.end, length, target.name, true)));
    return m_mapped->bytes();
}

Result<void> Channel::splice_into(uint64_t length, const SpliceTarget& target)
{
    for (uint64_t left = length; left > 0;) {
        // The socket's receive timeout holds for splice too.
        ssize_t got = ::splice(m_socket.get(), nullptr, m_pipe_write.get(), nullptr,
                               static_cast<size_t>(std::min<uint64_t>(left, m_pipe_size)), SPLICE_F_MOVE | SPLICE_F_MORE);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return fail("{} sent nothing for {} s (timed out)", m_peer, kPeerTimeoutSeconds);
        if (got < 0)
            return fail_errno(fmt::format("receive from {} into {}", m_peer, target.name));
        if (got == 0)
            return fail("{} closed the connection in the middle of a frame (broken transfer)", m_peer);
        for (auto in_pipe = static_cast<size_t>(got); in_pipe > 0;) {
            ssize_t put = ::splice(m_pipe_read.get(), nullptr, target.fd, nullptr, in_pipe, SPLICE_F_MOVE);
            if (put < 0 && errno == EINTR)
                continue;
            if (put <= 0)
                return fail_errno(fmt::format("write {} bytes from {} into {}", in_pipe, m_peer, target.name),
                                  put == 0 ? EIO : errno);
            in_pipe -= static_cast<size_t>(put);
        }
        left -= static_cast<uint64_t>(got);
    }
    return {};
}

Result<Frame> Channel::expect(FrameType type)
{
    Frame frame = TRY(receive());
    if (frame.type != type)
        return fail("{} sent a {} frame where a {} frame was expected", m_peer, frame_name(frame.type),
                    frame_name(type));
    return frame;
}

} // namespace cryo::net

namespace cryo::net {

namespace {

struct Hello {
    uint32_t version;
    uint32_t has_key;
    Nonce nonce;
};

struct Challenge {
    Nonce nonce;
    Mac proof;   // zero without a key
};

template<typename T>
Result<T> decode(const Frame& frame, const std::string& peer)
{
    T value {};
    if (frame.payload.size() != sizeof(T))
        return fail("{} sent a {} frame of {} bytes, expected {}", peer, frame_name(frame.type), frame.payload.size(),
                    sizeof(T));
    std::memcpy(&value, frame.payload.data(), sizeof(T));
    return value;
}

Result<Nonce> new_nonce()
{
    Nonce nonce {};
    TRY(image::random_bytes(nonce));
    return nonce;
}

// Refuses the peer, telling it why, and returns the same reason as an error
// on this side.
std::unexpected<Error> refuse(Channel& channel, std::string reason)
{
    (void)channel.send_text(FrameType::Error, reason);
    return fail("{}: {}", channel.peer(), reason);
}

} // namespace

Result<void> client_handshake(Channel& channel, const image::Key* key)
{
    Hello hello { .version = kProtocolVersion, .has_key = key ? 1u : 0u, .nonce = TRY(new_nonce()) };
    TRY(channel.send(FrameType::Hello, 0, bytes_of(hello)));
    auto challenge = TRY(decode<Challenge>(TRY(channel.expect(FrameType::Challenge)), channel.peer()));
    if (!key)
        return {};
    // The server proves it holds the key first: a client never sends pages
    // to an impostor.
    Mac expected = TRY(keyed_proof(key->bytes(), "cryo page server: server", hello.nonce, challenge.nonce));
    if (CRYPTO_memcmp(expected.data(), challenge.proof.data(), kMacSize) != 0)
        return refuse(channel, "wrong key: the page server could not prove it holds the client's key");
    Mac proof = TRY(keyed_proof(key->bytes(), "cryo page server: client", hello.nonce, challenge.nonce));
    TRY(channel.send(FrameType::Proof, 0, proof));
    TRY(channel.expect(FrameType::Welcome));
    channel.use_session_key(TRY(keyed_proof(key->bytes(), "cryo page server: session", hello.nonce, challenge.nonce)));
    return {};
}

Result<void> server_handshake(Channel& channel, const image::Key* key)
{
    auto hello = TRY(decode<Hello>(TRY(channel.expect(FrameType::Hello)), channel.peer()));
    if (hello.version != kProtocolVersion)
        return refuse(channel, fmt::format("protocol version {} is not supported (this page server speaks {})",
                                           hello.version, kProtocolVersion));
    if (key && !hello.has_key)
        return refuse(channel, "this page server requires a key (--key): the client has none");
    if (!key && hello.has_key)
        return refuse(channel, "this page server was started without --key: it cannot authenticate the client");
    Challenge challenge { .nonce = TRY(new_nonce()), .proof = {} };
    if (key)
        challenge.proof = TRY(keyed_proof(key->bytes(), "cryo page server: server", hello.nonce, challenge.nonce));
    TRY(channel.send(FrameType::Challenge, 0, bytes_of(challenge)));
    if (!key)
        return {};
    auto proof = TRY(decode<Mac>(TRY(channel.expect(FrameType::Proof)), channel.peer()));
    Mac expected = TRY(keyed_proof(key->bytes(), "cryo page server: client", hello.nonce, challenge.nonce));
    if (CRYPTO_memcmp(expected.data(), proof.data(), kMacSize) != 0)
        return refuse(channel, "wrong key: the client could not prove it holds the page server's key");
    TRY(channel.send(FrameType::Welcome, 0, {}));
    channel.use_session_key(TRY(keyed_proof(key->bytes(), "cryo page server: session", hello.nonce, challenge.nonce)));
    return {};
}

} // namespace cryo::net
