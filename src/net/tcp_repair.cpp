// See tcp_repair.h.
#include "net/tcp_repair.h"

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <string>

namespace cryo::net {

namespace {

// TCP option kinds, as TCP_REPAIR_OPTIONS takes them (RFC 793, 7323, 2018).
constexpr uint32_t kOptionMss = 2;
constexpr uint32_t kOptionWindow = 3;
constexpr uint32_t kOptionSackPermitted = 4;
constexpr uint32_t kOptionTimestamp = 8;

Result<void> set_int(int fd, int name, int value, const char* what)
{
    if (::setsockopt(fd, IPPROTO_TCP, name, &value, sizeof(value)) < 0)
        return fail_errno(fmt::format("setsockopt({})", what));
    return {};
}

Result<uint32_t> get_u32(int fd, int name, const char* what)
{
    uint32_t value = 0;
    socklen_t length = sizeof(value);
    if (::getsockopt(fd, IPPROTO_TCP, name, &value, &length) < 0)
        return fail_errno(fmt::format("getsockopt({})", what));
    return value;
}

Result<uint32_t> queue_length(int fd, unsigned long request, const char* what)
{
    int value = 0;
    if (::ioctl(fd, request, &value) < 0)
        return fail_errno(fmt::format("ioctl({})", what));
    return static_cast<uint32_t>(value);
}

// Selects `queue` and reads its end sequence and its bytes without
// consuming them. The program is frozen, but the kernel still works on the
// connection: ACKs drop bytes from the head of the send queue (its end,
// write_seq, stays) and arriving data grows the receive queue (its end
// moves). So the end is read before and after the bytes, and the read is
// made again when it moved.
Result<uint32_t> peek_queue(int fd, int queue, uint64_t limit, std::string& bytes)
{
    const char* name = queue == TCP_RECV_QUEUE ? "receive queue" : "send queue";
    TRY(set_int(fd, TCP_REPAIR_QUEUE, queue, "TCP_REPAIR_QUEUE"));
    for (int attempt = 0; attempt < 16; ++attempt) {
        uint32_t before = TRY_CTX(get_u32(fd, TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ"), "{}", name);
        uint32_t length = queue == TCP_RECV_QUEUE ? TRY(queue_length(fd, SIOCINQ, "SIOCINQ"))
                                                  : TRY(queue_length(fd, SIOCOUTQ, "SIOCOUTQ"));
        if (length > limit)
            return fail("{} bytes are queued in the {}, more than cryo keeps ({} MiB)", length, name, limit >> 20);
        bytes.assign(length + 65536, '\0');
        ssize_t got = ::recv(fd, bytes.data(), bytes.size(), MSG_PEEK | MSG_DONTWAIT);
        if (got < 0 && errno != EAGAIN)
            return fail_errno(fmt::format("recv(MSG_PEEK) of the {}", name));
        uint32_t after = TRY_CTX(get_u32(fd, TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ"), "{}", name);
        if (before == after && static_cast<size_t>(std::max<ssize_t>(got, 0)) < bytes.size()) {
            bytes.resize(static_cast<size_t>(std::max<ssize_t>(got, 0)));
            return before;
        }
    }
    return fail("the {} kept changing while it was read", name);
}

// Writes `bytes` into the selected queue, in chunks the kernel can take
// (one receive-queue write is one buffer: large ones fail with ENOMEM).
Result<void> fill_queue(int fd, std::string_view bytes, const char* name)
{
    size_t chunk = 1 << 16;
    while (!bytes.empty()) {
        size_t size = std::min(chunk, bytes.size());
        ssize_t sent = ::send(fd, bytes.data(), size, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent < 0) {
            if ((errno == ENOMEM || errno == EAGAIN) && chunk > 1024) {
                chunk /= 2;
                continue;
            }
            return fail_errno(fmt::format("write {} bytes into the {} ({} left)", size, name, bytes.size()));
        }
        bytes.remove_prefix(static_cast<size_t>(sent));
    }
    return {};
}

// Buffers large enough for the queues: the new socket starts with the
// system's default sizes, smaller than what autotuning gave the original.
void make_room(int fd, int option, size_t bytes)
{
    int current = 0;
    socklen_t length = sizeof(current);
    if (::getsockopt(fd, SOL_SOCKET, option, &current, &length) < 0 || static_cast<size_t>(current) >= bytes * 2 + 65536)
        return;
    int wanted = static_cast<int>(std::min<size_t>(bytes + 65536, 1u << 30));
    ::setsockopt(fd, SOL_SOCKET, option == SO_SNDBUF ? SO_SNDBUFFORCE : SO_RCVBUFFORCE, &wanted, sizeof(wanted));
}

} // namespace

RepairedSockets::~RepairedSockets() { leave(); }

void RepairedSockets::leave()
{
    for (auto& repaired : m_sockets) {
        int off = TCP_REPAIR_OFF;
        ::setsockopt(repaired.socket.get(), IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off));
        ::setsockopt(repaired.socket.get(), SOL_SOCKET, SO_REUSEADDR, &repaired.reuse_address,
                     sizeof(repaired.reuse_address));
    }
    m_sockets.clear();
}

Result<int> RepairedSockets::enter(UniqueFd socket)
{
    int reuse_address = 0;
    socklen_t length = sizeof(reuse_address);
    if (::getsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &reuse_address, &length) < 0)
        return fail_errno("getsockopt(SO_REUSEADDR)");
    TRY(set_int(socket.get(), TCP_REPAIR, TCP_REPAIR_ON, "TCP_REPAIR"));
    m_sockets.push_back({ std::move(socket), reuse_address });
    return m_sockets.back().socket.get();
}

void RepairedSockets::release() { m_sockets.clear(); }

Result<image::TcpConnection> dump_connection(int fd, uint64_t queue_limit)
{
    image::TcpConnection connection;
    // The program's peek offset would make the peek start past the head.
    int peek_offset = -1;
    socklen_t length = sizeof(peek_offset);
    ::getsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &peek_offset, &length);
    int no_offset = -1;
    ::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &no_offset, sizeof(no_offset));
    std::string bytes;
    auto receive_seq = peek_queue(fd, TCP_RECV_QUEUE, queue_limit, bytes);
    connection.set_receive_queue(bytes);
    auto send_seq = receive_seq ? peek_queue(fd, TCP_SEND_QUEUE, queue_limit, bytes) : receive_seq;
    connection.set_send_queue(bytes);
    // Read after the send queue, it can only be smaller; which bytes count
    // as sent matters little: the peer drops what it already has.
    auto unsent = queue_length(fd, SIOCOUTQNSD, "SIOCOUTQNSD");
    ::setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &peek_offset, sizeof(peek_offset));
    // The send queue stays selected until the socket leaves repair mode:
    // the kernel then only marks data as sent instead of sending it, so a
    // window the peer opens during the rest of the dump does not let data
    // out that the image counts as never sent (the peer would acknowledge
    // bytes the restored socket has not sent, and it would ignore every
    // acknowledgement from then on).
    connection.set_receive_seq(TRY(receive_seq));
    connection.set_send_seq(TRY(send_seq));
    connection.set_unsent_bytes(std::min<uint32_t>(TRY(unsent), static_cast<uint32_t>(bytes.size())));

