// Unix domain sockets of type stream, datagram and seqpacket: socketpairs,
// sockets bound to a filesystem path or an abstract name, listeners with
// their pending connections, accepted connections, datagram sockets with
// the messages queued on them (and who sent each), and sockets connected
// to a peer outside the tree that the user declared with `dump --external`.
//
// Dump: the socket's state, peer, name, socket file, pending connections
// (UNIX_DIAG_ICONS lists their client sockets), backlog (UNIX_DIAG_RQLEN)
// and shutdown state come from netlink sock_diag, queried by inode. The
// data waiting on a socket is read without consuming it: with SO_PEEK_OFF
// set on cryo's copy of the socket, each recvmsg(MSG_PEEK) returns the next
// message (or the next bytes of a stream) and, for a datagram, its sender's
// address; the program's peek offset is put back afterwards. An accepted
// socket reports its listener's name: it is told apart from a socket that
// bound the name itself by finding the listener that holds it. Once every
// process is dumped, check_unix_socket_peers() refuses sockets whose peer
// is outside the tree (unless declared external) and pending connections
// from outside. The data a client sent on a connection not accepted yet
// sits on a socket no program has a descriptor for: cryo cannot read it
// without accepting the connection, so such a dump is refused. A name
// relative to the binder's working directory is kept as it is, with the
// directory where its socket file (the socket's inode) was found: the
// process's working directory, else its root; a dump that finds it in
// neither is refused.
//
// Restore: all the unix sockets of the image are made together, the first
// time one of them is opened, because their order matters: sockets are
// created (unnamed pairs with socketpair()), names bound (a stale socket
// file left by the dumped program is replaced; a path some live socket
// holds is refused; a relative name from its directory, by a child that
// shares the socket, so getsockname() gives it back as it was) with the
// socket file's owner and mode, listeners
// listen; datagrams are queued again from a socket bound to their sender's
// address (the in-tree sender itself, or a temporary socket); accepted
// connections are made by connecting the client to the listener (or to a
// temporary listener with the same name) and accepting in cryo, then the
// pending ones are connected and left in the listener's queue; datagram
// sockets connect; stream data is sent from the peer; then shutdowns,
// options, and the files of sockets whose file was unlinked at dump time
// are removed. Credentials (SO_PEERCRED) of the new connections are cryo's.
// An external socket is connected again to its peer's address when it had
// one, or must be given with --inherit-fd.
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

constexpr size_t kPeekBuffer = 1 << 20;
constexpr uint64_t kMaxQueued = 64ull << 20;

// ---------------------------------------------------------------- addresses

bool is_abstract(const std::string& name) { return !name.empty() && name[0] == '\0'; }

// A name for messages: paths as they are, abstract names with '@'.
std::string printable(const std::string& name)
{
    if (name.empty())
        return "(unnamed)";
    if (!is_abstract(name))
        return name;
    std::string text = "@";
    for (char c : name.substr(1))
        text += (c >= 32 && c < 127) ? std::string(1, c) : fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    return text;
}

// The kernel keeps a filesystem name with its terminating NUL (and may pad
// it); an abstract name is exactly its bytes.
std::string normalise_name(const char* data, size_t length)
{
    std::string name(data, length);
    if (!name.empty() && name[0] != '\0')
        name.resize(std::strlen(name.c_str()));
    return name;
}

std::pair<sockaddr_un, socklen_t> address_of(const std::string& name)
{
    sockaddr_un address {};
    address.sun_family = AF_UNIX;
    size_t length = std::min(name.size(), sizeof(address.sun_path) - (is_abstract(name) ? 0 : 1));
    std::memcpy(address.sun_path, name.data(), length);
    return { address, static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length + (is_abstract(name) ? 0 : 1)) };
}

// ---------------------------------------------------------------- sock_diag

struct SocketInfo {
    uint32_t inode { 0 };
    uint8_t state { 0 };
    uint32_t peer { 0 };
    std::string name;
    uint32_t vfs_inode { 0 };   // of the socket file, for a filesystem name
    uint8_t shutdown { 0 };
    uint32_t read_queue { 0 };   // listener: pending connections; else bytes waiting
    uint32_t write_queue { 0 };  // listener: backlog
    std::vector<uint32_t> pending;   // listener: client inodes of pending connections
    uint32_t write_memory { 0 };     // sent and not read yet by the receiver
};

SocketInfo parse_diag(const nlmsghdr* header)
{
    const auto* diag = static_cast<const unix_diag_msg*>(NLMSG_DATA(header));
    SocketInfo info;
    info.inode = diag->udiag_ino;
    info.state = diag->udiag_state;
    int length = static_cast<int>(header->nlmsg_len - NLMSG_LENGTH(sizeof(*diag)));
    for (auto* attribute = reinterpret_cast<const rtattr*>(diag + 1); RTA_OK(attribute, length);
         attribute = RTA_NEXT(attribute, length)) {
        const void* data = RTA_DATA(attribute);
        size_t size = RTA_PAYLOAD(attribute);
        switch (attribute->rta_type) {
        case UNIX_DIAG_PEER:
            std::memcpy(&info.peer, data, sizeof(info.peer));
            break;
        case UNIX_DIAG_NAME:
            info.name = normalise_name(static_cast<const char*>(data), size);
            break;
        case UNIX_DIAG_VFS:
            info.vfs_inode = static_cast<const unix_diag_vfs*>(data)->udiag_vfs_ino;
            break;
        case UNIX_DIAG_SHUTDOWN:
            std::memcpy(&info.shutdown, data, sizeof(info.shutdown));
            break;
        case UNIX_DIAG_RQLEN:
            info.read_queue = static_cast<const unix_diag_rqlen*>(data)->udiag_rqueue;
            info.write_queue = static_cast<const unix_diag_rqlen*>(data)->udiag_wqueue;
            break;
        case UNIX_DIAG_MEMINFO:
            if (size >= (SK_MEMINFO_WMEM_ALLOC + 1) * sizeof(uint32_t))
                info.write_memory = static_cast<const uint32_t*>(data)[SK_MEMINFO_WMEM_ALLOC];
            break;
        case UNIX_DIAG_ICONS:
            info.pending.resize(size / sizeof(uint32_t));
            if (!info.pending.empty())   // memcpy to the null data() of an empty vector is undefined
                std::memcpy(info.pending.data(), data, info.pending.size() * sizeof(uint32_t));
            break;
        default:
            break;
        }
    }
    return info;
}

