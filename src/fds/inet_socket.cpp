// IPv4 and IPv6 sockets of the host network namespace: TCP sockets that
// are new, bound, listening or connected (established), and UDP sockets,
// bound and/or connected, with the datagrams queued on them.
//
// Dump: the addresses come from getsockname/getpeername on cryo's copy of
// the socket, the state, shutdown bits, a listener's backlog and its queue
// of connections not accepted yet from netlink sock_diag (INET_DIAG, found
// by inode), the options from getsockopt; only the options that differ from
// a new socket's are kept, so a restore sets what the program set and
// leaves the kernel's defaults alone (the buffer sizes too: the kernel does
// not tell whether the program set them, so a size that autotuning grew is
// restored as a fixed size). An established TCP connection is taken with
// TCP_REPAIR (net/tcp_repair.h) only with --tcp-established; the socket then
// stays in repair mode so that killing the process sends nothing to the
// peer. Queued UDP datagrams are peeked, one after the other, with
// SO_PEEK_OFF, with their senders' addresses. A listener with connections
// not accepted yet, TCP connections that are closing or half closed, and
// UDP sockets with UDP_CORK set are refused: cryo cannot make them again.
//
// Restore: each socket is made in cryo and bound to its address again (the
// port is free: the dumped process is gone). A listener binds with
// SO_REUSEADDR and sets the program's value after listen(), so it can share
// its port with the connections it had accepted; a connection is rebuilt in
// repair mode, whose binds always succeed. Once every file of the
// checkpoint is open, finish() takes the connections out of repair mode and
// queues the datagrams again: each is sent from the socket of the
// checkpoint bound to its sender's address, or from a temporary socket
// bound to it; when that address is taken by a live program the datagram
// is dropped with a warning, as a network may drop it.
#include "fds/inet_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "fds/file_kind.h"
#include "net/tcp_repair.h"

namespace cryo::fds {

namespace {

constexpr uint64_t kMaxQueued = 64ull << 20;
constexpr size_t kMaxDatagram = 65536;
constexpr int kMaxDatagrams = 1 << 16;

// ---------------------------------------------------------------- addresses

struct SocketAddress {
    sockaddr_storage storage {};
    socklen_t length { 0 };
    sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
};

image::InetAddress to_image(const sockaddr_storage& address)
{
    image::InetAddress result;
    if (address.ss_family == AF_INET) {
        const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
        result.set_address(std::string(reinterpret_cast<const char*>(&v4->sin_addr), 4));
        result.set_port(ntohs(v4->sin_port));
    } else if (address.ss_family == AF_INET6) {
        const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
        result.set_address(std::string(reinterpret_cast<const char*>(&v6->sin6_addr), 16));
        result.set_port(ntohs(v6->sin6_port));
    }
    return result;
}

// The address in the form a socket of `family` takes it.
SocketAddress from_image(int family, const image::InetAddress& address)
{
    SocketAddress result;
    if (family == AF_INET) {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&result.storage);
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<uint16_t>(address.port()));
        std::memcpy(&v4->sin_addr, address.address().data(), std::min<size_t>(address.address().size(), 4));
        result.length = sizeof(sockaddr_in);
    } else {
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&result.storage);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<uint16_t>(address.port()));
        std::memcpy(&v6->sin6_addr, address.address().data(), std::min<size_t>(address.address().size(), 16));
        result.length = sizeof(sockaddr_in6);
    }
    return result;
}

bool is_wildcard(const image::InetAddress& address)
{
    return std::ranges::all_of(address.address(), [](char byte) { return byte == 0; });
}

const char* family_name(int family) { return family == AF_INET ? "IPv4" : "IPv6"; }
const char* protocol_name(int protocol) { return protocol == IPPROTO_TCP ? "TCP" : "UDP"; }

const char* state_name(uint32_t state)
{
    static constexpr const char* kNames[] = { "?",         "established", "syn-sent",   "syn-received",
                                              "fin-wait-1", "fin-wait-2", "time-wait",  "closed",
                                              "close-wait", "last-ack",   "listening",  "closing" };
    return state < std::size(kNames) ? kNames[state] : "?";
}

// ---------------------------------------------------------------- sock_diag

struct DiagInfo {
    uint8_t state { 0 };
    uint32_t receive_queue { 0 };   // listener: connections not accepted yet
    uint32_t send_queue { 0 };      // listener: backlog
    uint8_t shutdown { 0 };
};