    tcp_info info {};
    length = sizeof(info);
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) < 0)
        return fail_errno("getsockopt(TCP_INFO)");
    connection.set_window_scaling(info.tcpi_options & TCPI_OPT_WSCALE);
    connection.set_send_wscale(info.tcpi_snd_wscale);
    connection.set_receive_wscale(info.tcpi_rcv_wscale);
    connection.set_sack(info.tcpi_options & TCPI_OPT_SACK);
    connection.set_timestamps(info.tcpi_options & TCPI_OPT_TIMESTAMPS);
    // In repair mode TCP_MAXSEG reports the clamp agreed in the handshake.
    connection.set_mss(TRY(get_u32(fd, TCP_MAXSEG, "TCP_MAXSEG")));
    connection.set_timestamp(TRY(get_u32(fd, TCP_TIMESTAMP, "TCP_TIMESTAMP")));

    tcp_repair_window window {};
    length = sizeof(window);
    if (::getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &window, &length) < 0)
        return fail_errno("getsockopt(TCP_REPAIR_WINDOW)");
    connection.set_snd_wl1(window.snd_wl1);
    connection.set_snd_wnd(window.snd_wnd);
    connection.set_max_window(window.max_window);
    connection.set_rcv_wnd(window.rcv_wnd);
    connection.set_rcv_wup(window.rcv_wup);
    return connection;
}

