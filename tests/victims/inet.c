/* IPv4 and IPv6 sockets, TCP and UDP. Started as
 * `victim_inet LOG FAMILY [MODE [PORT]]`, FAMILY 4, 6 or dual (IPv6 sockets
 * that talk to IPv4 addresses through v4-mapped ones). Modes:
 *   all (default)  on the loopback address:
 *     fd 10  TCP, never bound, with many options set (read back after)
 *     fd 11  TCP, bound, not listening (SO_REUSEADDR, SO_REUSEPORT)
 *     fd 12  TCP listener, backlog 7: after the release a new client
 *            connects and is accepted, and they talk
 *     fd 13  client of a connection to fd 12, fd 14 its accepted end: each
 *            sent the other a message that is not read yet
 *     fd 15  client of a second connection, whose accepted end is held by
 *            a child process that never reads: fd 15 wrote until its send
 *            queue was full (bytes sent, unacknowledged and never sent);
 *            after the release the child reads them all and checks them
 *     fd 17  UDP, bound and connected to fd 18; fd 18 sent it "back"
 *     fd 18  UDP, bound: fd 17 sent it two datagrams and a socket closed
 *            since one more, all waiting to be read with their senders
 *     fd 19  UDP, bound to an address of no interface (TEST-NET) while
 *            IP_FREEBIND was on, which was cleared since (zdtm
 *            sk-freebind-false)
 *     fd 20  UDP, bound, connected to fd 18 and shut down for writing
 *            (zdtm socket_udp_shutdown): sending fails after
 *   client PORT    connects (fd 10) to the test's listener on the loopback
 *                  address and sends "hello"; after the release it reads
 *                  "before" (sent by the test before the checkpoint),
 *                  sends "after" and expects "bye"
 *   pending        a listener (fd 10) with a connection from this process
 *                  (fd 11) not accepted yet; accept() returns it after
 *   established    only a connection (fds 10, 11) with data queued both ways
 *   half-closed    a connection (fds 10, 11) whose client (fd 10) called
 *                  shutdown(SHUT_WR): refused by the dump
 *   udp-cork       a UDP socket (fd 10) with UDP_CORK set and data corked:
 *                  refused by the dump
 * Every socket's addresses, state, queued data and options are checked
 * after the restore. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

static int family;              /* of the sockets */
static int mapped;              /* dual: IPv4 addresses in IPv6 sockets */

static socklen_t loopback(struct sockaddr_storage *address, int port)
{
    memset(address, 0, sizeof(*address));
    if (family == AF_INET) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)address;
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sizeof(*v4);
    }
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)address;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    if (mapped)
        inet_pton(AF_INET6, "::ffff:127.0.0.1", &v6->sin6_addr);
    else
        v6->sin6_addr = in6addr_loopback;
    return sizeof(*v6);
}

static int port_of(const struct sockaddr_storage *address)
{
    return ntohs(address->ss_family == AF_INET ? ((const struct sockaddr_in *)address)->sin_port
                                               : ((const struct sockaddr_in6 *)address)->sin6_port);
}

static int new_socket(int type)
{
    int fd = socket(family, type, 0);
    int off = 0;
    if (fd >= 0 && family == AF_INET6 && mapped)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    return fd;
}

static int bind_loopback(int fd)
{
    struct sockaddr_storage address;
    socklen_t length = loopback(&address, 0);
    return bind(fd, (struct sockaddr *)&address, length);
}

static int local_port(int fd)
{
    struct sockaddr_storage address;
    socklen_t length = sizeof(address);
    return getsockname(fd, (struct sockaddr *)&address, &length) == 0 ? port_of(&address) : -1;
}

static int connect_port(int fd, int port)
{
    struct sockaddr_storage address;
    socklen_t length = loopback(&address, port);
    return connect(fd, (struct sockaddr *)&address, length);
}