void read_diag(const nlmsghdr* header, DiagInfo& info)
{
    const auto* message = static_cast<const inet_diag_msg*>(NLMSG_DATA(header));
    info.state = message->idiag_state;
    info.receive_queue = message->idiag_rqueue;
    info.send_queue = message->idiag_wqueue;
    int length = static_cast<int>(header->nlmsg_len - NLMSG_LENGTH(sizeof(*message)));
    for (auto* attribute = reinterpret_cast<const nlattr*>(message + 1); length >= static_cast<int>(sizeof(nlattr));) {
        if (attribute->nla_len < sizeof(nlattr) || attribute->nla_len > length)
            break;
        if (attribute->nla_type == INET_DIAG_SHUTDOWN)
            info.shutdown = *reinterpret_cast<const uint8_t*>(attribute + 1);
        int step = NLA_ALIGN(attribute->nla_len);
        length -= step;
        attribute = reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(attribute) + step);
    }
}

// The socket with `inode` among every socket of `family` and `protocol`;
// none for a socket sock_diag does not list (one never bound, or bound
// and neither listening nor connected, which is closed).
Result<std::optional<DiagInfo>> query_diag(int family, int protocol, uint64_t inode)
{
    int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return fail_errno("netlink sock_diag socket");
    UniqueFd netlink(fd);
    struct {
        nlmsghdr header;
        inet_diag_req_v2 request;
    } message {};
    message.header.nlmsg_len = sizeof(message);
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    message.request.sdiag_family = static_cast<uint8_t>(family);
    message.request.sdiag_protocol = static_cast<uint8_t>(protocol);
    message.request.idiag_states = ~0u;
    if (::send(fd, &message, sizeof(message), 0) < 0)
        return fail_errno("send sock_diag request");
    std::optional<DiagInfo> found;
    std::vector<char> buffer(1 << 16);
    for (;;) {
        ssize_t length = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (length < 0)
            return fail_errno("recv sock_diag answer");
        if (length == 0)
            break;
        auto remaining = static_cast<unsigned>(length);
        for (auto* header = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(header, remaining);
             header = NLMSG_NEXT(header, remaining)) {
            if (header->nlmsg_type == NLMSG_ERROR)
                return fail("sock_diag: error listing {} {} sockets", family_name(family), protocol_name(protocol));
            if (header->nlmsg_type == NLMSG_DONE)
                return found;
            if (static_cast<const inet_diag_msg*>(NLMSG_DATA(header))->idiag_inode == inode) {
                found.emplace();
                read_diag(header, *found);
            }
        }
    }
    return fail("sock_diag: the answer ended early");
}

// ---------------------------------------------------------------- options

// Integer options, kept in the InetSocketOptions field of that name when
// they differ from a new socket's.
struct IntOption {
    int level;
    int name;
    const char* field;
    int family;     // 0: both
    int protocol;   // 0: both
};

