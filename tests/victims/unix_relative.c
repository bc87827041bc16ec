/* Unix sockets bound to relative names, resolved from the working
 * directory at bind time (a directory "rel" next to the log): a stream
 * listener "listen.sock" with an accepted connection carrying data both
 * ways and a pending connection, and a datagram socket "dgram.sock" with a
 * datagram queued from a sender bound to "sender.sock".
 * After the restore getsockname() and getpeername() give the relative
 * names back, the data and the datagram's sender are as they were, and
 * the listener and the datagram socket still take new connections and
 * datagrams through the relative names.
 * With the argument "moved", the listener's socket file is renamed away
 * before the dump: cryo cannot tell where the name was bound and refuses. */
#define _GNU_SOURCE
#include <errno.h>
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

/* As zdtm's sk-unix-rel binds it: no terminating NUL in the length. */
static struct name relative_name(const char *file)
{
    struct name name = { .address.sun_family = AF_UNIX };
    snprintf(name.address.sun_path, sizeof(name.address.sun_path), "%s", file);
    name.length = offsetof(struct sockaddr_un, sun_path) + strlen(file);
    return name;
}

/* getsockname(), or getpeername() when `peer`. */
static struct name name_of(int fd, int peer)
{
    struct name name = { .length = sizeof(name.address) };
    int got = (peer ? getpeername : getsockname)(fd, (struct sockaddr *)&name.address, &name.length);
    if (got < 0)
        name.length = 0;
    return name;
}
#define own_name(fd) name_of(fd, 0)
#define peer_name(fd) name_of(fd, 1)

/* The kernel may report a path with or without its terminating NUL. */
static int is_named(struct name name, const char *file)
{
    size_t length = name.length - offsetof(struct sockaddr_un, sun_path);
    return name.length > offsetof(struct sockaddr_un, sun_path) && strnlen(name.address.sun_path, length) == strlen(file)
        && memcmp(name.address.sun_path, file, strlen(file)) == 0;
}

static const char *show(struct name name)
{
    static char text[2][200];
    static int next;
    char *out = text[next++ % 2];
    if (name.length <= offsetof(struct sockaddr_un, sun_path))
        snprintf(out, 200, "(unnamed)");
    else
        snprintf(out, 200, "'%.*s'", (int)(name.length - offsetof(struct sockaddr_un, sun_path)), name.address.sun_path);
    return out;
}

static void must(int ok, const char *what)
{
    if (!ok) {
        victim_say("setup: %s: %s", what, strerror(errno));
        _exit(2);
    }
}

static int make(int type, const char *file)
{
    int fd = socket(AF_UNIX, type, 0);
    struct name name = relative_name(file ? file : "");
    must(fd >= 0 && (!file || bind(fd, (struct sockaddr *)&name.address, name.length) == 0), file ? file : "socket");
    return fd;
}

static void expect(int fd, const char *want, const char *what)
{
    char buffer[64] = "";
    struct pollfd poll_fd = { .fd = fd, .events = POLLIN };
    poll(&poll_fd, 1, 2000);
    struct name from = { .length = sizeof(from.address) };
    ssize_t got = recvfrom(fd, buffer, sizeof(buffer) - 1, MSG_DONTWAIT, (struct sockaddr *)&from.address, &from.length);
    victim_check(got == (ssize_t)strlen(want) && memcmp(buffer, want, strlen(want)) == 0, "%s: got %zd '%s', want '%s'",
                 what, got, got > 0 ? buffer : "", want);
}