static int move_to(int fd, int number)
{
    if (fd < 0 || dup2(fd, number) != number)
        return -1;
    if (fd != number)
        close(fd);
    return number;
}

static int wait_readable(int fd, int milliseconds)
{
    struct pollfd poll_fd = { .fd = fd, .events = POLLIN };
    return poll(&poll_fd, 1, milliseconds) == 1;
}

static void expect_bytes(int fd, const char *want, const char *what)
{
    char buffer[256] = "";
    size_t length = strlen(want), got = 0;
    while (got < length && wait_readable(fd, 10000)) {
        ssize_t n = recv(fd, buffer + got, length - got, MSG_DONTWAIT);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    victim_check(got == length && memcmp(buffer, want, length) == 0, "%s: got %zu bytes '%.*s', want '%s'", what, got,
                 (int)got, buffer, want);
}

static void expect_nothing_more(int fd, const char *what)
{
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);
    victim_check(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "%s: more data than expected (%zd, %s)", what, n,
                 n < 0 ? strerror(errno) : "");
}

/* ------------------------------------------------------------ addresses */

struct names {
    struct sockaddr_storage local, peer;
    socklen_t local_length, peer_length;
};

static void read_names(int fd, struct names *names)
{
    memset(names, 0, sizeof(*names));
    names->local_length = names->peer_length = sizeof(struct sockaddr_storage);
    getsockname(fd, (struct sockaddr *)&names->local, &names->local_length);
    if (getpeername(fd, (struct sockaddr *)&names->peer, &names->peer_length) < 0)
        names->peer_length = 0;
}

static void check_names(int fd, const struct names *before)
{
    struct names after;
    read_names(fd, &after);
    victim_check(after.local_length == before->local_length && memcmp(&after.local, &before->local, after.local_length) == 0,
                 "fd %d: local address changed (port %d, was %d)", fd, port_of(&after.local), port_of(&before->local));
    victim_check(after.peer_length == before->peer_length && memcmp(&after.peer, &before->peer, after.peer_length) == 0,
                 "fd %d: peer address changed (port %d, was %d)", fd, port_of(&after.peer), port_of(&before->peer));
}

/* ------------------------------------------------------------ options */

struct option {
    int level, name;
    const char *what;
};