constexpr IntOption kIntOptions[] = {
    { SOL_SOCKET, SO_REUSEADDR, "reuse_address", 0, 0 },
    { SOL_SOCKET, SO_REUSEPORT, "reuse_port", 0, 0 },
    { SOL_SOCKET, SO_KEEPALIVE, "keepalive", 0, 0 },
    { SOL_SOCKET, SO_BROADCAST, "broadcast", 0, 0 },
    { SOL_SOCKET, SO_MARK, "mark", 0, 0 },
    { SOL_SOCKET, SO_RCVLOWAT, "receive_lowat", 0, 0 },
    { IPPROTO_TCP, TCP_NODELAY, "no_delay", 0, IPPROTO_TCP },
    { IPPROTO_TCP, TCP_CORK, "cork", 0, IPPROTO_TCP },
    { IPPROTO_TCP, TCP_KEEPIDLE, "keep_idle", 0, IPPROTO_TCP },
    { IPPROTO_TCP, TCP_KEEPINTVL, "keep_interval", 0, IPPROTO_TCP },
    { IPPROTO_TCP, TCP_KEEPCNT, "keep_count", 0, IPPROTO_TCP },
    { IPPROTO_IP, IP_TOS, "tos", AF_INET, 0 },
    { IPPROTO_IP, IP_TTL, "ttl", AF_INET, 0 },
    { IPPROTO_IP, IP_FREEBIND, "freebind", AF_INET, 0 },
    { IPPROTO_IPV6, IPV6_TCLASS, "tos", AF_INET6, 0 },
    { IPPROTO_IPV6, IPV6_UNICAST_HOPS, "ttl", AF_INET6, 0 },
    { IPPROTO_IPV6, IPV6_V6ONLY, "v6only", AF_INET6, 0 },
    { IPPROTO_IPV6, IPV6_FREEBIND, "freebind", AF_INET6, 0 },
    { SOL_SOCKET, SO_OOBINLINE, "oob_inline", 0, 0 },
    { SOL_SOCKET, SO_DONTROUTE, "dont_route", 0, 0 },
    { SOL_SOCKET, SO_NO_CHECK, "no_check", 0, 0 },
    { SOL_SOCKET, SO_TIMESTAMP_OLD, "timestamp", 0, 0 },
    { SOL_SOCKET, SO_TIMESTAMPNS_OLD, "timestamp_ns", 0, 0 },
    { IPPROTO_TCP, TCP_USER_TIMEOUT, "user_timeout", 0, IPPROTO_TCP },
    { IPPROTO_TCP, TCP_DEFER_ACCEPT, "defer_accept", 0, IPPROTO_TCP },
    { IPPROTO_TCP, TCP_NOTSENT_LOWAT, "notsent_lowat", 0, IPPROTO_TCP },
    { IPPROTO_TCP, TCP_SYNCNT, "syn_count", 0, IPPROTO_TCP },
    { IPPROTO_TCP, TCP_LINGER2, "fin_timeout", 0, IPPROTO_TCP },
    { IPPROTO_TCP, TCP_FASTOPEN, "fastopen", 0, IPPROTO_TCP },
    { IPPROTO_IP, IP_PKTINFO, "packet_info", AF_INET, 0 },
    { IPPROTO_IP, IP_RECVERR, "receive_errors", AF_INET, 0 },
    { IPPROTO_IP, IP_RECVTOS, "receive_tos", AF_INET, 0 },
    { IPPROTO_IP, IP_RECVTTL, "receive_ttl", AF_INET, 0 },
    { IPPROTO_IP, IP_MTU_DISCOVER, "mtu_discover", AF_INET, 0 },
    { IPPROTO_IP, IP_MULTICAST_TTL, "multicast_ttl", AF_INET, IPPROTO_UDP },
    { IPPROTO_IP, IP_MULTICAST_LOOP, "multicast_loop", AF_INET, IPPROTO_UDP },
    { IPPROTO_IP, IP_TRANSPARENT, "transparent", AF_INET, 0 },
    { IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, "bind_address_no_port", AF_INET, 0 },
    { IPPROTO_IP, IP_RECVORIGDSTADDR, "receive_original_destination", AF_INET, 0 },
    { IPPROTO_IPV6, IPV6_RECVPKTINFO, "packet_info", AF_INET6, 0 },
    { IPPROTO_IPV6, IPV6_RECVERR, "receive_errors", AF_INET6, 0 },
    { IPPROTO_IPV6, IPV6_RECVTCLASS, "receive_tos", AF_INET6, 0 },
    { IPPROTO_IPV6, IPV6_RECVHOPLIMIT, "receive_ttl", AF_INET6, 0 },
    { IPPROTO_IPV6, IPV6_MTU_DISCOVER, "mtu_discover", AF_INET6, 0 },
    { IPPROTO_IPV6, IPV6_MULTICAST_HOPS, "multicast_ttl", AF_INET6, IPPROTO_UDP },
    { IPPROTO_IPV6, IPV6_MULTICAST_LOOP, "multicast_loop", AF_INET6, IPPROTO_UDP },
    { IPPROTO_IPV6, IPV6_TRANSPARENT, "transparent", AF_INET6, 0 },
    { IPPROTO_IPV6, IPV6_RECVORIGDSTADDR, "receive_original_destination", AF_INET6, 0 },
    // After IP_TOS, which sets the priority too.
    { SOL_SOCKET, SO_PRIORITY, "priority", 0, 0 },
};

bool applies(const IntOption& option, const image::InetSocket& socket)
{
    return (option.family == 0 || option.family == socket.family())
        && (option.protocol == 0 || option.protocol == socket.protocol());
}

void store_field(image::InetSocketOptions& options, const char* name, int value)
{
    const auto* field = options.GetDescriptor()->FindFieldByName(name);
    const auto* reflection = options.GetReflection();
    if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_BOOL)
        reflection->SetBool(&options, field, value != 0);
    else if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_UINT32)
        reflection->SetUInt32(&options, field, static_cast<uint32_t>(value));
    else
        reflection->SetInt32(&options, field, value);
}

int load_field(const image::InetSocketOptions& options, const char* name)
{
    const auto* field = options.GetDescriptor()->FindFieldByName(name);
    const auto* reflection = options.GetReflection();
    if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_BOOL)
        return reflection->GetBool(options, field) ? 1 : 0;
    if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_UINT32)
        return static_cast<int>(reflection->GetUInt32(options, field));
    return reflection->GetInt32(options, field);
}

// An option field the dump filled: present, for one kept with its
// presence; not 0, for the others (0 is the kernel's default for them).
bool is_set(const image::InetSocketOptions& options, const char* name)
{
    const auto* field = options.GetDescriptor()->FindFieldByName(name);
    if (field->has_presence())
        return options.GetReflection()->HasField(options, field);
    return load_field(options, name) != 0;
}