// One socket by inode, or (inode 0) every unix socket in one of `states`.
Result<std::vector<SocketInfo>> sock_diag(uint32_t inode, uint32_t states = ~0u)
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
    message.header.nlmsg_flags = NLM_F_REQUEST | (inode == 0 ? NLM_F_DUMP : 0);
    message.request.sdiag_family = AF_UNIX;
    message.request.udiag_states = states;
    message.request.udiag_ino = inode;
    message.request.udiag_show = UDIAG_SHOW_PEER | UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN
        | UDIAG_SHOW_MEMINFO;
    message.request.udiag_cookie[0] = ~0u;
    message.request.udiag_cookie[1] = ~0u;
    if (::send(fd, &message, sizeof(message), 0) < 0)
        return fail_errno("send sock_diag request");
    std::vector<SocketInfo> found;
    std::vector<char> buffer(1 << 16);
    for (;;) {
        ssize_t length = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (length < 0)
            return fail_errno("recv sock_diag answer");
        auto remaining = static_cast<unsigned>(length);
        for (auto* header = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(header, remaining);
             header = NLMSG_NEXT(header, remaining)) {
            if (header->nlmsg_type == NLMSG_DONE)
                return found;
            if (header->nlmsg_type == NLMSG_ERROR) {
                if (inode != 0)
                    return fail("sock_diag has no unix socket with inode {}", inode);
                return fail("sock_diag: error listing unix sockets");
            }
            found.push_back(parse_diag(header));
            if (inode != 0)
                return found;
        }
        if (length == 0)
            return found;
    }
}

Result<SocketInfo> query_unix_socket(uint32_t inode)
{
    auto found = TRY(sock_diag(inode));
    if (found.empty())
        return fail("sock_diag has no unix socket with inode {}", inode);
    return found.front();
}

// ---------------------------------------------------------------- dump

// SCM_MAX_FD: the most descriptors one message can carry.
constexpr size_t kMaxPassedFds = 253;

struct QueuedMessage {
    std::string data;
    std::string sender;
    std::vector<UniqueFd> passed;   // files in flight with it (SCM_RIGHTS)
};

// Descriptors in flight (SCM_RIGHTS) in the control data a peek gave: the
// peek installed copies of them in cryo, which the caller now owns.
std::vector<UniqueFd> take_passed_fds(msghdr& header)
{
    std::vector<UniqueFd> passed;
    for (cmsghdr* control = CMSG_FIRSTHDR(&header); control; control = CMSG_NXTHDR(&header, control)) {
        if (control->cmsg_level != SOL_SOCKET || control->cmsg_type != SCM_RIGHTS)
            continue;
        size_t fds = (control->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < fds; ++i) {
            int fd = -1;
            std::memcpy(&fd, CMSG_DATA(control) + i * sizeof(int), sizeof(int));
            passed.emplace_back(fd);
        }
    }
    return passed;
}

// Every message waiting on the socket, in order, without consuming them,
// with copies of the files in flight each carries. A stream's data comes
// as one message, split only where files travel with it.
Result<std::vector<QueuedMessage>> peek_queue(int fd, int type, int& program_offset)
{
    // The peek offset belongs to the socket, shared with the program: put
    // its own value back afterwards.
    program_offset = -1;
    socklen_t option_length = sizeof(program_offset);
    ::getsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &program_offset, &option_length);
    int offset = 0;
    if (::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &offset, sizeof(offset)) < 0)
        return fail_errno("setsockopt(SO_PEEK_OFF)");
    std::vector<QueuedMessage> queue;
    std::string buffer(kPeekBuffer, '\0');
    uint64_t total = 0;
    Result<void> status;
    for (;;) {
        sockaddr_un sender {};
        iovec vector { buffer.data(), buffer.size() };
        msghdr header {};
        header.msg_name = &sender;
        header.msg_namelen = sizeof(sender);
        header.msg_iov = &vector;
        header.msg_iovlen = 1;
        alignas(cmsghdr) char control[CMSG_SPACE(kMaxPassedFds * sizeof(int))];
        header.msg_control = control;
        header.msg_controllen = sizeof(control);
        ssize_t got = ::recvmsg(fd, &header, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
        std::vector<UniqueFd> passed;
        if (got >= 0)
            passed = take_passed_fds(header);
        if (got >= 0 && (header.msg_flags & MSG_CTRUNC)) {
            status = fail("message {} of its queue: its file descriptors did not all reach cryo (MSG_CTRUNC)",
                          queue.size() + 1);
            break;
        }
        if (got < 0) {
            // EINVAL: a stream socket that is not connected has no queue.
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINVAL)
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
        if (type == SOCK_STREAM && !queue.empty() && queue.back().passed.empty() && passed.empty()) {
            queue.back().data.append(buffer.data(), static_cast<size_t>(got));
            continue;
        }
        QueuedMessage message { std::string(buffer.data(), static_cast<size_t>(got)), {}, std::move(passed) };
        if (type == SOCK_DGRAM && header.msg_namelen > offsetof(sockaddr_un, sun_path))
            message.sender = normalise_name(sender.sun_path, header.msg_namelen - offsetof(sockaddr_un, sun_path));
        queue.push_back(std::move(message));
    }
    ::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &program_offset, sizeof(program_offset));
    if (!status)
        return std::unexpected(std::move(status.error()));
    return queue;
}