static const struct option int_options[] = {
    { SOL_SOCKET, SO_TYPE, "SO_TYPE" },           { SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR" },
    { SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT" }, { SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE" },
    { SOL_SOCKET, SO_BROADCAST, "SO_BROADCAST" }, { SOL_SOCKET, SO_PRIORITY, "SO_PRIORITY" },
    { SOL_SOCKET, SO_MARK, "SO_MARK" },           { SOL_SOCKET, SO_RCVLOWAT, "SO_RCVLOWAT" },
    { SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF" },       { SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF" },
    { SOL_SOCKET, SO_ACCEPTCONN, "SO_ACCEPTCONN" }, { SOL_SOCKET, SO_OOBINLINE, "SO_OOBINLINE" },
    { SOL_SOCKET, SO_TIMESTAMP, "SO_TIMESTAMP" },   { SOL_SOCKET, SO_TIMESTAMPNS, "SO_TIMESTAMPNS" },
    { SOL_SOCKET, SO_DONTROUTE, "SO_DONTROUTE" },   { SOL_SOCKET, SO_NO_CHECK, "SO_NO_CHECK" },
};
static const struct option tcp_options[] = {
    { IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY" },     { IPPROTO_TCP, TCP_CORK, "TCP_CORK" },
    { IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE" },   { IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL" },
    { IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT" },     { IPPROTO_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT" },
    { IPPROTO_TCP, TCP_NOTSENT_LOWAT, "TCP_NOTSENT_LOWAT" }, { IPPROTO_TCP, TCP_SYNCNT, "TCP_SYNCNT" },
    { IPPROTO_TCP, TCP_LINGER2, "TCP_LINGER2" },     { IPPROTO_TCP, TCP_DEFER_ACCEPT, "TCP_DEFER_ACCEPT" },
    { IPPROTO_TCP, TCP_FASTOPEN, "TCP_FASTOPEN" },
};
static const struct option ipv4_options[] = {
    { IPPROTO_IP, IP_TOS, "IP_TOS" },           { IPPROTO_IP, IP_TTL, "IP_TTL" },
    { IPPROTO_IP, IP_FREEBIND, "IP_FREEBIND" }, { IPPROTO_IP, IP_PKTINFO, "IP_PKTINFO" },
    { IPPROTO_IP, IP_RECVERR, "IP_RECVERR" },   { IPPROTO_IP, IP_RECVTOS, "IP_RECVTOS" },
    { IPPROTO_IP, IP_RECVTTL, "IP_RECVTTL" },   { IPPROTO_IP, IP_MTU_DISCOVER, "IP_MTU_DISCOVER" },
    { IPPROTO_IP, IP_MULTICAST_TTL, "IP_MULTICAST_TTL" }, { IPPROTO_IP, IP_MULTICAST_LOOP, "IP_MULTICAST_LOOP" },
};
static const struct option ipv6_options[] = {
    { IPPROTO_IPV6, IPV6_TCLASS, "IPV6_TCLASS" },
    { IPPROTO_IPV6, IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS" },
    { IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY" },
    { IPPROTO_IPV6, IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO" },
    { IPPROTO_IPV6, IPV6_RECVERR, "IPV6_RECVERR" },
    { IPPROTO_IPV6, IPV6_RECVTCLASS, "IPV6_RECVTCLASS" },
    { IPPROTO_IPV6, IPV6_RECVHOPLIMIT, "IPV6_RECVHOPLIMIT" },
    { IPPROTO_IPV6, IPV6_MTU_DISCOVER, "IPV6_MTU_DISCOVER" },
    { IPPROTO_IPV6, IPV6_MULTICAST_HOPS, "IPV6_MULTICAST_HOPS" },
    { IPPROTO_IPV6, IPV6_MULTICAST_LOOP, "IPV6_MULTICAST_LOOP" },
};

#define OPTION_SLOTS 64

struct options {
    int values[OPTION_SLOTS];
    struct linger linger;
    struct timeval receive_timeout, send_timeout;
    char device[32];
    int status_flags;
};

static int get_int(int fd, int level, int name)
{
    int value = -1;
    socklen_t length = sizeof(value);
    getsockopt(fd, level, name, &value, &length);
    return value;
}

static void read_options(int fd, int tcp, struct options *options)
{
    memset(options, 0, sizeof(*options));
    int slot = 0;
    for (size_t i = 0; i < sizeof(int_options) / sizeof(int_options[0]); ++i)
        options->values[slot++] = get_int(fd, int_options[i].level, int_options[i].name);
    for (size_t i = 0; tcp && i < sizeof(tcp_options) / sizeof(tcp_options[0]); ++i)
        options->values[slot++] = get_int(fd, tcp_options[i].level, tcp_options[i].name);
    const struct option *ip = family == AF_INET ? ipv4_options : ipv6_options;
    size_t count = family == AF_INET ? sizeof(ipv4_options) / sizeof(ipv4_options[0])
                                     : sizeof(ipv6_options) / sizeof(ipv6_options[0]);
    for (size_t i = 0; i < count; ++i)
        options->values[slot++] = get_int(fd, ip[i].level, ip[i].name);
    socklen_t length = sizeof(options->linger);
    getsockopt(fd, SOL_SOCKET, SO_LINGER, &options->linger, &length);
    length = sizeof(options->receive_timeout);
    getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &options->receive_timeout, &length);
    length = sizeof(options->send_timeout);
    getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &options->send_timeout, &length);
    length = sizeof(options->device) - 1;
    getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, options->device, &length);
    options->status_flags = fcntl(fd, F_GETFL) & O_NONBLOCK;
}

static const char *option_name(int tcp, int slot)
{
    size_t ints = sizeof(int_options) / sizeof(int_options[0]);
    size_t tcps = tcp ? sizeof(tcp_options) / sizeof(tcp_options[0]) : 0;
    if ((size_t)slot < ints)
        return int_options[slot].what;
    if ((size_t)slot < ints + tcps)
        return tcp_options[slot - ints].what;
    size_t ips = family == AF_INET ? sizeof(ipv4_options) / sizeof(ipv4_options[0])
                                   : sizeof(ipv6_options) / sizeof(ipv6_options[0]);
    if ((size_t)slot < ints + tcps + ips)
        return (family == AF_INET ? ipv4_options : ipv6_options)[slot - ints - tcps].what;
    return "(unused)";
}

static void check_options(int fd, int tcp, const struct options *before)
{
    struct options after;
    read_options(fd, tcp, &after);
    /* Multicast options mean nothing to TCP, which cannot set them (an
     * accepted socket reports its own value). */
    for (int slot = 0; slot < OPTION_SLOTS; ++slot)
        victim_check(after.values[slot] == before->values[slot] || (tcp && strstr(option_name(tcp, slot), "MULTICAST")),
                     "fd %d: %s is %d, was %d", fd, option_name(tcp, slot), after.values[slot], before->values[slot]);
    victim_check(memcmp(&after.linger, &before->linger, sizeof(after.linger)) == 0, "fd %d: SO_LINGER %d/%d, was %d/%d",
                 fd, after.linger.l_onoff, after.linger.l_linger, before->linger.l_onoff, before->linger.l_linger);
    victim_check(after.receive_timeout.tv_sec == before->receive_timeout.tv_sec
                     && after.receive_timeout.tv_usec == before->receive_timeout.tv_usec
                     && after.send_timeout.tv_sec == before->send_timeout.tv_sec
                     && after.send_timeout.tv_usec == before->send_timeout.tv_usec,
                 "fd %d: timeouts changed", fd);
    victim_check(strcmp(after.device, before->device) == 0, "fd %d: SO_BINDTODEVICE '%s', was '%s'", fd, after.device,
                 before->device);
    victim_check(after.status_flags == before->status_flags, "fd %d: O_NONBLOCK changed", fd);
}

static void set_int(int fd, int level, int name, int value, const char *what)
{
    if (setsockopt(fd, level, name, &value, sizeof(value)) < 0)
        victim_check(0, "setsockopt(%s, %d): %s", what, value, strerror(errno));
}

/* Everything that can be set on a socket that is not connected yet. */
static void set_many_options(int fd)
{
    set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
    set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
    set_int(fd, IPPROTO_TCP, TCP_CORK, 1, "TCP_CORK");
    set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, 77, "TCP_KEEPIDLE");
    set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, 13, "TCP_KEEPINTVL");
    set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, 5, "TCP_KEEPCNT");
    set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, 12345, "TCP_USER_TIMEOUT");
    set_int(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, 4096, "TCP_NOTSENT_LOWAT");
    set_int(fd, IPPROTO_TCP, TCP_SYNCNT, 3, "TCP_SYNCNT");
    set_int(fd, IPPROTO_TCP, TCP_LINGER2, 20, "TCP_LINGER2");
    set_int(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, 5, "TCP_DEFER_ACCEPT");
    set_int(fd, SOL_SOCKET, SO_OOBINLINE, 1, "SO_OOBINLINE");
    set_int(fd, SOL_SOCKET, SO_DONTROUTE, 1, "SO_DONTROUTE");
    set_int(fd, SOL_SOCKET, SO_NO_CHECK, 1, "SO_NO_CHECK");
    if (family == AF_INET) {
        set_int(fd, IPPROTO_IP, IP_TOS, 0x10, "IP_TOS");
        set_int(fd, IPPROTO_IP, IP_TTL, 33, "IP_TTL");
        set_int(fd, IPPROTO_IP, IP_FREEBIND, 1, "IP_FREEBIND");
    } else {
        set_int(fd, IPPROTO_IPV6, IPV6_TCLASS, 0x20, "IPV6_TCLASS");
        set_int(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 33, "IPV6_UNICAST_HOPS");
        if (!mapped)
            set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
    }
    set_int(fd, SOL_SOCKET, SO_PRIORITY, 3, "SO_PRIORITY");
    set_int(fd, SOL_SOCKET, SO_MARK, 42, "SO_MARK");
    set_int(fd, SOL_SOCKET, SO_RCVLOWAT, 3, "SO_RCVLOWAT");
    set_int(fd, SOL_SOCKET, SO_RCVBUF, 65536, "SO_RCVBUF");
    set_int(fd, SOL_SOCKET, SO_SNDBUF, 32768, "SO_SNDBUF");
    struct linger linger = { 1, 7 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof(linger));
    struct timeval receive = { 1, 500000 }, send = { 2, 250000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &receive, sizeof(receive));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send, sizeof(send));
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "lo", 2) < 0)
        victim_check(0, "SO_BINDTODEVICE: %s", strerror(errno));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* What a UDP socket may have set: some of these default to 1. */