Result<void> prepare_connection(int fd, const image::TcpConnection& connection)
{
    TRY(set_int(fd, TCP_REPAIR, TCP_REPAIR_ON, "TCP_REPAIR"));
    // connect() sizes the segments from the MSS clamp, which would be the
    // 536-byte default without a handshake (TCP_REPAIR_OPTIONS comes too
    // late for that): the user MSS gives connect() the agreed one (the
    // kernel takes at most 32767, less than loopback's 65483).
    constexpr uint32_t kMaxUserMss = 32767;
    TRY(set_int(fd, TCP_MAXSEG, static_cast<int>(std::min(connection.mss(), kMaxUserMss)), "TCP_MAXSEG"));
    // Refilling a queue advances its sequence: start where its bytes began.
    TRY(set_int(fd, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "TCP_REPAIR_QUEUE"));
    TRY(set_int(fd, TCP_QUEUE_SEQ,
                static_cast<int>(connection.receive_seq() - static_cast<uint32_t>(connection.receive_queue().size())),
                "TCP_QUEUE_SEQ of the receive queue"));
    TRY(set_int(fd, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "TCP_REPAIR_QUEUE"));
    TRY(set_int(fd, TCP_QUEUE_SEQ,
                static_cast<int>(connection.send_seq() - static_cast<uint32_t>(connection.send_queue().size())),
                "TCP_QUEUE_SEQ of the send queue"));
    make_room(fd, SO_RCVBUF, connection.receive_queue().size());
    make_room(fd, SO_SNDBUF, connection.send_queue().size());
    return {};
}

Result<void> restore_connection(int fd, const image::TcpConnection& connection)
{
    std::vector<tcp_repair_opt> options;
    options.push_back({ kOptionMss, connection.mss() });
    if (connection.window_scaling())
        options.push_back({ kOptionWindow, connection.send_wscale() | (connection.receive_wscale() << 16) });
    if (connection.sack())
        options.push_back({ kOptionSackPermitted, 0 });
    if (connection.timestamps())
        options.push_back({ kOptionTimestamp, 0 });
    if (::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, options.data(),
                     static_cast<socklen_t>(options.size() * sizeof(tcp_repair_opt)))
        < 0)
        return fail_errno("setsockopt(TCP_REPAIR_OPTIONS)");
    TRY(set_int(fd, TCP_TIMESTAMP, static_cast<int>(connection.timestamp()), "TCP_TIMESTAMP"));

    TRY(set_int(fd, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "TCP_REPAIR_QUEUE"));
    TRY(fill_queue(fd, connection.receive_queue(), "receive queue"));
    // In repair mode what is written to the send queue counts as sent and
    // waits for its acknowledgement: only the part that had been sent.
    TRY(set_int(fd, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, "TCP_REPAIR_QUEUE"));
    std::string_view sent = connection.send_queue();
    sent.remove_suffix(std::min<size_t>(connection.unsent_bytes(), sent.size()));
    TRY(fill_queue(fd, sent, "send queue"));
    TRY(set_int(fd, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, "TCP_REPAIR_QUEUE"));

    tcp_repair_window window {};
    window.snd_wl1 = connection.snd_wl1();
    window.snd_wnd = connection.snd_wnd();
    window.max_window = connection.max_window();
    window.rcv_wnd = connection.rcv_wnd();
    window.rcv_wup = connection.rcv_wup();
    if (::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &window, sizeof(window)) < 0) {
        // The kernel refuses an rcv_wup past the receive queue's end, or an
        // snd_wl1 beyond that end plus rcv_wnd: say where the end is.
        int error = errno;
        std::string end = "unknown";
        if (set_int(fd, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, "TCP_REPAIR_QUEUE"))
            if (auto seq = get_u32(fd, TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ"))
                end = std::to_string(*seq);
        errno = error;
        return fail_errno(fmt::format("setsockopt(TCP_REPAIR_WINDOW: snd_wl1 {}, snd_wnd {}, max_window {}, rcv_wnd {}, "
                                      "rcv_wup {}; the receive queue ends at {}, dumped ending at {} with {} bytes)",
                                      window.snd_wl1, window.snd_wnd, window.max_window, window.rcv_wnd,
                                      window.rcv_wup, end, connection.receive_seq(), connection.receive_queue().size()));
    }
    return {};
}

Result<void> leave_repair(int fd, RepairExit exit)
{
    return set_int(fd, TCP_REPAIR, exit == RepairExit::Silent ? TCP_REPAIR_OFF_NO_WP : TCP_REPAIR_OFF, "TCP_REPAIR");
}

Result<void> probe_window(int fd)
{
    TRY(set_int(fd, TCP_REPAIR, TCP_REPAIR_ON, "TCP_REPAIR"));
    return set_int(fd, TCP_REPAIR, TCP_REPAIR_OFF, "TCP_REPAIR");
}

Result<void> queue_unsent(int fd, const image::TcpConnection& connection)
{
    std::string_view unsent = connection.send_queue();
    unsent.remove_prefix(unsent.size() - std::min<size_t>(connection.unsent_bytes(), unsent.size()));
    return fill_queue(fd, unsent, "send queue (never sent)");
}

} // namespace cryo::net