bool holds_listener_name(const std::vector<SocketInfo>& listeners, const SocketInfo& socket)
{
    return std::ranges::any_of(listeners, [&](const SocketInfo& listener) {
        return listener.inode != socket.inode && listener.name == socket.name
            && (is_abstract(socket.name) || listener.vfs_inode == socket.vfs_inode);
    });
}

// A connected stream or seqpacket socket with a name either bound it
// itself or was accepted and reports its listener's name.
Result<bool> name_is_listeners(const SocketInfo& socket, const SocketInfo& peer)
{
    auto listeners = TRY(sock_diag(0, 1u << TCP_LISTEN));
    if (holds_listener_name(listeners, socket))
        return true;
    if (!peer.name.empty() && holds_listener_name(listeners, peer))
        return false;
    if (peer.name.empty())
        return true;   // every accepted socket has a name: the unnamed end is the client
    return fail("not supported yet: connected unix socket {} and its peer {} both have names and no listener holds either",
                printable(socket.name), printable(peer.name));
}

bool is_relative(const std::string& name) { return !name.empty() && !is_abstract(name) && name[0] != '/'; }

// Where a socket bound to a relative name has its socket file: the name
// was resolved from the binder's working directory at bind time, which the
// kernel does not keep. The process's working directory, then its root, is
// the directory where the file with the socket's inode is found (as cryo
// sees it, like the working directory in the image); empty when neither.
std::string find_name_directory(pid_t pid, const SocketInfo& info)
{
    for (const char* where : { "cwd", "root" }) {
        std::string link = fmt::format("/proc/{}/{}", pid, where);
        struct stat st {};
        if (::stat(fmt::format("{}/{}", link, info.name).c_str(), &st) < 0 || !S_ISSOCK(st.st_mode)
            || st.st_ino != info.vfs_inode)
            continue;
        char target[PATH_MAX];
        ssize_t length = ::readlink(link.c_str(), target, sizeof(target) - 1);
        if (length > 0)
            return std::string(target, static_cast<size_t>(length));
    }
    return {};
}

// The socket file of a socket bound to a path, looked up from the
// process's root (or in the directory a relative name was found in).
Result<void> dump_socket_file(const FdFacts& facts, const SocketInfo& info, image::UnixSocket& socket)
{
    auto* file = socket.mutable_file();
    struct stat st {};
    std::string path = is_relative(info.name) ? fmt::format("{}/{}", socket.name_directory(), info.name)
                                              : fmt::format("/proc/{}/root{}", facts.pid, info.name);
    if (::stat(path.c_str(), &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_ino != info.vfs_inode) {
        file->set_unlinked(true);
        return {};
    }
    file->set_mode(st.st_mode & 07777);
    file->set_uid(st.st_uid);
    file->set_gid(st.st_gid);
    return {};
}

Result<void> dump_listener(const SocketInfo& info, image::UnixSocket& socket)
{
    socket.set_listening(true);
    socket.set_backlog(info.write_queue);
    for (uint32_t client : info.pending) {
        // The data the client sent waits on the server end of the
        // connection, which has no inode and no descriptor until accept();
        // it is still charged to the client's send memory.
        auto client_info = TRY_CTX(query_unix_socket(client), "pending connection from socket:[{}]", client);
        if (client_info.write_memory > 0)
            return fail("listening unix socket {} has a pending connection (from socket:[{}]) with data the program "
                        "has not accepted yet; cryo cannot read it without accepting the connection: dump once the "
                        "program accepted it",
                        printable(info.name), client);
        socket.add_pending_clients(client);
    }
    return {};
}

void dump_options(int fd, image::UnixSocket& socket)
{
    int value = 0;
    socklen_t length = sizeof(value);
    if (::getsockopt(fd, SOL_SOCKET, SO_PASSCRED, &value, &length) == 0)
        socket.set_passcred(value != 0);
    length = sizeof(value);
    if (::getsockopt(fd, SOL_SOCKET, SO_PASSSEC, &value, &length) == 0)
        socket.set_passsec(value != 0);
    length = sizeof(value);
    if (::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, &length) == 0)
        socket.set_receive_buffer(value);
    length = sizeof(value);
    if (::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, &length) == 0)
        socket.set_send_buffer(value);
}

// ---------------------------------------------------------------- restore

std::string key(uint64_t inode) { return fmt::format("unix:{}", inode); }

bool in_table(const image::FileTable& table, uint64_t inode)
{
    return std::ranges::any_of(table.files(), [&](const image::OpenFile& file) {
        return file.kind() == image::FILE_KIND_UNIX_SOCKET && file.unix_socket().inode() == inode;
    });
}

// Connected to a socket outside the tree (or waiting in the queue of a
// listener outside it).
bool peer_outside(const image::FileTable& table, const image::UnixSocket& socket)
{
    if (socket.pending_on() != 0)
        return !in_table(table, socket.pending_on());
    return socket.peer_inode() != 0 && !in_table(table, socket.peer_inode());
}