int get_int(int fd, int level, int name)
{
    int value = 0;
    socklen_t length = sizeof(value);
    ::getsockopt(fd, level, name, &value, &length);
    return value;
}

uint64_t get_timeout(int fd, int name)
{
    timeval value {};
    socklen_t length = sizeof(value);
    ::getsockopt(fd, SOL_SOCKET, name, &value, &length);
    return static_cast<uint64_t>(value.tv_sec) * 1'000'000 + static_cast<uint64_t>(value.tv_usec);
}

Result<void> dump_options(int fd, image::InetSocket& socket)
{
    int created = ::socket(socket.family(), socket.type() | SOCK_CLOEXEC, socket.protocol());
    if (created < 0)
        return fail_errno("socket() to compare the options with");
    UniqueFd fresh(created);
    auto& options = *socket.mutable_options();
    for (const auto& option : kIntOptions) {
        if (!applies(option, socket))
            continue;
        int value = get_int(fd, option.level, option.name);
        if (value != get_int(fresh.get(), option.level, option.name))
            store_field(options, option.field, value);
    }
    // getsockopt reports twice the size the program asked for.
    if (int size = get_int(fd, SOL_SOCKET, SO_RCVBUF); size != get_int(fresh.get(), SOL_SOCKET, SO_RCVBUF))
        options.set_receive_buffer(static_cast<uint32_t>(size / 2));
    if (int size = get_int(fd, SOL_SOCKET, SO_SNDBUF); size != get_int(fresh.get(), SOL_SOCKET, SO_SNDBUF))
        options.set_send_buffer(static_cast<uint32_t>(size / 2));
    linger value {};
    socklen_t length = sizeof(value);
    if (::getsockopt(fd, SOL_SOCKET, SO_LINGER, &value, &length) == 0 && value.l_onoff) {
        options.set_linger(true);
        options.set_linger_seconds(static_cast<uint32_t>(value.l_linger));
    }
    options.set_receive_timeout_us(get_timeout(fd, SO_RCVTIMEO));
    options.set_send_timeout_us(get_timeout(fd, SO_SNDTIMEO));
    char device[IFNAMSIZ + 1] = {};
    length = IFNAMSIZ;
    if (::getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, device, &length) == 0)
        options.set_bind_device(std::string(device, strnlen(device, IFNAMSIZ)));
    return {};
}

Result<void> set_option(int fd, int level, int name, const void* value, socklen_t length, const char* what)
{
    if (::setsockopt(fd, level, name, value, length) < 0)
        return fail_errno(fmt::format("setsockopt({})", what));
    return {};
}

Result<void> set_timeout(int fd, int name, uint64_t microseconds, const char* what)
{
    if (microseconds == 0)
        return {};
    timeval value { .tv_sec = static_cast<time_t>(microseconds / 1'000'000),
                    .tv_usec = static_cast<suseconds_t>(microseconds % 1'000'000) };
    return set_option(fd, SOL_SOCKET, name, &value, sizeof(value), what);
}

// A buffer size above net.core.[rw]mem_max needs the FORCE option, which
// needs CAP_NET_ADMIN; without it the size is capped as it was for the
// program.
Result<void> set_buffer_size(int fd, int option, int forced, uint32_t size, const char* what)
{
    int value = static_cast<int>(size);
    if (::setsockopt(fd, SOL_SOCKET, forced, &value, sizeof(value)) == 0)
        return {};
    if (errno != EPERM)
        return fail_errno(fmt::format("setsockopt({})", what));
    return set_option(fd, SOL_SOCKET, option, &value, sizeof(value), what);
}

Result<void> apply_buffer_sizes(int fd, const image::InetSocketOptions& options)
{
    if (options.receive_buffer() != 0)
        TRY(set_buffer_size(fd, SO_RCVBUF, SO_RCVBUFFORCE, options.receive_buffer(), "SO_RCVBUF"));
    if (options.send_buffer() != 0)
        TRY(set_buffer_size(fd, SO_SNDBUF, SO_SNDBUFFORCE, options.send_buffer(), "SO_SNDBUF"));
    return {};
}

// Sets what the program had set, before the socket is bound.
Result<void> apply_options(int fd, const image::InetSocket& socket)
{
    const auto& options = socket.options();
    for (const auto& option : kIntOptions) {
        if (!applies(option, socket) || !is_set(options, option.field))
            continue;
        int value = load_field(options, option.field);
        TRY(set_option(fd, option.level, option.name, &value, sizeof(value), option.field));
    }
    TRY(apply_buffer_sizes(fd, options));
    if (options.linger()) {
        linger value { .l_onoff = 1, .l_linger = static_cast<int>(options.linger_seconds()) };
        TRY(set_option(fd, SOL_SOCKET, SO_LINGER, &value, sizeof(value), "SO_LINGER"));
    }
    TRY(set_timeout(fd, SO_RCVTIMEO, options.receive_timeout_us(), "SO_RCVTIMEO"));
    TRY(set_timeout(fd, SO_SNDTIMEO, options.send_timeout_us(), "SO_SNDTIMEO"));
    if (!options.bind_device().empty())
        TRY(set_option(fd, SOL_SOCKET, SO_BINDTODEVICE, options.bind_device().data(),
                       static_cast<socklen_t>(options.bind_device().size()), "SO_BINDTODEVICE"));
    return {};
}

