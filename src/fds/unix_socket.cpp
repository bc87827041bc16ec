// Unix domain sockets: connected pairs inside the tree (socketpair(), or
// both ends of a connection), of type stream, datagram or seqpacket, with
// the data queued on each end and their shutdown state.
//
// Dump: the socket's peer, bound name and shutdown state come from netlink
// sock_diag (UNIX_DIAG_PEER, _NAME, _SHUTDOWN), queried by inode. The data
// waiting on an end is read without consuming it: with SO_PEEK_OFF set on
// cryo's copy of the socket, each recv(MSG_PEEK) returns the next message
// (or the next bytes of a stream), so message boundaries are kept; the peek
// offset is switched off again afterwards. A socket whose peer is outside
// the tree, a bound or listening socket are refused (not supported yet).
//
// Restore: each pair is created again with socketpair(); the data queued on
// one end is sent from the other end, message by message, after the buffers
// were made large enough (SO_SNDBUFFORCE/SO_RCVBUFFORCE), then the shutdowns
// are applied.
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

constexpr size_t kPeekBuffer = 1 << 20;
constexpr uint64_t kMaxQueued = 64ull << 20;

struct SocketInfo {
    uint32_t peer { 0 };
    std::string name;
    uint8_t shutdown { 0 };
};

Result<SocketInfo> query_unix_socket(uint64_t inode)
{
    int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return fail_errno("netlink sock_diag socket");
    UniqueFd netlink(fd);
    struct {
        nlmsghdr header;
        unix_diag_req request;
    } message {};
    message.header.nlmsg_len = sizeof(message);
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST;
    message.request.sdiag_family = AF_UNIX;
    message.request.udiag_states = ~0u;
    message.request.udiag_ino = static_cast<uint32_t>(inode);
    message.request.udiag_show = UDIAG_SHOW_PEER | UDIAG_SHOW_NAME;
    message.request.udiag_cookie[0] = ~0u;
    message.request.udiag_cookie[1] = ~0u;
    if (::send(fd, &message, sizeof(message), 0) < 0)
        return fail_errno("send sock_diag request");
    std::vector<char> buffer(16384);
    ssize_t length = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (length < 0)
        return fail_errno("recv sock_diag answer");
    auto* header = reinterpret_cast<nlmsghdr*>(buffer.data());
    if (!NLMSG_OK(header, static_cast<unsigned>(length)) || header->nlmsg_type == NLMSG_ERROR)
        return fail("sock_diag has no unix socket with inode {}", inode);
    auto* diag = static_cast<unix_diag_msg*>(NLMSG_DATA(header));
    SocketInfo info;
    int attributes_length = static_cast<int>(header->nlmsg_len - NLMSG_LENGTH(sizeof(*diag)));
    for (auto* attribute = reinterpret_cast<rtattr*>(diag + 1); RTA_OK(attribute, attributes_length);
         attribute = RTA_NEXT(attribute, attributes_length)) {
        if (attribute->rta_type == UNIX_DIAG_PEER)
            std::memcpy(&info.peer, RTA_DATA(attribute), sizeof(info.peer));
        else if (attribute->rta_type == UNIX_DIAG_NAME)
            info.name.assign(static_cast<const char*>(RTA_DATA(attribute)), RTA_PAYLOAD(attribute));
        else if (attribute->rta_type == UNIX_DIAG_SHUTDOWN)
            std::memcpy(&info.shutdown, RTA_DATA(attribute), sizeof(info.shutdown));
    }
    return info;
}

// Every message waiting on the socket, in order, without consuming them.
Result<std::vector<std::string>> peek_queue(int fd, int type)
{
    // The peek offset belongs to the socket, shared with the program: put
    // its own value back afterwards.
    int program_offset = -1;
    socklen_t option_length = sizeof(program_offset);
    ::getsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &program_offset, &option_length);
    int offset = 0;
    if (::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &offset, sizeof(offset)) < 0)
        return fail_errno("setsockopt(SO_PEEK_OFF)");
    std::vector<std::string> queue;
    std::string buffer(kPeekBuffer, '\0');
    uint64_t total = 0;
    Result<void> status;
    for (;;) {
        ssize_t got = ::recv(fd, buffer.data(), buffer.size(), MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
        if (got < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                status = fail_errno("recv(MSG_PEEK)");
            break;
        }
        if (got == 0 && type == SOCK_STREAM)
            break;
        if (static_cast<size_t>(got) > buffer.size()) {
            status = fail("a queued message of {} bytes is larger than {} bytes", got, buffer.size());
            break;
        }
        total += static_cast<uint64_t>(got);
        if (total > kMaxQueued) {
            status = fail("more than {} MiB queued", kMaxQueued >> 20);
            break;
        }
        if (type == SOCK_STREAM && !queue.empty())
            queue.back().append(buffer.data(), static_cast<size_t>(got));
        else
            queue.emplace_back(buffer.data(), static_cast<size_t>(got));
    }
    ::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &program_offset, sizeof(program_offset));
    if (!status)
        return std::unexpected(std::move(status.error()));
    return queue;
}