// Connected to a peer outside the tree, on purpose.
bool is_external(const image::FileTable& table, const image::UnixSocket& socket)
{
    return socket.external() && peer_outside(table, socket);
}

Result<UniqueFd> new_socket(int type)
{
    int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return fail_errno("socket(AF_UNIX)");
    return UniqueFd(fd);
}

// A socket file at `path` that no socket is bound to any more (the dumped
// program's, left behind when it was killed) is removed so the path can be
// bound again; a file of another kind, or one a live socket holds, is not.
Result<void> clear_stale_file(const std::string& path)
{
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0)
        return errno == ENOENT ? Result<void>() : fail_errno(fmt::format("stat {}", path));
    if (!S_ISSOCK(st.st_mode))
        return fail("cannot bind a unix socket to {}: the path exists and is not a socket", path);
    // A datagram connect() finds the socket bound to the file without
    // disturbing it: ECONNREFUSED only when there is none.
    auto probe = TRY(new_socket(SOCK_DGRAM));
    auto [address, length] = address_of(path);
    if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&address), length) == 0 || errno != ECONNREFUSED)
        return fail("cannot bind a unix socket to {}: a running program's socket is bound to it", path);
    if (::unlink(path.c_str()) < 0 && errno != ENOENT)
        return fail_errno(fmt::format("unlink the stale socket file {}", path));
    return {};
}

// The path of a filesystem name bound relative to `directory`; other names
// as they are.
std::string path_of(const std::string& name, const std::string& directory)
{
    if (!is_relative(name) || directory.empty())
        return name;
    return directory.ends_with('/') ? directory + name : fmt::format("{}/{}", directory, name);
}

// bind() with a name relative to `directory`, so that getsockname() gives
// the relative name back: a child sharing the socket changes to the
// directory to bind it, leaving cryo's working directory alone.
int bind_relative(int fd, const sockaddr_un& address, socklen_t length, const std::string& directory)
{
    int dir = ::open(directory.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -1;
    UniqueFd holder(dir);
    pid_t child = ::fork();
    if (child < 0)
        return -1;
    if (child == 0)
        _exit(::fchdir(dir) == 0 && ::bind(fd, reinterpret_cast<const sockaddr*>(&address), length) == 0 ? 0 : errno);
    int status = 0;
    while (::waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    errno = WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
    return errno == 0 ? 0 : -1;
}

Result<void> bind_name(int fd, const std::string& name, const std::string& directory = {})
{
    if (is_relative(name) && directory.empty())
        return fail("cannot bind a unix socket to the relative path '{}': the directory it was bound in is unknown", name);
    if (!is_abstract(name))
        TRY(clear_stale_file(path_of(name, directory)));
    auto [address, length] = address_of(name);
    int bound = is_relative(name) ? bind_relative(fd, address, length, directory)
                                  : ::bind(fd, reinterpret_cast<sockaddr*>(&address), length);
    if (bound < 0) {
        if (errno == EADDRINUSE)
            return fail("cannot bind a unix socket to {}: the name is in use by a running program",
                        printable(path_of(name, directory)));
        return fail_errno(fmt::format("bind to {}", printable(path_of(name, directory))));
    }
    return {};
}

Result<void> connect_to(int fd, const std::string& name)
{
    auto [address, length] = address_of(name);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), length) < 0)
        return fail_errno(fmt::format("connect to {}", printable(name)));
    return {};
}

Result<void> apply_shutdown(int fd, const image::UnixSocket& socket)
{
    int how = socket.shutdown_read() ? (socket.shutdown_write() ? SHUT_RDWR : SHUT_RD) : SHUT_WR;
    if ((socket.shutdown_read() || socket.shutdown_write()) && ::shutdown(fd, how) < 0)
        return fail_errno("shutdown");
    return {};
}

void grow_buffers(int receiver, int sender, uint64_t bytes)
{
    int size = static_cast<int>(std::min<uint64_t>(bytes * 2 + 65536, 1u << 30));
    ::setsockopt(receiver, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
    ::setsockopt(sender, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size));
}

// Options last: SO_PASSCRED makes an unnamed socket bind itself on connect
// or send. The buffer sizes are set back to what the program had (the
// kernel doubles the value given).
void apply_options(int fd, const image::UnixSocket& socket)
{
    int passcred = socket.passcred() ? 1 : 0;
    ::setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &passcred, sizeof(passcred));
    if (socket.passsec()) {
        int passsec = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_PASSSEC, &passsec, sizeof(passsec));
    }
    for (auto [get, force, wanted] : { std::tuple { SO_RCVBUF, SO_RCVBUFFORCE, socket.receive_buffer() },
                                       std::tuple { SO_SNDBUF, SO_SNDBUFFORCE, socket.send_buffer() } }) {
        int current = 0;
        socklen_t length = sizeof(current);
        if (wanted <= 0 || (::getsockopt(fd, SOL_SOCKET, get, &current, &length) == 0 && current == wanted))
            continue;
        int half = wanted / 2;
        ::setsockopt(fd, SOL_SOCKET, force, &half, sizeof(half));
    }
    if (socket.has_peek_offset()) {
        int offset = socket.peek_offset();
        ::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &offset, sizeof(offset));
    }
}

