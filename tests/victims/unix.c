/* Unix socket pairs: stream, datagram and seqpacket, with data queued in
 * both directions (message boundaries must be kept), one pair shared with a
 * child process, a non-blocking end, a half-closed (shut down) pair and a
 * datagram pair whose sending end was closed with its datagrams still
 * queued (zdtm socket_close_data). Files in flight: unix_scm.c. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

static void expect_message(int fd, const char *want, const char *what)
{
    char buffer[256] = "";
    ssize_t got = recv(fd, buffer, sizeof(buffer) - 1, MSG_DONTWAIT);
    victim_check(got == (ssize_t)strlen(want) && memcmp(buffer, want, strlen(want)) == 0, "%s: got %zd '%s', want '%s'",
                 what, got, got > 0 ? buffer : "", want);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    int stream[2], dgram[2], seq[2], closing[2], orphan[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, stream) || socketpair(AF_UNIX, SOCK_DGRAM, 0, dgram)
        || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, seq) || socketpair(AF_UNIX, SOCK_STREAM, 0, closing)
        || socketpair(AF_UNIX, SOCK_DGRAM, 0, orphan))
        return 2;
    send(orphan[1], "orphaned", 8, 0);
    send(orphan[1], "twice", 5, 0);
    close(orphan[1]);
    send(stream[0], "hello ", 6, 0);
    send(stream[0], "world", 5, 0);
    send(stream[1], "back", 4, 0);
    send(dgram[0], "one", 3, 0);
    send(dgram[0], "two", 3, 0);
    send(dgram[0], "three", 5, 0);
    send(closing[0], "last words", 10, 0);
    shutdown(closing[0], SHUT_WR);
    fcntl(dgram[1], F_SETFL, O_NONBLOCK);

    pid_t child = fork();
    if (child == 0) {
        close(seq[0]);
        send(seq[1], "from child", 10, 0);
        victim_wait();
        expect_message(seq[1], "from parent", "seqpacket in the child");
        _exit(victim_failures() ? 1 : 0);
    }
    close(seq[1]);
    send(seq[0], "from parent", 11, 0);
    usleep(100000);
    victim_ready();
    victim_wait();
    kill(child, SIGUSR1);

    expect_message(stream[1], "hello world", "stream");
    expect_message(stream[0], "back", "stream, other way");
    expect_message(dgram[1], "one", "datagram 1");
    expect_message(dgram[1], "two", "datagram 2");
    expect_message(dgram[1], "three", "datagram 3");
    victim_check(fcntl(dgram[1], F_GETFL) & O_NONBLOCK, "O_NONBLOCK lost");
    expect_message(orphan[0], "orphaned", "datagram 1 of the closed end");
    expect_message(orphan[0], "twice", "datagram 2 of the closed end");
    expect_message(seq[0], "from child", "seqpacket in the parent");
    expect_message(closing[1], "last words", "before the shutdown");
    char byte;
    victim_check(recv(closing[1], &byte, 1, 0) == 0, "no end of stream after the shutdown");
    victim_check(send(stream[0], "again", 5, 0) == 5, "the stream pair no longer works");
    expect_message(stream[1], "again", "stream after restore");
    int status = 0;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    return victim_finish();
}