class UnixSocketKind final : public FileKind {
public:
    std::string_view name() const override { return "unix socket"; }

    bool recognises(const FdFacts& facts) const override
    {
        if (!S_ISSOCK(facts.stat.st_mode))
            return false;
        int domain = 0;
        socklen_t length = sizeof(domain);
        return ::getsockopt(facts.local_fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) == 0 && domain == AF_UNIX;
    }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        int type = 0;
        socklen_t length = sizeof(type);
        if (::getsockopt(facts.local_fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0)
            return fail_errno("getsockopt(SO_TYPE)");
        auto info = TRY(query_unix_socket(facts.stat.st_ino));
        if (!info.name.empty())
            return fail("not supported yet: a bound unix socket ({})", info.name[0] == '\0' ? "@" + info.name.substr(1) : info.name);
        if (info.peer == 0)
            return fail("not supported yet: an unconnected unix socket");
        auto* socket = file.mutable_unix_socket();
        socket->set_inode(facts.stat.st_ino);
        socket->set_peer_inode(info.peer);
        socket->set_type(type);
        socket->set_shutdown_read(info.shutdown & 1);
        socket->set_shutdown_write(info.shutdown & 2);
        for (auto& message : TRY(peek_queue(facts.local_fd, type)))
            socket->add_queued(std::move(message));
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext& context) const override
    {
        const auto& socket = file.unix_socket();
        auto key = [](uint64_t inode) { return fmt::format("unix:{}", inode); };
        if (!context.shared.contains(key(socket.inode()))) {
            const image::OpenFile* peer = nullptr;
            for (const auto& other : context.table->files())
                if (other.kind() == image::FILE_KIND_UNIX_SOCKET && other.unix_socket().inode() == socket.peer_inode())
                    peer = &other;
            if (!peer)
                return fail("not supported yet: unix socket {} is connected to a socket outside the tree ({})",
                            socket.inode(), socket.peer_inode());
            int ends[2];
            if (::socketpair(AF_UNIX, socket.type() | SOCK_CLOEXEC, 0, ends) < 0)
                return fail_errno("socketpair");
            UniqueFd mine(ends[0]);
            UniqueFd theirs(ends[1]);
            TRY(fill(mine.get(), theirs.get(), socket));
            TRY(fill(theirs.get(), mine.get(), peer->unix_socket()));
            TRY(apply_shutdown(mine.get(), socket));
            TRY(apply_shutdown(theirs.get(), peer->unix_socket()));
            context.shared.emplace(key(socket.inode()), std::move(mine));
            context.shared.emplace(key(peer->unix_socket().inode()), std::move(theirs));
        }
        auto found = context.shared.find(key(socket.inode()));
        UniqueFd fd = std::move(found->second);
        if (!fd)
            return fail("unix socket {} is opened twice", socket.inode());
        if (file.flags() & O_NONBLOCK) {
            int flags = ::fcntl(fd.get(), F_GETFL);
            ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK);
        }
        return fd;
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_UNIX_SOCKET; }

private:
    // Queues `socket`'s saved messages on `receiver` by sending them from
    // its peer.
    static Result<void> fill(int receiver, int sender, const image::UnixSocket& socket)
    {
        uint64_t total = 0;
        for (const auto& message : socket.queued())
            total += message.size() + 1024;
        if (total == 0)
            return {};
        int size = static_cast<int>(std::min<uint64_t>(total * 2 + 65536, 1u << 30));
        ::setsockopt(receiver, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
        ::setsockopt(sender, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size));
        for (const auto& message : socket.queued()) {
            ssize_t sent = ::send(sender, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
            if (sent != static_cast<ssize_t>(message.size()))
                return fail_errno(fmt::format("queue {} bytes on unix socket {}", message.size(), socket.inode()));
        }
        return {};
    }

    static Result<void> apply_shutdown(int fd, const image::UnixSocket& socket)
    {
        int how = socket.shutdown_read() ? (socket.shutdown_write() ? SHUT_RDWR : SHUT_RD) : SHUT_WR;
        if ((socket.shutdown_read() || socket.shutdown_write()) && ::shutdown(fd, how) < 0)
            return fail_errno("shutdown");
        return {};
    }
};

} // namespace

const FileKind& unix_socket_kind()
{
    static const UnixSocketKind kind;
    return kind;
}

} // namespace cryo::fds