// Sends `data` from `sender`, with the descriptors `files` in flight
// (SCM_RIGHTS), to `address` when one is given (an unconnected datagram
// socket); what send() returns.
ssize_t send_with_files(int sender, const std::string& data, const std::vector<int>& files, const sockaddr_un* address,
                        socklen_t address_length)
{
    iovec vector { const_cast<char*>(data.data()), data.size() };
    msghdr header {};
    header.msg_iov = &vector;
    header.msg_iovlen = 1;
    if (address) {
        header.msg_name = const_cast<sockaddr_un*>(address);
        header.msg_namelen = address_length;
    }
    std::vector<cmsghdr> control((CMSG_SPACE(files.size() * sizeof(int)) + sizeof(cmsghdr) - 1) / sizeof(cmsghdr));
    if (!files.empty()) {
        header.msg_control = control.data();
        header.msg_controllen = CMSG_SPACE(files.size() * sizeof(int));
        cmsghdr* rights = CMSG_FIRSTHDR(&header);
        rights->cmsg_level = SOL_SOCKET;
        rights->cmsg_type = SCM_RIGHTS;
        rights->cmsg_len = CMSG_LEN(files.size() * sizeof(int));
        std::memcpy(CMSG_DATA(rights), files.data(), files.size() * sizeof(int));
    }
    return ::sendmsg(sender, &header, MSG_DONTWAIT | MSG_NOSIGNAL);
}

// Every unix socket of the image but the external ones, made together.
class UnixSockets {
public:
    UnixSockets(const image::FileTable& table, OpenContext& context) : m_table(table), m_context(context)
    {
        for (const auto& file : table.files())
            if (file.kind() == image::FILE_KIND_UNIX_SOCKET && !is_external(table, file.unix_socket()))
                m_sockets.emplace(file.unix_socket().inode(), &file.unix_socket());
    }

    // Builds them all and hands them over, keyed by inode.
    Result<std::map<uint64_t, UniqueFd>> build()
    {
        TRY(create());
        TRY(bind_and_listen());
        for (const auto& [inode, socket] : m_sockets)
            if (socket->type() == SOCK_DGRAM)
                TRY_CTX(queue_datagrams(*socket), "datagrams queued on unix socket socket:[{}] {}", inode,
                        printable(socket->name()));
        TRY(connect_accepted());
        TRY(connect_pending());
        TRY(connect_datagrams());
        for (const auto& [inode, socket] : m_sockets)
            if (socket->type() != SOCK_DGRAM)
                TRY_CTX(queue_stream(*socket), "data queued on unix socket socket:[{}]", inode);
        m_closed_peers.clear();
        for (const auto& [inode, socket] : m_sockets) {
            TRY_CTX(apply_shutdown(m_fds.at(inode).get(), *socket), "unix socket socket:[{}]", inode);
            apply_options(m_fds.at(inode).get(), *socket);
        }
        // Names whose file was gone at dump time lose it again, now that
        // every connection to them is made.
        for (const auto& path : m_unlink_at_end)
            if (::unlink(path.c_str()) < 0 && errno != ENOENT)
                return fail_errno(fmt::format("unlink {}", path));
        m_unlink_at_end.clear();
        return std::move(m_fds);
    }

    ~UnixSockets()
    {
        for (const auto& path : m_unlink_at_end)
            ::unlink(path.c_str());
    }

private:
    const image::UnixSocket* find(uint64_t inode) const
    {
        auto found = m_sockets.find(inode);
        return found == m_sockets.end() ? nullptr : found->second;
    }
    // Both ends in the tree, each the other's peer.
    const image::UnixSocket* mutual_peer(const image::UnixSocket& socket) const
    {
        const auto* peer = find(socket.peer_inode());
        return peer && peer->peer_inode() == socket.inode() ? peer : nullptr;
    }
    bool holds_name(const image::UnixSocket& socket) const
    {
        return !socket.name().empty() && !socket.name_from_listener();
    }
    // The directory a relative `name` is bound in: `known`, or the one of
    // the socket of the tree that holds the name.
    std::string directory_of(const std::string& name, const std::string& known = {}) const
    {
        if (!known.empty() || !is_relative(name))
            return known;
        for (const auto& [inode, socket] : m_sockets)
            if (holds_name(*socket) && socket->name() == name)
                return socket->name_directory();
        return {};
    }
    // The path to connect or send to `socket`'s address.
    std::string path_to(const image::UnixSocket& socket) const
    {
        return path_of(socket.name(), directory_of(socket.name(), socket.name_directory()));
    }

    Result<void> create()
    {
        for (const auto& [inode, socket] : m_sockets) {
            if (m_fds.contains(inode))
                continue;
            if (socket->name_from_listener() && (mutual_peer(*socket) || socket->peer_closed()))
                continue;   // made by accept()
            // An unnamed datagram socket with data and no peer had a
            // socketpair() peer that sent it and is closed since (zdtm
            // socket_close_data): nothing else can send to it.
            bool sent_by_closed_pair = socket->type() == SOCK_DGRAM && socket->name().empty() && socket->peer_inode() == 0
                && !socket->queued().empty();
            if (socket->peer_closed() || sent_by_closed_pair) {
                // A pair whose other end is closed once the data is queued.
                int ends[2];
                if (::socketpair(AF_UNIX, socket->type() | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, ends) < 0)
                    return fail_errno("socketpair");
                m_fds.emplace(inode, UniqueFd(ends[0]));
                m_closed_peers.emplace(inode, UniqueFd(ends[1]));
                continue;
            }
            const auto* peer = mutual_peer(*socket);
            bool pair = peer && !peer->name_from_listener()
                && (socket->type() != SOCK_DGRAM || (socket->name().empty() && peer->name().empty()));
            if (pair) {
                int ends[2];
                if (::socketpair(AF_UNIX, socket->type() | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, ends) < 0)
                    return fail_errno("socketpair");
                m_fds.emplace(inode, UniqueFd(ends[0]));
                m_fds.emplace(peer->inode(), UniqueFd(ends[1]));
                m_paired.insert(inode);
                m_paired.insert(peer->inode());
                continue;
            }
            m_fds.emplace(inode, TRY(new_socket(socket->type())));
        }
        return {};
    }