Result<void> set_reuse_address(int fd, bool on)
{
    int value = on ? 1 : 0;
    return set_option(fd, SOL_SOCKET, SO_REUSEADDR, &value, sizeof(value), "SO_REUSEADDR");
}

// ---------------------------------------------------------------- dump

Result<void> dump_addresses(int fd, image::InetSocket& socket)
{
    sockaddr_storage address {};
    socklen_t length = sizeof(address);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) < 0)
        return fail_errno("getsockname");
    if (auto local = to_image(address); local.port() != 0)
        *socket.mutable_local() = local;
    length = sizeof(address);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0)
        *socket.mutable_peer() = to_image(address);
    else if (errno != ENOTCONN)
        return fail_errno("getpeername");
    return {};
}

// Every datagram waiting on the socket, in order, without consuming them.
Result<void> peek_datagrams(int fd, image::InetSocket& socket)
{
    // The peek offset belongs to the socket, shared with the program.
    int program_offset = get_int(fd, SOL_SOCKET, SO_PEEK_OFF);
    int offset = 0;
    TRY(set_option(fd, SOL_SOCKET, SO_PEEK_OFF, &offset, sizeof(offset), "SO_PEEK_OFF"));
    std::string buffer(kMaxDatagram, '\0');
    uint64_t total = 0;
    Result<void> status;
    while (status) {
        sockaddr_storage sender {};
        iovec vector { buffer.data(), buffer.size() };
        msghdr header {};
        header.msg_name = &sender;
        header.msg_namelen = sizeof(sender);
        header.msg_iov = &vector;
        header.msg_iovlen = 1;
        ssize_t got = ::recvmsg(fd, &header, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
        if (got < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                status = fail_errno("recv(MSG_PEEK)");
            break;
        }
        total += static_cast<uint64_t>(got);
        if (total > kMaxQueued || socket.queued_size() >= kMaxDatagrams)
            status = fail("more than {} MiB or {} datagrams queued", kMaxQueued >> 20, kMaxDatagrams);
        auto* datagram = socket.add_queued();
        datagram->set_data(buffer.data(), std::min(static_cast<size_t>(got), buffer.size()));
        *datagram->mutable_sender() = to_image(sender);
    }
    ::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &program_offset, sizeof(program_offset));
    return status;
}

std::string connection_text(const image::InetSocket& socket)
{
    return fmt::format("{} -> {}", format_inet_address(socket.local()), format_inet_address(socket.peer()));
}

Result<void> dump_tcp(const FdFacts& facts, const DiagInfo& diag, image::InetSocket& socket)
{
    switch (diag.state) {
    case TCP_CLOSE:
        return {};
    case TCP_LISTEN:
        if (diag.receive_queue > 0)
            return fail("listening TCP socket on {} has {} connection(s) the program has not accepted yet, which cryo "
                        "cannot make again: dump once the program accepted them",
                        format_inet_address(socket.local()), diag.receive_queue);
        socket.set_listening(true);
        socket.set_backlog(diag.send_queue);
        return {};
    case TCP_ESTABLISHED:
        break;
    default:
        return fail("not supported yet: TCP connection {} in state {} (closing or half closed)", connection_text(socket),
                    state_name(diag.state));
    }
    if (!facts.tcp_established || !facts.repaired)
        return fail("established TCP connection {}: dump with --tcp-established to checkpoint it (and restore with "
                    "--tcp-established)",
                    connection_text(socket));
    int copy = ::fcntl(facts.local_fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0)
        return fail_errno("fcntl(F_DUPFD_CLOEXEC)");
    int repaired = TRY_CTX(facts.repaired->enter(UniqueFd(copy)), "TCP connection {}", connection_text(socket));
    *socket.mutable_tcp() = TRY_CTX(net::dump_connection(repaired, kMaxQueued), "TCP connection {}", connection_text(socket));
    return {};
}

// ---------------------------------------------------------------- restore

std::string key(uint32_t id) { return fmt::format("inet:{}", id); }

