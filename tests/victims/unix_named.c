/* Named unix sockets: a stream listener on a path (owner and mode set,
 * backlog 7) with one accepted connection carrying data both ways and two
 * pending connections (one from a client bound to an abstract name); an
 * accepted seqpacket connection whose abstract listener was closed, with
 * messages both ways; a datagram server on a path (SO_PASSCRED, SO_PASSSEC,
 * SO_RCVBUF)
 * with datagrams queued from a path-bound sender, an unnamed one, an
 * abstract-bound one and a client connect()ed to it; a datagram socket
 * whose file was unlinked; a bound stream socket that does not listen; a
 * stream whose peer closed after sending, and an accepted one whose client
 * closed after sending; two listeners of one path, the first's file moved
 * away while the second bound and moved back over the second's (zdtm
 * del_standalone_un): a client reaches the first.
 * After the restore every name, peer name, queued message (with its
 * boundaries and sender), option and the listener itself must be as they
 * were. Socket files live next to the log. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "victim.h"

struct name {
    struct sockaddr_un address;
    socklen_t length;
};

static struct name path_name(const char *dir, const char *file)
{
    struct name name = { .address.sun_family = AF_UNIX };
    snprintf(name.address.sun_path, sizeof(name.address.sun_path), "%s/%s", dir, file);
    name.length = offsetof(struct sockaddr_un, sun_path) + strlen(name.address.sun_path) + 1;
    return name;
}

static struct name abstract_name(const char *what)
{
    struct name name = { .address.sun_family = AF_UNIX };
    int length = snprintf(name.address.sun_path + 1, sizeof(name.address.sun_path) - 1, "cryo-%s-%d", what, getpid());
    name.length = offsetof(struct sockaddr_un, sun_path) + 1 + length;
    return name;
}

static struct name own_name(int fd)
{
    struct name name = { .length = sizeof(name.address) };
    getsockname(fd, (struct sockaddr *)&name.address, &name.length);
    return name;
}

static struct name peer_name(int fd)
{
    struct name name = { .length = sizeof(name.address) };
    if (getpeername(fd, (struct sockaddr *)&name.address, &name.length) < 0)
        name.length = 0;
    return name;
}

/* recvfrom() gives an unnamed sender as length 0, getsockname() as 2. */
static int same(struct name a, struct name b)
{
    if (a.length <= offsetof(struct sockaddr_un, sun_path) && b.length <= offsetof(struct sockaddr_un, sun_path))
        return 1;
    return a.length == b.length && memcmp(&a.address, &b.address, a.length) == 0;
}

static const char *show(struct name name)
{
    static char text[4][200];
    static int next;
    char *out = text[next++ % 4];
    if (name.length <= offsetof(struct sockaddr_un, sun_path))
        snprintf(out, 200, "(unnamed, length %u)", name.length);
    else if (name.address.sun_path[0] == '\0')
        snprintf(out, 200, "@%.*s", (int)(name.length - offsetof(struct sockaddr_un, sun_path) - 1), name.address.sun_path + 1);
    else
        snprintf(out, 200, "%s", name.address.sun_path);
    return out;
}

static int option(int fd, int name)
{
    int value = -1;
    socklen_t length = sizeof(value);
    getsockopt(fd, SOL_SOCKET, name, &value, &length);
    return value;
}

static int make(int type, const struct name *bind_to)
{
    int fd = socket(AF_UNIX, type, 0);
    if (fd < 0 || (bind_to && bind(fd, (const struct sockaddr *)&bind_to->address, bind_to->length) < 0)) {
        victim_say("setup: socket/bind %s: %s", bind_to ? show(*bind_to) : "", strerror(errno));
        _exit(2);
    }
    return fd;
}

static void must(int ok, const char *what)
{
    if (!ok) {
        victim_say("setup: %s: %s", what, strerror(errno));
        _exit(2);
    }
}