static void set_udp_options(int fd)
{
    set_int(fd, SOL_SOCKET, SO_TIMESTAMP, 1, "SO_TIMESTAMP");
    if (family == AF_INET) {
        set_int(fd, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
        set_int(fd, IPPROTO_IP, IP_RECVERR, 1, "IP_RECVERR");
        set_int(fd, IPPROTO_IP, IP_RECVTOS, 1, "IP_RECVTOS");
        set_int(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT, "IP_MTU_DISCOVER");
        set_int(fd, IPPROTO_IP, IP_MULTICAST_TTL, 5, "IP_MULTICAST_TTL");
        set_int(fd, IPPROTO_IP, IP_MULTICAST_LOOP, 0, "IP_MULTICAST_LOOP");
    } else {
        set_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO");
        set_int(fd, IPPROTO_IPV6, IPV6_RECVERR, 1, "IPV6_RECVERR");
        set_int(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1, "IPV6_RECVHOPLIMIT");
        set_int(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DONT, "IPV6_MTU_DISCOVER");
        set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 5, "IPV6_MULTICAST_HOPS");
        set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0, "IPV6_MULTICAST_LOOP");
    }
}

/* ------------------------------------------------------------ modes */

/* A connection to `listener` from a new socket: its two ends. */
static int connect_pair(int listener, int *client, int *server)
{
    *client = new_socket(SOCK_STREAM);
    if (*client < 0 || connect_port(*client, local_port(listener)) < 0)
        return -1;
    *server = accept(listener, NULL, NULL);
    return *server < 0 ? -1 : 0;
}