    // Another socket of the image holds the file at `path` now: the one
    // whose file is unlinked lost its name to it (zdtm del_standalone_un).
    bool path_taken_over(const image::UnixSocket& unlinked, const std::string& path) const
    {
        return std::ranges::any_of(m_sockets, [&](const auto& entry) {
            const auto* other = entry.second;
            return other != &unlinked && holds_name(*other) && !other->file().unlinked() && path_to(*other) == path;
        });
    }

    Result<void> bind_and_listen()
    {
        // Sockets whose file was unlinked first: one that lost its path to
        // another socket of the image gives it up before that one binds.
        std::vector<std::pair<uint64_t, const image::UnixSocket*>> order(m_sockets.begin(), m_sockets.end());
        std::ranges::stable_partition(order, [](const auto& entry) { return entry.second->file().unlinked(); });
        for (const auto& [inode, socket] : order) {
            if (!holds_name(*socket))
                continue;
            int fd = m_fds.at(inode).get();
            TRY_CTX(bind_name(fd, socket->name(), socket->name_directory()), "unix socket socket:[{}]", inode);
            std::string path = path_to(*socket);
            m_holders[path] = inode;
            if (!is_abstract(path)) {
                const auto& file = socket->file();
                if (file.unlinked() && path_taken_over(*socket, path)) {
                    if (::unlink(path.c_str()) < 0)
                        return fail_errno(fmt::format("unlink {}", path));
                } else if (file.unlinked()) {
                    m_unlink_at_end.push_back(path);
                } else if (::chown(path.c_str(), file.uid(), file.gid()) < 0 || ::chmod(path.c_str(), file.mode()) < 0)
                    return fail_errno(fmt::format("owner and mode of the socket file {}", path));
            }
            if (socket->listening() && ::listen(fd, static_cast<int>(socket->backlog())) < 0)
                return fail_errno(fmt::format("listen on {}", printable(socket->name())));
        }
        return {};
    }

    // A socket with the given address to send from or to connect to: the
    // tree's own socket holding it, or a temporary one bound to it.
    Result<int> socket_named(const std::string& name, const std::string& known_directory, int type, bool listening)
    {
        std::string directory = directory_of(name, known_directory);
        std::string path = path_of(name, directory);
        if (auto holder = m_holders.find(path); holder != m_holders.end()) {
            const auto* socket = find(holder->second);
            if (socket->type() == type && socket->listening() == listening)
                return m_fds.at(holder->second).get();
        }
        if (auto temporary = m_temporary.find(path); temporary != m_temporary.end())
            return temporary->second.get();
        auto fd = TRY(new_socket(type));
        bool existed = !is_abstract(name) && ::access(path.c_str(), F_OK) == 0;
        TRY_CTX(bind_name(fd.get(), name, directory), "a temporary socket with the address {}", printable(path));
        if (!is_abstract(name) && !existed)
            m_unlink_at_end.push_back(path);
        if (listening && ::listen(fd.get(), 64) < 0)
            return fail_errno("listen");
        return m_temporary.emplace(path, std::move(fd)).first->second.get();
    }

    // The descriptors (cryo's) of the files message `index` of `socket`
    // carries in flight.
    Result<std::vector<int>> files_in_flight(const image::UnixSocket& socket, int index)
    {
        std::vector<int> fds;
        if (index >= socket.queued_fds_size())
            return fds;
        for (uint32_t id : socket.queued_fds(index).file_ids())
            fds.push_back(TRY_CTX(m_context.open_by_id(id), "file {} in flight with message {}", id, index + 1));
        return fds;
    }

    Result<void> queue_datagrams(const image::UnixSocket& socket)
    {
        if (socket.queued().empty())
            return {};
        int receiver = m_fds.at(socket.inode()).get();
        const auto* peer = m_paired.contains(socket.inode()) ? mutual_peer(socket) : nullptr;
        auto stand_in = m_closed_peers.find(socket.inode());
        bool connected = peer || stand_in != m_closed_peers.end();
        for (int i = 0; i < socket.queued_size(); ++i) {
            const std::string& message = socket.queued(i);
            std::string sender_name = i < socket.queued_from_size() ? socket.queued_from(i) : "";
            int sender = -1;
            if (peer) {
                sender = m_fds.at(peer->inode()).get();   // an unnamed pair: the peer sent it
            } else if (stand_in != m_closed_peers.end()) {
                sender = stand_in->second.get();   // the pair's end closed since
            } else if (socket.name().empty()) {
                return fail("the socket has no name and no peer in the tree to send them from");
            } else if (sender_name.empty()) {
                if (!m_unnamed_sender)
                    m_unnamed_sender = TRY(new_socket(SOCK_DGRAM));
                sender = m_unnamed_sender.get();
            } else {
                sender = TRY(socket_named(sender_name, {}, SOCK_DGRAM, false));
            }
            grow_buffers(receiver, sender, message.size() * 2 + 4096ull * socket.queued_size());
            auto files = TRY(files_in_flight(socket, i));
            ssize_t sent;
            if (connected) {
                sent = send_with_files(sender, message, files, nullptr, 0);
            } else {
                auto [address, length] = address_of(path_to(socket));
                sent = send_with_files(sender, message, files, &address, length);
            }
            if (sent != static_cast<ssize_t>(message.size()))
                return fail_errno(fmt::format("send datagram {} ({} bytes) from {}", i + 1, message.size(), printable(sender_name)));
        }
        return {};
    }