// An IPv6 socket that binds a specific IPv6 address becomes IPv6-only; one
// that was not IPv6-only with such a local address got it from connect()
// (the port bound by connect() or by a bind to the wildcard address): it
// binds the wildcard address with its port, and connect() chooses the
// same local address again.
bool bound_by_connect(const image::InetSocket& socket)
{
    static const std::string kMappedPrefix = std::string(10, '\0') + "\xff\xff";
    const std::string& address = socket.local().address();
    return socket.family() == AF_INET6 && socket.has_peer() && !socket.options().v6only() && address.size() == 16
        && !is_wildcard(socket.local()) && !address.starts_with(kMappedPrefix);
}

Result<void> bind_to(int fd, const image::InetSocket& socket, const image::InetAddress& given)
{
    image::InetAddress address = given;
    if (&given == &socket.local() && bound_by_connect(socket))
        address.set_address(std::string(16, '\0'));
    auto native = from_image(socket.family(), address);
    if (::bind(fd, native.get(), native.length) == 0)
        return {};
    if (errno != EADDRNOTAVAIL || socket.options().freebind())
        return fail_errno(fmt::format("bind to {}", format_inet_address(address)));
    // An address of no interface here, bound while IP_FREEBIND was on and
    // cleared since (zdtm sk-freebind-false): bound with it on, then off.
    int level = socket.family() == AF_INET ? IPPROTO_IP : IPPROTO_IPV6;
    int name = socket.family() == AF_INET ? IP_FREEBIND : IPV6_FREEBIND;
    int on = 1, off = 0;
    TRY(set_option(fd, level, name, &on, sizeof(on), "freebind"));
    if (::bind(fd, native.get(), native.length) < 0)
        return fail_errno(fmt::format("bind to {} with IP_FREEBIND", format_inet_address(address)));
    return set_option(fd, level, name, &off, sizeof(off), "freebind");
}

Result<void> open_tcp(int fd, const image::InetSocket& socket, const OpenContext& context)
{
    if (socket.has_tcp()) {
        if (!context.tcp_established)
            return fail("established TCP connection {}: restore with --tcp-established", connection_text(socket));
        TRY(net::prepare_connection(fd, socket.tcp()));
        TRY(bind_to(fd, socket, socket.local()));
        auto peer = from_image(socket.family(), socket.peer());
        if (::connect(fd, peer.get(), peer.length) < 0)
            return fail_errno(fmt::format("connect in repair mode to {}", format_inet_address(socket.peer())));
        return net::restore_connection(fd, socket.tcp());
    }
    if (socket.listening()) {
        // The connections it accepted hold the port too.
        TRY(set_reuse_address(fd, true));
        TRY(bind_to(fd, socket, socket.local()));
        if (::listen(fd, static_cast<int>(socket.backlog())) < 0)
            return fail_errno(fmt::format("listen on {}", format_inet_address(socket.local())));
        return set_reuse_address(fd, socket.options().reuse_address());
    }
    if (socket.has_local())
        TRY(bind_to(fd, socket, socket.local()));
    return {};
}

Result<void> open_udp(int fd, const image::InetSocket& socket)
{
    if (socket.has_local())
        TRY(bind_to(fd, socket, socket.local()));
    if (socket.has_peer()) {
        auto peer = from_image(socket.family(), socket.peer());
        if (::connect(fd, peer.get(), peer.length) < 0)
            return fail_errno(fmt::format("connect to {}", format_inet_address(socket.peer())));
    }
    return {};
}