static int run_all(void)
{
    struct options options[21];
    struct names names[21];

    int fresh = move_to(new_socket(SOCK_STREAM), 10);
    set_many_options(fresh);

    int bound = move_to(new_socket(SOCK_STREAM), 11);
    set_int(bound, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    set_int(bound, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
    if (bind_loopback(bound) < 0)
        return 2;

    int listener = move_to(new_socket(SOCK_STREAM), 12);
    set_int(listener, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    set_int(listener, IPPROTO_TCP, TCP_FASTOPEN, 16, "TCP_FASTOPEN");
    if (bind_loopback(listener) < 0 || listen(listener, 7) < 0)
        return 2;

    int client, server;
    if (connect_pair(listener, &client, &server) < 0)
        return 2;
    client = move_to(client, 13);
    server = move_to(server, 14);
    set_int(server, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
    if (send(client, "ping-from-client", 16, 0) != 16 || send(server, "pong-from-server", 16, 0) != 16)
        return 2;

    /* A connection whose reader never reads: the writer's queue fills. */
    int writer, reader;
    if (connect_pair(listener, &writer, &reader) < 0)
        return 2;
    writer = move_to(writer, 15);
    reader = move_to(reader, 16);
    fcntl(writer, F_SETFL, O_NONBLOCK);
    /* A fixed size: autotuning would still grow it after READY. */
    set_int(writer, SOL_SOCKET, SO_SNDBUF, 1 << 20, "SO_SNDBUF");
    static char block[65536];
    long written = 0;
    for (int idle = 0; idle < 20;) {
        victim_fill(block, sizeof(block), written, 15);
        ssize_t n = send(writer, block, sizeof(block), MSG_DONTWAIT);
        if (n > 0) {
            written += n;
            idle = 0;
        } else {
            ++idle;
            usleep(5000);
        }
    }
    int unsent = 0;
    ioctl(writer, SIOCOUTQNSD, &unsent);
    victim_say("fd 15 wrote %ld bytes, %d of them not sent yet", written, unsent);
    pid_t child = fork();
    if (child == 0) {
        close(writer);
        victim_wait();
        static char got[65536];
        long total = 0;
        while (total < written && wait_readable(reader, 10000)) {
            ssize_t n = recv(reader, got, sizeof(got), MSG_DONTWAIT);
            if (n <= 0)
                break;
            victim_check(victim_has_pattern(got, (size_t)n, total, 15), "child: fd 16 data differs near offset %ld", total);
            total += n;
        }
        victim_check(total == written, "child: fd 16 read %ld bytes of %ld", total, written);
        expect_nothing_more(reader, "child: fd 16");
        _exit(victim_failures() ? 1 : 0);
    }
    close(reader);

    int receiver = move_to(new_socket(SOCK_DGRAM), 18);
    set_int(receiver, SOL_SOCKET, SO_BROADCAST, 1, "SO_BROADCAST");
    set_udp_options(receiver);
    int sender = move_to(new_socket(SOCK_DGRAM), 17);
    int stranger = new_socket(SOCK_DGRAM);
    if (bind_loopback(receiver) < 0 || bind_loopback(sender) < 0 || bind_loopback(stranger) < 0
        || connect_port(sender, local_port(receiver)) < 0)
        return 2;
    struct sockaddr_storage to;
    socklen_t to_length = loopback(&to, local_port(receiver));
    struct sockaddr_storage back;
    socklen_t back_length = loopback(&back, local_port(sender));
    if (send(sender, "dgram-1", 7, 0) != 7 || send(sender, "dgram-two", 9, 0) != 9
        || sendto(stranger, "dgram-3", 7, 0, (struct sockaddr *)&to, to_length) != 7
        || sendto(receiver, "back", 4, 0, (struct sockaddr *)&back, back_length) != 4)
        return 2;
    int stranger_port = local_port(stranger);
    close(stranger);

    int foreign = move_to(new_socket(SOCK_DGRAM), 19);
    struct sockaddr_storage nowhere;
    socklen_t nowhere_length = loopback(&nowhere, 0);
    if (family == AF_INET)
        inet_pton(AF_INET, "192.0.2.7", &((struct sockaddr_in *)&nowhere)->sin_addr);
    else
        inet_pton(AF_INET6, mapped ? "::ffff:192.0.2.7" : "2001:db8::7", &((struct sockaddr_in6 *)&nowhere)->sin6_addr);
    set_int(foreign, IPPROTO_IP, IP_FREEBIND, 1, "IP_FREEBIND");
    if (bind(foreign, (struct sockaddr *)&nowhere, nowhere_length) < 0)
        return 2;
    set_int(foreign, IPPROTO_IP, IP_FREEBIND, 0, "IP_FREEBIND");
    int mute = move_to(new_socket(SOCK_DGRAM), 20);
    if (bind_loopback(mute) < 0 || connect_port(mute, local_port(receiver)) < 0 || shutdown(mute, SHUT_WR) < 0)
        return 2;

    for (int fd = 10; fd <= 20; ++fd) {
        if (fd == 16)
            continue;
        read_options(fd, fd <= 15, &options[fd]);
        read_names(fd, &names[fd]);
    }
    struct tcp_info info;
    socklen_t info_length = sizeof(info);
    getsockopt(listener, IPPROTO_TCP, TCP_INFO, &info, &info_length);
    unsigned backlog = info.tcpi_sacked;

    victim_ready();
    victim_wait();
    kill(child, SIGUSR1);

    for (int fd = 10; fd <= 20; ++fd) {
        if (fd == 16)
            continue;
        check_options(fd, fd <= 15, &options[fd]);
        check_names(fd, &names[fd]);
    }
    info_length = sizeof(info);
    getsockopt(listener, IPPROTO_TCP, TCP_INFO, &info, &info_length);
    victim_check(info.tcpi_sacked == backlog, "listener backlog %u, was %u", info.tcpi_sacked, backlog);

    /* The queued data, both ways, then a new exchange. */
    expect_bytes(server, "ping-from-client", "fd 14 receive queue");
    expect_bytes(client, "pong-from-server", "fd 13 receive queue");
    victim_check(send(client, "after-c", 7, MSG_NOSIGNAL) == 7, "fd 13 send: %s", strerror(errno));
    victim_check(send(server, "after-s", 7, MSG_NOSIGNAL) == 7, "fd 14 send: %s", strerror(errno));
    expect_bytes(server, "after-c", "fd 14 after the release");
    expect_bytes(client, "after-s", "fd 13 after the release");
    expect_nothing_more(client, "fd 13");

    /* The listener takes a new connection. */
    int late_client, late_server;
    victim_check(connect_pair(listener, &late_client, &late_server) == 0, "new connection to fd 12: %s", strerror(errno));
    if (late_server >= 0) {
        victim_check(send(late_client, "new", 3, 0) == 3, "send on the new connection");
        expect_bytes(late_server, "new", "new connection");
    }

    /* The datagrams in order, with their senders. */
    const char *expected[] = { "dgram-1", "dgram-two", "dgram-3" };
    int senders[] = { local_port(sender), local_port(sender), stranger_port };
    for (int i = 0; i < 3; ++i) {
        char buffer[64] = "";
        struct sockaddr_storage from;
        socklen_t from_length = sizeof(from);
        ssize_t n = recvfrom(receiver, buffer, sizeof(buffer) - 1, MSG_DONTWAIT, (struct sockaddr *)&from, &from_length);
        victim_check(n == (ssize_t)strlen(expected[i]) && strcmp(buffer, expected[i]) == 0
                         && port_of(&from) == senders[i],
                     "fd 18 datagram %d: '%s' from port %d, want '%s' from %d", i + 1, n > 0 ? buffer : "",
                     n > 0 ? port_of(&from) : -1, expected[i], senders[i]);
    }
    expect_nothing_more(receiver, "fd 18");
    victim_check(send(mute, "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "fd 20 sends after its shutdown(SHUT_WR)");
    expect_bytes(sender, "back", "fd 17 datagram");
    victim_check(send(sender, "fresh", 5, 0) == 5, "fd 17 send: %s", strerror(errno));
    expect_bytes(receiver, "fresh", "fd 18 new datagram");

    /* fd 15's queue drains into the child, which checks every byte. */
    int status = 0;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "child status %#x", status);
    int queued = -1;
    ioctl(writer, SIOCOUTQ, &queued);
    victim_check(queued == 0, "fd 15 still has %d bytes queued", queued);
    return victim_finish();
}

static int run_client(int port)
{
    int fd = move_to(new_socket(SOCK_STREAM), 10);
    if (fd < 0 || connect_port(fd, port) < 0 || send(fd, "hello", 5, 0) != 5)
        return 2;
    struct names names;
    read_names(fd, &names);
    victim_ready();
    victim_wait();
    check_names(fd, &names);
    expect_bytes(fd, "before", "data the test sent before the checkpoint");
    victim_check(send(fd, "after", 5, MSG_NOSIGNAL) == 5, "send after the release: %s", strerror(errno));
    expect_bytes(fd, "bye", "answer of the test");
    return victim_finish();
}

static int run_pending(void)
{
    int listener = move_to(new_socket(SOCK_STREAM), 10);
    if (bind_loopback(listener) < 0 || listen(listener, 4) < 0)
        return 2;
    int client = move_to(new_socket(SOCK_STREAM), 11);
    if (connect_port(client, local_port(listener)) < 0)
        return 2;
    victim_ready();
    victim_wait();
    victim_check(accept(listener, NULL, NULL) >= 0, "accept: %s", strerror(errno));
    return victim_finish();
}

static int run_established(void)
{
    int listener = new_socket(SOCK_STREAM);
    int client, server;
    if (bind_loopback(listener) < 0 || listen(listener, 4) < 0 || connect_pair(listener, &client, &server) < 0)
        return 2;
    close(listener);
    client = move_to(client, 10);
    server = move_to(server, 11);
    if (send(client, "one", 3, 0) != 3 || send(server, "two", 3, 0) != 3)
        return 2;
    victim_ready();
    victim_wait();
    expect_bytes(server, "one", "fd 11");
    expect_bytes(client, "two", "fd 10");
    return victim_finish();
}

static int run_half_closed(void)
{
    int listener = new_socket(SOCK_STREAM);
    int client, server;
    if (bind_loopback(listener) < 0 || listen(listener, 4) < 0 || connect_pair(listener, &client, &server) < 0)
        return 2;
    close(listener);
    client = move_to(client, 10);
    server = move_to(server, 11);
    if (shutdown(client, SHUT_WR) < 0)
        return 2;
    victim_ready();
    victim_wait();
    char byte;
    victim_check(wait_readable(server, 5000) && recv(server, &byte, 1, 0) == 0, "fd 11: no end of stream");
    victim_check(send(server, "late", 4, MSG_NOSIGNAL) == 4, "fd 11 send: %s", strerror(errno));
    expect_bytes(client, "late", "fd 10");
    return victim_finish();
}

static int run_udp_cork(void)
{
    int fd = move_to(new_socket(SOCK_DGRAM), 10);
    int on = 1;
    if (bind_loopback(fd) < 0 || connect_port(fd, local_port(fd)) < 0
        || setsockopt(fd, IPPROTO_UDP, UDP_CORK, &on, sizeof(on)) < 0 || send(fd, "corked", 6, 0) != 6)
        return 2;
    victim_ready();
    victim_wait();
    int off = 0;
    setsockopt(fd, IPPROTO_UDP, UDP_CORK, &off, sizeof(off));
    expect_bytes(fd, "corked", "fd 10 once uncorked");
    return victim_finish();
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    const char *which = argc > 2 ? argv[2] : "4";
    const char *mode = argc > 3 ? argv[3] : "all";
    family = strcmp(which, "4") == 0 ? AF_INET : AF_INET6;
    mapped = strcmp(which, "dual") == 0;
    if (strcmp(mode, "all") == 0)
        return run_all();
    if (strcmp(mode, "client") == 0 && argc > 4)
        return run_client(atoi(argv[4]));
    if (strcmp(mode, "pending") == 0)
        return run_pending();
    if (strcmp(mode, "established") == 0)
        return run_established();
    if (strcmp(mode, "half-closed") == 0)
        return run_half_closed();
    if (strcmp(mode, "udp-cork") == 0)
        return run_udp_cork();
    victim_say("unknown mode '%s'", mode);
    return 2;
}