    Result<void> connect_accepted()
    {
        for (const auto& [inode, socket] : m_sockets) {
            const auto* client = mutual_peer(*socket);
            if (!socket->name_from_listener() || (!client && !socket->peer_closed()))
                continue;
            int listener = TRY_CTX(socket_named(socket->name(), socket->name_directory(), socket->type(), true),
                                   "the listener of accepted unix socket socket:[{}]", inode);
            if (client) {
                TRY_CTX(connect_to(m_fds.at(client->inode()).get(), path_to(*socket)), "unix socket socket:[{}]",
                        client->inode());
            } else {
                // Its client is gone: a stand-in closed once the data is queued.
                auto stand_in = TRY(new_socket(socket->type()));
                TRY(connect_to(stand_in.get(), path_to(*socket)));
                m_closed_peers.emplace(inode, std::move(stand_in));
            }
            int accepted = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (accepted < 0)
                return fail_errno(fmt::format("accept the connection of unix socket socket:[{}] on {}", client->inode(),
                                              printable(socket->name())));
            m_fds.emplace(inode, UniqueFd(accepted));
        }
        return {};
    }

    Result<void> connect_pending()
    {
        for (const auto& [inode, socket] : m_sockets)
            for (uint64_t client : socket->pending_clients()) {
                if (!m_fds.contains(client))
                    return fail("listening unix socket {} has a pending connection from socket:[{}], which is not in the image",
                                printable(socket->name()), client);
                TRY_CTX(connect_to(m_fds.at(client).get(), path_to(*socket)), "pending connection of socket:[{}]",
                        client);
            }
        return {};
    }

    Result<void> connect_datagrams()
    {
        for (const auto& [inode, socket] : m_sockets) {
            if (socket->type() != SOCK_DGRAM || socket->peer_inode() == 0 || m_paired.contains(inode))
                continue;
            const auto* peer = find(socket->peer_inode());
            if (!peer)
                return fail("datagram unix socket socket:[{}] is connected to socket:[{}], which is not in the image", inode,
                            socket->peer_inode());
            if (peer->name().empty())
                return fail("datagram unix socket socket:[{}] is connected to socket:[{}], which has no name", inode,
                            socket->peer_inode());
            TRY_CTX(connect_to(m_fds.at(inode).get(), path_to(*peer)), "datagram unix socket socket:[{}]", inode);
        }
        return {};
    }

    // Stream and seqpacket data waiting on `socket`, sent again by its peer.
    Result<void> queue_stream(const image::UnixSocket& socket)
    {
        if (socket.queued().empty())
            return {};
        const auto* peer = find(socket.peer_inode());
        auto closed = m_closed_peers.find(socket.inode());
        if (!peer && closed == m_closed_peers.end())
            return fail("{} bytes are queued but the peer socket:[{}] is not in the image", socket.queued(0).size(),
                        socket.peer_inode());
        int receiver = m_fds.at(socket.inode()).get();
        int sender = peer ? m_fds.at(peer->inode()).get() : closed->second.get();
        uint64_t total = 0;
        for (const auto& message : socket.queued())
            total += message.size() + 1024;
        grow_buffers(receiver, sender, total);
        for (int i = 0; i < socket.queued_size(); ++i) {
            const std::string& message = socket.queued(i);
            ssize_t sent = send_with_files(sender, message, TRY(files_in_flight(socket, i)), nullptr, 0);
            if (sent != static_cast<ssize_t>(message.size()))
                return fail_errno(fmt::format("queue {} bytes", message.size()));
        }
        return {};
    }

    const image::FileTable& m_table;
    OpenContext& m_context;
    std::map<uint64_t, const image::UnixSocket*> m_sockets;
    std::map<uint64_t, UniqueFd> m_fds;
    std::set<uint64_t> m_paired;                    // made by socketpair()
    std::map<uint64_t, UniqueFd> m_closed_peers;    // stand-ins for peers that are gone
    std::map<std::string, uint64_t> m_holders;      // name -> the socket of the tree bound to it
    std::map<std::string, UniqueFd> m_temporary;    // temporary sockets bound to a name
    UniqueFd m_unnamed_sender;
    std::vector<std::string> m_unlink_at_end;
};