// The socket datagrams from `sender` are sent from: the checkpoint's own
// socket bound to that address, or a temporary one (null when the address
// is held by a live program: the datagram is dropped).
Result<int> datagram_sender(const image::InetSocket& receiver, const image::InetAddress& sender, OpenContext& context,
                            std::vector<UniqueFd>& temporary)
{
    for (const auto& file : context.table->files()) {
        if (file.kind() != image::FILE_KIND_INET_SOCKET)
            continue;
        const auto& candidate = file.inet_socket();
        if (candidate.protocol() == IPPROTO_UDP && candidate.family() == receiver.family()
            && candidate.local().port() == sender.port()
            && (candidate.local().address() == sender.address() || is_wildcard(candidate.local())))
            if (auto found = context.shared.find(key(file.id())); found != context.shared.end())
                return found->second.get();
    }
    int fd = ::socket(receiver.family(), SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return fail_errno("socket() to send queued datagrams from");
    UniqueFd owned(fd);
    int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    ::setsockopt(fd, receiver.family() == AF_INET ? IPPROTO_IP : IPPROTO_IPV6,
                 receiver.family() == AF_INET ? IP_FREEBIND : IPV6_FREEBIND, &on, sizeof(on));
    auto address = from_image(receiver.family(), sender);
    if (::bind(fd, address.get(), address.length) < 0)
        return -1;
    temporary.push_back(std::move(owned));
    return fd;
}

Result<void> queue_datagrams(int receiver_fd, const image::InetSocket& receiver, OpenContext& context)
{
    auto destination_address = receiver.local();
    if (is_wildcard(destination_address)) {
        // Sent to the loopback address of the family.
        if (receiver.family() == AF_INET)
            destination_address.set_address(std::string("\x7f\0\0\x01", 4));
        else
            destination_address.set_address(std::string(15, '\0') + '\x01');
    }
    auto destination = from_image(receiver.family(), destination_address);
    std::vector<UniqueFd> temporary;
    uint64_t total = 0;
    for (const auto& datagram : receiver.queued())
        total += datagram.data().size() + 1024;
    int size = static_cast<int>(std::min<uint64_t>(total * 2, 1u << 30));
    if (size > get_int(receiver_fd, SOL_SOCKET, SO_RCVBUF))
        ::setsockopt(receiver_fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
    for (const auto& datagram : receiver.queued()) {
        int sender = TRY(datagram_sender(receiver, datagram.sender(), context, temporary));
        if (sender < 0) {
            spdlog::warn("a datagram of {} bytes queued on {} from {} is dropped: its sender's address is in use",
                         datagram.data().size(), format_inet_address(receiver.local()),
                         format_inet_address(datagram.sender()));
            continue;
        }
        ssize_t sent = ::sendto(sender, datagram.data().data(), datagram.data().size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                                destination.get(), destination.length);
        if (sent != static_cast<ssize_t>(datagram.data().size()))
            return fail_errno(fmt::format("queue a datagram of {} bytes from {} on {}", datagram.data().size(),
                                          format_inet_address(datagram.sender()), format_inet_address(receiver.local())));
    }
    return apply_buffer_sizes(receiver_fd, receiver.options());
}

// The IP sockets open() made, with cryo's copy of each, in file order.
std::vector<std::pair<const image::OpenFile*, int>> restored_sockets(const OpenContext& context)
{
    std::vector<std::pair<const image::OpenFile*, int>> sockets;
    for (const auto& file : context.table->files())
        if (auto found = context.shared.find(key(file.id()));
            file.kind() == image::FILE_KIND_INET_SOCKET && found != context.shared.end())
            sockets.emplace_back(&file, found->second.get());
    return sockets;
}

class InetSocketKind final : public FileKind {
public:
    std::string_view name() const override { return "IP socket"; }

    bool recognises(const FdFacts& facts) const override
    {
        if (!S_ISSOCK(facts.stat.st_mode))
            return false;
        int domain = get_int(facts.local_fd, SOL_SOCKET, SO_DOMAIN);
        int type = get_int(facts.local_fd, SOL_SOCKET, SO_TYPE);
        int protocol = get_int(facts.local_fd, SOL_SOCKET, SO_PROTOCOL);
        return (domain == AF_INET || domain == AF_INET6)
            && ((type == SOCK_STREAM && protocol == IPPROTO_TCP) || (type == SOCK_DGRAM && protocol == IPPROTO_UDP));
    }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        int fd = facts.local_fd;
        auto* socket = file.mutable_inet_socket();
        socket->set_inode(facts.stat.st_ino);
        socket->set_family(get_int(fd, SOL_SOCKET, SO_DOMAIN));
        socket->set_type(get_int(fd, SOL_SOCKET, SO_TYPE));
        socket->set_protocol(get_int(fd, SOL_SOCKET, SO_PROTOCOL));
        TRY(dump_addresses(fd, *socket));
        auto diag = TRY(query_diag(socket->family(), socket->protocol(), facts.stat.st_ino))
                        .value_or(DiagInfo { .state = TCP_CLOSE });
        socket->set_state(diag.state);
        socket->set_shutdown_read(diag.shutdown & 1);
        socket->set_shutdown_write(diag.shutdown & 2);
        if (socket->shutdown_write() && socket->protocol() == IPPROTO_TCP)
            return fail("not supported yet: {} socket {} was shut down for writing", protocol_name(socket->protocol()),
                        connection_text(*socket));
        TRY(dump_options(fd, *socket));
        if (socket->protocol() == IPPROTO_TCP)
            return dump_tcp(facts, diag, *socket);
        // What a corked UDP socket collected is in no queue cryo can read.
        if (get_int(fd, IPPROTO_UDP, UDP_CORK) != 0)
            return fail("not supported: UDP socket {} has UDP_CORK set", format_inet_address(socket->local()));
        if (socket->has_local())
            TRY(peek_datagrams(fd, *socket));
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext& context) const override
    {
        const auto& socket = file.inet_socket();
        int created = ::socket(socket.family(), socket.type() | SOCK_CLOEXEC | SOCK_NONBLOCK, socket.protocol());
        if (created < 0)
            return fail_errno(fmt::format("socket({}, {})", family_name(socket.family()), protocol_name(socket.protocol())));
        UniqueFd fd(created);
        TRY(apply_options(fd.get(), socket));
        if (socket.protocol() == IPPROTO_TCP)
            TRY(open_tcp(fd.get(), socket, context));
        else
            TRY(open_udp(fd.get(), socket));
        // A copy for finish(), which needs every socket of the checkpoint.
        int copy = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0);
        if (copy < 0)
            return fail_errno("fcntl(F_DUPFD_CLOEXEC)");
        context.shared.emplace(key(file.id()), UniqueFd(copy));
        int flags = ::fcntl(fd.get(), F_GETFL);
        ::fcntl(fd.get(), F_SETFL, (flags & ~O_NONBLOCK) | (file.flags() & O_NONBLOCK));
        return fd;
    }

    Result<void> finish(OpenContext& context) const override
    {
        auto sockets = restored_sockets(context);
        // Every connection out of repair mode first, silently; then the
        // window probes and the never-sent data, which must find the peer
        // out of repair mode too.
        for (const auto& [file, fd] : sockets)
            if (file->inet_socket().has_tcp())
                TRY_CTX(net::leave_repair(fd, net::RepairExit::Silent), "file {}: TCP connection {}", file->id(),
                        connection_text(file->inet_socket()));
        for (const auto& [file, fd] : sockets) {
            const auto& socket = file->inet_socket();
            if (socket.has_tcp()) {
                TRY_CTX(net::probe_window(fd), "file {}: TCP connection {}", file->id(), connection_text(socket));
                TRY_CTX(net::queue_unsent(fd, socket.tcp()), "file {}: TCP connection {}", file->id(),
                        connection_text(socket));
                // Leaving repair mode cleared SO_REUSEADDR; the buffers
                // were grown to take the queues back.
                if (socket.options().reuse_address())
                    TRY(set_reuse_address(fd, true));
                TRY(apply_buffer_sizes(fd, socket.options()));
            }
            if (socket.queued_size() > 0)
                TRY_CTX(queue_datagrams(fd, socket, context), "file {}", file->id());
            // An unconnected UDP socket is shut down all the same, with ENOTCONN.
            if (socket.shutdown_read() && ::shutdown(fd, SHUT_RD) < 0 && errno != ENOTCONN)
                return fail_errno(fmt::format("file {}: shutdown(SHUT_RD) of {}", file->id(), connection_text(socket)));
        }
        // A UDP socket shut down for writing (zdtm socket_udp_shutdown),
        // once no datagram is to be sent from it any more.
        for (const auto& [file, fd] : sockets) {
            const auto& socket = file->inet_socket();
            if (socket.protocol() == IPPROTO_UDP && socket.shutdown_write() && ::shutdown(fd, SHUT_WR) < 0 && errno != ENOTCONN)
                return fail_errno(fmt::format("file {}: shutdown(SHUT_WR) of {}", file->id(), connection_text(socket)));
        }
        for (const auto& [file, fd] : sockets)
            context.shared.erase(key(file->id()));
        return {};
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_INET_SOCKET; }
};

} // namespace

