/* Unix sockets whose other end is outside the tree, or whose state cryo
 * cannot read, for the refusals and for `dump --external`. Started as
 * `victim_unix_peers LOG MODE [PATH]`:
 *   client PATH   connects (fd 10) to a listener the test holds at PATH;
 *                 after the restore it sends "after" and expects "welcome"
 *   server PATH   listens at PATH, accepts the test's connection (fd 10)
 *                 and closes the listener; then as client
 *   listen PATH   listens at PATH (fd 10); the test connects and is left
 *                 pending; after the release accept() must return it
 *   pending-data  a client in this process connects to its own abstract
 *                 listener and sends "early", which is not accepted yet;
 *                 after the release accept() returns it with "early" */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "victim.h"

static socklen_t address_of(const char *path, struct sockaddr_un *address)
{
    memset(address, 0, sizeof(*address));
    address->sun_family = AF_UNIX;
    snprintf(address->sun_path, sizeof(address->sun_path), "%s", path);
    return offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
}

static int wait_readable(int fd, int milliseconds)
{
    struct pollfd poll_fd = { .fd = fd, .events = POLLIN };
    return poll(&poll_fd, 1, milliseconds) == 1;
}

static void expect_message(int fd, const char *want, const char *what)
{
    char buffer[256] = "";
    ssize_t got = wait_readable(fd, 20000) ? recv(fd, buffer, sizeof(buffer) - 1, MSG_DONTWAIT) : -1;
    victim_check(got == (ssize_t)strlen(want) && memcmp(buffer, want, strlen(want)) == 0, "%s: got %zd '%s', want '%s'",
                 what, got, got > 0 ? buffer : "", want);
}

static void talk(int fd)
{
    victim_check(send(fd, "after", 5, MSG_NOSIGNAL) == 5, "send after the release: %s", strerror(errno));
    expect_message(fd, "welcome", "answer of the peer outside");
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    const char *mode = argc > 2 ? argv[2] : "";
    struct sockaddr_un address;
    socklen_t length = argc > 3 ? address_of(argv[3], &address) : 0;

    if (strcmp(mode, "client") == 0) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&address, length) < 0 || dup2(fd, 10) != 10)
            return 2;
        close(fd);
        victim_ready();
        victim_wait();
        struct sockaddr_un peer;
        socklen_t peer_length = sizeof(peer);
        victim_check(getpeername(10, (struct sockaddr *)&peer, &peer_length) == 0 && peer_length == length
                         && strcmp(peer.sun_path, address.sun_path) == 0,
                     "peer name '%s'", peer.sun_path);
        talk(10);
    } else if (strcmp(mode, "server") == 0) {
        int listener = socket(AF_UNIX, SOCK_STREAM, 0);
        if (listener < 0 || bind(listener, (struct sockaddr *)&address, length) < 0 || listen(listener, 1) < 0)
            return 2;
        if (!wait_readable(listener, 20000))
            return 3;
        int fd = accept(listener, NULL, NULL);
        if (fd < 0 || dup2(fd, 10) != 10)
            return 2;
        close(fd);
        close(listener);
        victim_ready();
        victim_wait();
        talk(10);
    } else if (strcmp(mode, "listen") == 0) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&address, length) < 0 || listen(fd, 4) < 0 || dup2(fd, 10) != 10)
            return 2;
        close(fd);
        victim_ready();
        victim_wait();
        victim_check(wait_readable(10, 5000), "no pending connection");
        victim_check(accept(10, NULL, NULL) >= 0, "accept: %s", strerror(errno));
    } else if (strcmp(mode, "pending-data") == 0) {
        length = offsetof(struct sockaddr_un, sun_path) + 1
            + snprintf(address.sun_path + 1, sizeof(address.sun_path) - 1, "cryo-pending-%d", getpid());
        address.sun_family = AF_UNIX;
        address.sun_path[0] = '\0';
        int listener = socket(AF_UNIX, SOCK_STREAM, 0);
        int client = socket(AF_UNIX, SOCK_STREAM, 0);
        if (bind(listener, (struct sockaddr *)&address, length) < 0 || listen(listener, 1) < 0
            || connect(client, (struct sockaddr *)&address, length) < 0 || send(client, "early", 5, 0) != 5)
            return 2;
        victim_ready();
        victim_wait();
        int accepted = accept(listener, NULL, NULL);
        victim_check(accepted >= 0, "accept: %s", strerror(errno));
        expect_message(accepted, "early", "data of the pending connection");
    } else {
        victim_say("unknown mode '%s'", mode);
        return 2;
    }
    return victim_finish();
}