static void expect_message(int fd, const char *want, const char *what)
{
    char buffer[256] = "";
    struct pollfd poll_fd = { .fd = fd, .events = POLLIN };
    poll(&poll_fd, 1, 2000);
    ssize_t got = recv(fd, buffer, sizeof(buffer) - 1, MSG_DONTWAIT);
    victim_check(got == (ssize_t)strlen(want) && memcmp(buffer, want, strlen(want)) == 0, "%s: got %zd '%s', want '%s'",
                 what, got, got > 0 ? buffer : "", want);
}

static void expect_datagram(int fd, const char *want, struct name sender, const char *what)
{
    char buffer[256] = "";
    struct name from = { .length = sizeof(from.address) };
    ssize_t got = recvfrom(fd, buffer, sizeof(buffer) - 1, MSG_DONTWAIT, (struct sockaddr *)&from.address, &from.length);
    victim_check(got == (ssize_t)strlen(want) && memcmp(buffer, want, strlen(want)) == 0, "%s: got %zd '%s', want '%s'",
                 what, got, got > 0 ? buffer : "", want);
    victim_check(same(from, sender), "%s: sender %s, want %s", what, show(from), show(sender));
}

static int accept_now(int listener)
{
    struct pollfd poll_fd = { .fd = listener, .events = POLLIN };
    poll(&poll_fd, 1, 2000);
    return accept4(listener, NULL, NULL, SOCK_NONBLOCK);
}

/* A name is held when another socket cannot bind to it (abstract names
 * are per socket type). */