std::string format_inet_address(const image::InetAddress& address)
{
    if (address.address().empty() || is_wildcard(address))
        return fmt::format("*:{}", address.port());
    char text[INET6_ADDRSTRLEN] = {};
    if (address.address().size() == 4) {
        ::inet_ntop(AF_INET, address.address().data(), text, sizeof(text));
        return fmt::format("{}:{}", text, address.port());
    }
    if (address.address().size() == 16) {
        ::inet_ntop(AF_INET6, address.address().data(), text, sizeof(text));
        return fmt::format("[{}]:{}", text, address.port());
    }
    return fmt::format("(invalid address):{}", address.port());
}

std::string describe_inet_socket(const image::InetSocket& socket)
{
    std::string text = fmt::format("{} {}", protocol_name(socket.protocol()), family_name(socket.family()));
    if (socket.has_local())
        text += " " + format_inet_address(socket.local());
    if (socket.has_peer())
        text += " -> " + format_inet_address(socket.peer());
    if (socket.listening())
        text += fmt::format(" listening (backlog {})", socket.backlog());
    else if (socket.has_tcp())
        text += fmt::format(" established, {} bytes received, {} to send ({} never sent)",
                            socket.tcp().receive_queue().size(), socket.tcp().send_queue().size(),
                            socket.tcp().unsent_bytes());
    else if (socket.protocol() == IPPROTO_TCP)
        text += socket.has_local() ? " bound" : " new";
    if (socket.queued_size() > 0)
        text += fmt::format(", {} queued datagrams", socket.queued_size());
    return text;
}

const FileKind& inet_socket_kind()
{
    static const InetSocketKind kind;
    return kind;
}

} // namespace cryo::fds