// A socket whose peer is outside the tree: connected again to the peer's
// address.
Result<UniqueFd> open_external(const image::UnixSocket& socket)
{
    if (socket.peer_name().empty())
        return fail("unix socket socket:[{0}] was connected to socket:[{1}] outside the dumped tree, which has no name "
                    "to connect to again: give cryo a socket to use in its place with --inherit-fd fd[N]:socket:[{0}]",
                    socket.inode(), socket.peer_inode());
    auto fd = TRY(new_socket(socket.type()));
    // A blocking connect: a stream connect waits for room in the backlog.
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
    if (is_relative(socket.peer_name()))
        return fail("unix socket socket:[{}] was connected to '{}' outside the dumped tree, a name relative to a "
                    "directory cryo does not know: give cryo a socket to use in its place with --inherit-fd "
                    "fd[N]:socket:[{}]",
                    socket.inode(), socket.peer_name(), socket.inode());
    if (!socket.name().empty() && !socket.name_from_listener())
        TRY(bind_name(fd.get(), socket.name(), socket.name_directory()));
    TRY_CTX(connect_to(fd.get(), socket.peer_name()), "unix socket socket:[{}], connected outside the dumped tree",
            socket.inode());
    TRY(apply_shutdown(fd.get(), socket));
    apply_options(fd.get(), socket);
    return fd;
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
        auto info = TRY(query_unix_socket(static_cast<uint32_t>(facts.stat.st_ino)));
        auto* socket = file.mutable_unix_socket();
        socket->set_inode(facts.stat.st_ino);
        socket->set_type(type);
        socket->set_shutdown_read(info.shutdown & 1);
        socket->set_shutdown_write(info.shutdown & 2);
        socket->set_name(info.name);
        if (is_relative(info.name))
            socket->set_name_directory(find_name_directory(facts.pid, info));

        SocketInfo peer;
        if (info.peer == 0 && info.state == TCP_ESTABLISHED && type != SOCK_DGRAM) {
            // The peer has no inode: a connection not accepted yet, or a
            // peer that is gone.
            auto listeners = TRY(sock_diag(0, 1u << TCP_LISTEN));
            auto listener = std::ranges::find_if(listeners, [&](const SocketInfo& candidate) {
                return std::ranges::count(candidate.pending, info.inode) > 0;
            });
            if (listener != listeners.end()) {
                socket->set_pending_on(listener->inode);
                socket->set_peer_name(listener->name);
                socket->set_external(facts.declared_external);
            } else {
                socket->set_peer_closed(true);
            }
        }
        if (info.peer != 0) {
            socket->set_peer_inode(info.peer);
            if (auto found = query_unix_socket(info.peer))
                peer = *found;
            socket->set_peer_name(peer.name);
            socket->set_external(facts.declared_external);
        }
        if (!info.name.empty() && (info.peer != 0 || socket->peer_closed()) && type != SOCK_DGRAM)
            socket->set_name_from_listener(TRY(name_is_listeners(info, peer)));
        if (is_relative(info.name) && !socket->name_from_listener() && socket->name_directory().empty())
            return fail("unix socket bound to the relative path '{}': its socket file (inode {}) is neither in the "
                        "working directory nor in the root of the process (moved, deleted, or bound from another "
                        "directory), so cryo cannot tell where to bind it again",
                        info.name, info.vfs_inode);
        if (!info.name.empty() && !socket->name_from_listener() && !is_abstract(info.name))
            TRY(dump_socket_file(facts, info, *socket));
        if (info.state == TCP_LISTEN)
            TRY(dump_listener(info, *socket));
        dump_options(facts.local_fd, *socket);

        int peek_offset = -1;
        if (info.state != TCP_LISTEN)
            for (auto& message : TRY(peek_queue(facts.local_fd, type, peek_offset))) {
                if (!message.passed.empty()) {
                    while (socket->queued_fds_size() < socket->queued_size())
                        socket->add_queued_fds();
                    auto* files = socket->add_queued_fds();
                    for (auto& passed : message.passed)
                        files->add_file_ids(TRY_CTX(facts.register_in_flight(std::move(passed)),
                                                    "message {} of its queue", socket->queued_size() + 1));
                }
                socket->add_queued(std::move(message.data));
                if (type == SOCK_DGRAM)
                    socket->add_queued_from(std::move(message.sender));
            }
        if (peek_offset >= 0)
            socket->set_peek_offset(peek_offset);
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext& context) const override
    {
        const auto& socket = file.unix_socket();
        UniqueFd fd;
        if (is_external(*context.table, socket)) {
            fd = TRY(open_external(socket));
        } else {
            if (!context.shared.contains("unix:built")) {
                context.shared.emplace("unix:built", UniqueFd());
                for (auto& [inode, built] : TRY(UnixSockets(*context.table, context).build()))
                    context.shared.emplace(key(inode), std::move(built));
            }
            auto found = context.shared.find(key(socket.inode()));
            if (found == context.shared.end() || !found->second)
                return fail("unix socket {} is opened twice", socket.inode());
            fd = std::move(found->second);
        }
        int flags = ::fcntl(fd.get(), F_GETFL);
        ::fcntl(fd.get(), F_SETFL, (flags & ~O_NONBLOCK) | (file.flags() & O_NONBLOCK));
        return fd;
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_UNIX_SOCKET; }
};

} // namespace

const FileKind& unix_socket_kind()
{
    static const UnixSocketKind kind;
    return kind;
}

Result<void> check_unix_socket_peers(const image::FileTable& files, const std::vector<const image::FdTable*>& tables)
{
    auto where = [&](uint32_t id) { return where_open(id, tables); };
    for (const auto& file : files.files()) {
        if (file.kind() != image::FILE_KIND_UNIX_SOCKET)
            continue;
        const auto& socket = file.unix_socket();
        for (uint64_t client : socket.pending_clients())
            if (!in_table(files, client))
                return fail("{}listening unix socket {} has a pending connection from socket:[{}], which is outside "
                            "the dumped tree: cryo cannot make it again; dump once the program accepted it",
                            where(file.id()), printable(socket.name()), client);
        if (!peer_outside(files, socket))
            continue;
        if (!socket.external())
            return fail("{}unix socket connected to a peer outside the dumped tree (socket:[{}], peer {}): declare it "
                        "with --external socket:[{}]",
                        where(file.id()), socket.inode(),
                        socket.peer_name().empty() ? fmt::format("socket:[{}], unnamed", socket.peer_inode())
                                                   : printable(socket.peer_name()),
                        socket.inode());
        if (!socket.queued().empty())
            return fail("{}external unix socket socket:[{}] holds data its peer outside the tree sent, which cryo "
                        "cannot queue again: dump once the program read it",
                        where(file.id()), socket.inode());
    }
    return {};
}

} // namespace cryo::fds