static int name_is_held(struct name name, int type)
{
    int probe = socket(AF_UNIX, type, 0);
    int held = bind(probe, (struct sockaddr *)&name.address, name.length) < 0 && errno == EADDRINUSE;
    if (!held && name.address.sun_path[0] != '\0')
        unlink(name.address.sun_path);
    close(probe);
    return held;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    char log_copy[4096];
    snprintf(log_copy, sizeof(log_copy), "%s", argv[1]);
    const char *dir = dirname(log_copy);
    struct name listen_path = path_name(dir, "listen.sock"), dgram_path = path_name(dir, "dgram.sock");
    struct name x1_path = path_name(dir, "x1.sock"), gone_path = path_name(dir, "gone.sock");
    struct name seq_name = abstract_name("seq"), x3_name = abstract_name("x3"), c3_name = abstract_name("c3");
    struct name bound_name = abstract_name("bound");

    /* Stream listener with one accepted and two pending connections. */
    int listener = make(SOCK_STREAM, &listen_path);
    must(listen(listener, 7) == 0, "listen");
    must(chmod(listen_path.address.sun_path, 0640) == 0 && chown(listen_path.address.sun_path, 1234, 4321) == 0, "chmod");
    int c1 = make(SOCK_STREAM, NULL);
    must(connect(c1, (struct sockaddr *)&listen_path.address, listen_path.length) == 0, "connect c1");
    int s1 = accept(listener, NULL, NULL);
    must(s1 >= 0, "accept s1");
    int sndbuf = 40000;
    setsockopt(c1, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    int c1_sndbuf = option(c1, SO_SNDBUF);
    send(c1, "hello ", 6, 0);
    send(c1, "world", 5, 0);
    send(s1, "reply", 5, 0);
    /* An accepted connection whose client is gone after sending. */
    int c5 = make(SOCK_STREAM, NULL);
    must(connect(c5, (struct sockaddr *)&listen_path.address, listen_path.length) == 0, "connect c5");
    int s5 = accept(listener, NULL, NULL);
    must(s5 >= 0, "accept s5");
    send(c5, "last", 4, 0);
    close(c5);
    int c2 = make(SOCK_STREAM, NULL);
    must(connect(c2, (struct sockaddr *)&listen_path.address, listen_path.length) == 0, "connect c2");
    int c3 = make(SOCK_STREAM, &c3_name);
    must(connect(c3, (struct sockaddr *)&listen_path.address, listen_path.length) == 0, "connect c3");
    struct name c1_name = own_name(c1), s1_peer = peer_name(s1), c2_name = own_name(c2);

    /* Seqpacket connection whose abstract listener is closed. */
    int seq_listener = make(SOCK_SEQPACKET, &seq_name);
    must(listen(seq_listener, 1) == 0, "listen seq");
    int qc = make(SOCK_SEQPACKET, NULL);
    must(connect(qc, (struct sockaddr *)&seq_name.address, seq_name.length) == 0, "connect qc");
    int qs = accept(seq_listener, NULL, NULL);
    must(qs >= 0, "accept qs");
    close(seq_listener);
    send(qc, "a", 1, 0);
    send(qc, "bb", 2, 0);
    send(qc, "ccc", 3, 0);
    send(qs, "server-1", 8, 0);
    send(qs, "server-22", 9, 0);

    /* Datagram server with messages from several senders. */
    int server = make(SOCK_DGRAM, NULL);
    int rcvbuf = 60000, on = 1;
    setsockopt(server, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    must(bind(server, (struct sockaddr *)&dgram_path.address, dgram_path.length) == 0, "bind dgram");
    setsockopt(server, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on));
    setsockopt(server, SOL_SOCKET, SO_PASSSEC, &on, sizeof(on));
    int server_rcvbuf = option(server, SO_RCVBUF);
    int x1 = make(SOCK_DGRAM, &x1_path), x2 = make(SOCK_DGRAM, NULL), x3 = make(SOCK_DGRAM, &x3_name);
    int y = make(SOCK_DGRAM, NULL);
    must(connect(y, (struct sockaddr *)&dgram_path.address, dgram_path.length) == 0, "connect y");
    struct sockaddr *to = (struct sockaddr *)&dgram_path.address;
    must(sendto(x1, "x1-a", 4, 0, to, dgram_path.length) == 4, "send x1-a");
    must(sendto(x2, "x2-a", 4, 0, to, dgram_path.length) == 4, "send x2-a");
    must(sendto(x3, "x3-a", 4, 0, to, dgram_path.length) == 4, "send x3-a");
    must(send(y, "y-a", 3, 0) == 3, "send y-a");
    must(sendto(x1, "x1-b", 4, 0, to, dgram_path.length) == 4, "send x1-b");
    struct name x2_name = own_name(x2), y_name = own_name(y);

    /* A datagram socket whose file is gone, a bound stream socket. */
    int gone = make(SOCK_DGRAM, &gone_path);
    unlink(gone_path.address.sun_path);
    int bound = make(SOCK_STREAM, &bound_name);
    struct name shadow_path = path_name(dir, "shadow.sock"), aside_path = path_name(dir, "aside.sock");
    int first = make(SOCK_STREAM, &shadow_path);
    must(rename(shadow_path.address.sun_path, aside_path.address.sun_path) == 0, "rename away");
    int second = make(SOCK_STREAM, &shadow_path);
    must(rename(aside_path.address.sun_path, shadow_path.address.sun_path) == 0, "rename back");
    must(listen(first, 3) == 0 && listen(second, 3) == 0, "listen on the shadowed path");
    /* A stream whose peer is gone after sending its last words. */
    char byte;
    int dead[2];
    must(socketpair(AF_UNIX, SOCK_STREAM, 0, dead) == 0, "socketpair");
    send(dead[1], "bye", 3, 0);
    close(dead[1]);

    victim_ready();
    victim_wait();

    /* The listener: name, file, type, state; the accepted connection. */
    fcntl(listener, F_SETFL, O_NONBLOCK);
    victim_check(option(listener, SO_TYPE) == SOCK_STREAM, "listener SO_TYPE %d", option(listener, SO_TYPE));
    victim_check(option(listener, SO_ACCEPTCONN) == 1, "listener SO_ACCEPTCONN %d", option(listener, SO_ACCEPTCONN));
    victim_check(same(own_name(listener), listen_path), "listener name %s", show(own_name(listener)));
    struct stat st;
    victim_check(stat(listen_path.address.sun_path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 07777) == 0640
                     && st.st_uid == 1234 && st.st_gid == 4321,
                 "socket file mode %o owner %u:%u", st.st_mode, st.st_uid, st.st_gid);
    victim_check(name_is_held(listen_path, SOCK_DGRAM), "nothing holds %s", show(listen_path));
    expect_message(s1, "hello world", "stream c1 -> s1");
    expect_message(c1, "reply", "stream s1 -> c1");
    victim_check(same(own_name(s1), listen_path), "accepted socket's name %s", show(own_name(s1)));
    victim_check(same(peer_name(c1), listen_path), "client's peer name %s", show(peer_name(c1)));
    victim_check(same(own_name(c1), c1_name), "client's name %s", show(own_name(c1)));
    victim_check(same(peer_name(s1), s1_peer), "accepted socket's peer name %s", show(peer_name(s1)));
    victim_check(option(s1, SO_ACCEPTCONN) == 0, "accepted socket SO_ACCEPTCONN %d", option(s1, SO_ACCEPTCONN));
    victim_check(option(c1, SO_SNDBUF) == c1_sndbuf, "SO_SNDBUF %d, want %d", option(c1, SO_SNDBUF), c1_sndbuf);

    /* The pending connections, in order, then a new one. */
    int a2 = accept_now(listener);
    victim_check(a2 >= 0, "no first pending connection: %s", strerror(errno));
    int a3 = accept_now(listener);
    victim_check(a3 >= 0, "no second pending connection: %s", strerror(errno));
    if (a2 >= 0 && a3 >= 0) {
        char byte;
        victim_check(recv(a2, &byte, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "data on the first pending connection");
        victim_check(same(peer_name(a2), c2_name), "first pending peer %s, want %s", show(peer_name(a2)), show(c2_name));
        victim_check(same(peer_name(a3), c3_name), "second pending peer %s, want %s", show(peer_name(a3)), show(c3_name));
        victim_check(same(peer_name(c3), listen_path), "pending client's peer name %s", show(peer_name(c3)));
        send(c2, "from c2", 7, 0);
        expect_message(a2, "from c2", "first pending connection");
        send(a3, "to c3", 5, 0);
        expect_message(c3, "to c3", "second pending connection");
    }
    victim_check(accept4(listener, NULL, NULL, SOCK_NONBLOCK) < 0 && errno == EAGAIN, "a third pending connection");
    int c4 = make(SOCK_STREAM, NULL);
    victim_check(connect(c4, (struct sockaddr *)&listen_path.address, listen_path.length) == 0, "new connect: %s",
                 strerror(errno));
    int a4 = accept_now(listener);
    victim_check(a4 >= 0, "new connection not accepted: %s", strerror(errno));
    send(c4, "new", 3, 0);
    if (a4 >= 0)
        expect_message(a4, "new", "new connection");

    /* Seqpacket: boundaries both ways; the closed listener's name is free. */
    victim_check(option(qs, SO_TYPE) == SOCK_SEQPACKET, "seqpacket SO_TYPE %d", option(qs, SO_TYPE));
    expect_message(qs, "a", "seqpacket 1");
    expect_message(qs, "bb", "seqpacket 2");
    expect_message(qs, "ccc", "seqpacket 3");
    expect_message(qc, "server-1", "seqpacket back 1");
    expect_message(qc, "server-22", "seqpacket back 2");
    victim_check(same(own_name(qs), seq_name), "seqpacket accepted name %s", show(own_name(qs)));
    victim_check(same(peer_name(qc), seq_name), "seqpacket client's peer name %s", show(peer_name(qc)));
    victim_check(!name_is_held(seq_name, SOCK_SEQPACKET), "the closed listener's name %s is held", show(seq_name));

    /* Datagrams in order, each with its sender. */
    victim_check(option(server, SO_TYPE) == SOCK_DGRAM, "dgram SO_TYPE %d", option(server, SO_TYPE));
    victim_check(option(server, SO_PASSCRED) == 1, "SO_PASSCRED %d", option(server, SO_PASSCRED));
    victim_check(option(x1, SO_PASSCRED) == 0, "SO_PASSCRED on x1 %d", option(x1, SO_PASSCRED));
    victim_check(option(server, SO_PASSSEC) == 1, "SO_PASSSEC %d", option(server, SO_PASSSEC));
    victim_check(option(x1, SO_PASSSEC) == 0, "SO_PASSSEC on x1 %d", option(x1, SO_PASSSEC));
    victim_check(option(server, SO_RCVBUF) == server_rcvbuf, "SO_RCVBUF %d, want %d", option(server, SO_RCVBUF), server_rcvbuf);
    victim_check(same(own_name(server), dgram_path), "dgram server name %s", show(own_name(server)));
    expect_datagram(server, "x1-a", x1_path, "datagram 1");
    expect_datagram(server, "x2-a", x2_name, "datagram 2");
    expect_datagram(server, "x3-a", x3_name, "datagram 3");
    expect_datagram(server, "y-a", y_name, "datagram 4");
    expect_datagram(server, "x1-b", x1_path, "datagram 5");
    victim_check(same(peer_name(y), dgram_path), "dgram client's peer %s", show(peer_name(y)));
    victim_check(send(y, "y-b", 3, 0) == 3, "send on the connected dgram client: %s", strerror(errno));
    expect_datagram(server, "y-b", y_name, "datagram after restore");
    victim_check(sendto(x3, "x3-b", 4, 0, to, dgram_path.length) == 4, "sendto the dgram server: %s", strerror(errno));
    expect_datagram(server, "x3-b", x3_name, "datagram after restore from x3");
    victim_check(sendto(server, "back", 4, 0, (struct sockaddr *)&x1_path.address, x1_path.length) == 4, "reply to x1: %s",
                 strerror(errno));
    expect_datagram(x1, "back", dgram_path, "reply to x1");

    /* The unlinked one keeps its name without a file; the bound one holds it. */
    victim_check(same(own_name(gone), gone_path), "unlinked socket's name %s", show(own_name(gone)));
    victim_check(access(gone_path.address.sun_path, F_OK) < 0 && errno == ENOENT, "%s exists", show(gone_path));
    victim_check(same(own_name(bound), bound_name), "bound socket's name %s", show(own_name(bound)));
    victim_check(same(own_name(first), shadow_path) && same(own_name(second), shadow_path), "shadowed names %s, %s",
                 show(own_name(first)), show(own_name(second)));
    int visitor = socket(AF_UNIX, SOCK_STREAM, 0);
    victim_check(connect(visitor, (struct sockaddr *)&shadow_path.address, shadow_path.length) == 0,
                 "connect to %s: %s", show(shadow_path), strerror(errno));
    struct pollfd first_poll = { .fd = first, .events = POLLIN };
    victim_check(poll(&first_poll, 1, 2000) == 1, "the client did not reach the listener whose file %s is",
                 show(shadow_path));
    close(visitor);
    unlink(shadow_path.address.sun_path);
    victim_check(option(bound, SO_ACCEPTCONN) == 0, "bound socket listens");
    victim_check(name_is_held(bound_name, SOCK_STREAM), "nothing holds %s", show(bound_name));
    victim_check(name_is_held(x3_name, SOCK_DGRAM), "nothing holds %s", show(x3_name));
    expect_message(s5, "last", "data of a client that is gone");
    victim_check(recv(s5, &byte, 1, MSG_DONTWAIT) == 0, "no end of stream after the client is gone");
    victim_check(same(own_name(s5), listen_path), "name of the accepted socket whose client is gone: %s", show(own_name(s5)));
    expect_message(dead[0], "bye", "data of a peer that is gone");
    victim_check(recv(dead[0], &byte, 1, MSG_DONTWAIT) == 0, "no end of stream after the peer is gone");
    return victim_finish();
}