static int accept_now(int listener)
{
    struct pollfd poll_fd = { .fd = listener, .events = POLLIN };
    poll(&poll_fd, 1, 2000);
    return accept(listener, NULL, NULL);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    int moved = argc > 2 && strcmp(argv[2], "moved") == 0;
    char log_copy[4096], dir[4200];
    snprintf(log_copy, sizeof(log_copy), "%s", argv[1]);
    snprintf(dir, sizeof(dir), "%s/rel", dirname(log_copy));
    must(mkdir(dir, 0755) == 0 || errno == EEXIST, "mkdir");
    must(chdir(dir) == 0, "chdir");
    unlink("listen.sock");
    unlink("dgram.sock");
    unlink("sender.sock");

    struct name listen_name = relative_name("listen.sock"), dgram_name = relative_name("dgram.sock");
    int listener = make(SOCK_STREAM, "listen.sock");
    must(listen(listener, 4) == 0, "listen");
    int client = make(SOCK_STREAM, NULL);
    must(connect(client, (struct sockaddr *)&listen_name.address, listen_name.length) == 0, "connect");
    int server = accept(listener, NULL, NULL);
    must(server >= 0, "accept");
    send(client, "ping", 4, 0);
    send(server, "pong", 4, 0);
    int pending = make(SOCK_STREAM, NULL);
    must(connect(pending, (struct sockaddr *)&listen_name.address, listen_name.length) == 0, "connect pending");

    int dgram = make(SOCK_DGRAM, "dgram.sock");
    int sender = make(SOCK_DGRAM, "sender.sock");
    must(sendto(sender, "datagram", 8, 0, (struct sockaddr *)&dgram_name.address, dgram_name.length) == 8, "sendto");
    if (moved)
        must(rename("listen.sock", "../moved.sock") == 0, "rename");

    victim_ready();
    victim_wait();
    if (moved)
        must(rename("../moved.sock", "listen.sock") == 0, "rename back");

    victim_check(is_named(own_name(listener), "listen.sock"), "listener's name %s", show(own_name(listener)));
    victim_check(is_named(own_name(server), "listen.sock"), "accepted socket's name %s", show(own_name(server)));
    victim_check(is_named(peer_name(client), "listen.sock"), "client's peer name %s", show(peer_name(client)));
    victim_check(is_named(peer_name(pending), "listen.sock"), "pending client's peer name %s", show(peer_name(pending)));
    victim_check(is_named(own_name(dgram), "dgram.sock"), "datagram socket's name %s", show(own_name(dgram)));
    victim_check(is_named(own_name(sender), "sender.sock"), "sender's name %s", show(own_name(sender)));
    struct stat st;
    victim_check(stat("listen.sock", &st) == 0 && S_ISSOCK(st.st_mode), "no socket file listen.sock in the directory");
    expect(server, "ping", "client -> accepted");
    expect(client, "pong", "accepted -> client");

    /* The queued datagram, with its sender's relative name. */
    char buffer[64] = "";
    struct name from = { .length = sizeof(from.address) };
    ssize_t got = recvfrom(dgram, buffer, sizeof(buffer), MSG_DONTWAIT, (struct sockaddr *)&from.address, &from.length);
    victim_check(got == 8 && memcmp(buffer, "datagram", 8) == 0, "queued datagram: got %zd", got);
    victim_check(is_named(from, "sender.sock"), "datagram's sender %s", show(from));

    /* The pending connection, then new ones through the relative names. */
    int accepted = accept_now(listener);
    victim_check(accepted >= 0, "no pending connection: %s", strerror(errno));
    if (accepted >= 0) {
        send(pending, "late", 4, 0);
        expect(accepted, "late", "pending connection");
    }
    int again = make(SOCK_STREAM, NULL);
    victim_check(connect(again, (struct sockaddr *)&listen_name.address, listen_name.length) == 0, "new connect: %s",
                 strerror(errno));
    int accepted_again = accept_now(listener);
    victim_check(accepted_again >= 0, "new connection not accepted: %s", strerror(errno));
    victim_check(sendto(sender, "more", 4, 0, (struct sockaddr *)&dgram_name.address, dgram_name.length) == 4,
                 "sendto after restore: %s", strerror(errno));
    expect(dgram, "more", "datagram after restore");
    return victim_finish();
}
