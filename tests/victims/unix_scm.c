/* Descriptors in flight: messages queued on unix socket pairs that carry
 * open files (SCM_RIGHTS), not received yet when the tree is dumped.
 *   - datagram: a pipe's read end whose only other copy was closed (zdtm
 *     scm00), with bytes in the pipe; the same read end again in a second
 *     message (one open file, so one offset and one set of flags);
 *   - seqpacket: a message without files, then one with a regular file
 *     (at offset 5, also kept at fd 20: the offset is shared) and a memfd;
 *   - stream: "abc", then "def" with an eventfd (count 7), then "ghi".
 * After the restore each message is received and its files checked.
 * With "socket": a unix socket in flight, which the dump refuses. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "victim.h"

#define MAX_PASSED 4

static int send_files(int via, const char *data, const int *fds, int count)
{
    char control[CMSG_SPACE(MAX_PASSED * sizeof(int))] = { 0 };
    struct iovec vector = { (void *)data, strlen(data) };
    struct msghdr header = { .msg_iov = &vector, .msg_iovlen = 1 };
    if (count > 0) {
        header.msg_control = control;
        header.msg_controllen = CMSG_SPACE(count * sizeof(int));
        struct cmsghdr *rights = CMSG_FIRSTHDR(&header);
        rights->cmsg_level = SOL_SOCKET;
        rights->cmsg_type = SCM_RIGHTS;
        rights->cmsg_len = CMSG_LEN(count * sizeof(int));
        memcpy(CMSG_DATA(rights), fds, count * sizeof(int));
    }
    return sendmsg(via, &header, 0) == (ssize_t)strlen(data) ? 0 : -1;
}

/* Receives one message: checks its data is `want` and returns how many
 * descriptors came with it (in `fds`), -1 if the message is wrong. */
static int receive_files(int via, const char *want, int *fds, const char *what)
{
    char buffer[64] = "";
    char control[CMSG_SPACE(MAX_PASSED * sizeof(int))] = { 0 };
    struct iovec vector = { buffer, sizeof(buffer) - 1 };
    struct msghdr header = {
        .msg_iov = &vector, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)
    };
    ssize_t got = recvmsg(via, &header, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (got != (ssize_t)strlen(want) || memcmp(buffer, want, strlen(want)) != 0) {
        victim_check(0, "%s: got %zd bytes '%s', want '%s'", what, got, got > 0 ? buffer : "", want);
        return -1;
    }
    victim_check(!(header.msg_flags & MSG_CTRUNC), "%s: control data cut", what);
    int count = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&header); c; c = CMSG_NXTHDR(&header, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < n && count < MAX_PASSED; ++i)
            memcpy(&fds[count++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    return count;
}

static int socket_case(void)
{
    int carrier[2], passenger[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, carrier) || socketpair(AF_UNIX, SOCK_STREAM, 0, passenger))
        return 2;
    if (send_files(carrier[0], "s", &passenger[0], 1))
        return 2;
    close(passenger[0]);
    victim_ready();
    victim_wait();
    return victim_finish();
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    if (argc > 2 && strcmp(argv[2], "socket") == 0)
        return socket_case();

    int dgram[2], seq[2], stream[2], pipe_ends[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, dgram) || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, seq)
        || socketpair(AF_UNIX, SOCK_STREAM, 0, stream) || pipe(pipe_ends))
        return 2;
    /* The pipe: bytes in it, its read end only in flight (twice). */
    if (write(pipe_ends[1], "before", 6) != 6 || send_files(dgram[0], "pipe", &pipe_ends[0], 1)
        || send_files(dgram[0], "again", &pipe_ends[0], 1))
        return 2;
    close(pipe_ends[0]);

    /* A regular file in flight and at fd 20, and a memfd only in flight. */
    char path[] = "/tmp/cryo-unix-scm-XXXXXX";
    int file = mkstemp(path);
    if (file < 0 || write(file, "0123456789", 10) != 10 || lseek(file, 5, SEEK_SET) != 5 || dup2(file, 20) != 20)
        return 2;
    close(file);
    unlink(path);
    int memfd = memfd_create("in-flight", MFD_CLOEXEC);
    if (memfd < 0 || write(memfd, "memfd data", 10) != 10)
        return 2;
    int files[2] = { 20, memfd };
    if (send_files(seq[0], "plain", NULL, 0) || send_files(seq[0], "files", files, 2))
        return 2;
    close(memfd);

    /* An eventfd in the middle of a stream. */
    int counter = eventfd(7, EFD_CLOEXEC);
    if (counter < 0 || send_files(stream[0], "abc", NULL, 0) || send_files(stream[0], "def", &counter, 1)
        || send_files(stream[0], "ghi", NULL, 0))
        return 2;
    close(counter);

    victim_ready();
    victim_wait();

    int fds[MAX_PASSED];
    if (receive_files(dgram[1], "pipe", fds, "datagram 1") == 1) {
        int read_end = fds[0];
        char buffer[16] = "";
        victim_check(read(read_end, buffer, sizeof(buffer)) == 6 && memcmp(buffer, "before", 6) == 0,
                     "the pipe in flight lost its bytes ('%s')", buffer);
        victim_check(write(pipe_ends[1], "after", 5) == 5 && read(read_end, buffer, sizeof(buffer)) == 5
                         && memcmp(buffer, "after", 5) == 0,
                     "the pipe in flight is not the pipe whose write end the process kept");
        if (receive_files(dgram[1], "again", fds, "datagram 2") == 1) {
            int flags = fcntl(read_end, F_GETFL);
            fcntl(read_end, F_SETFL, flags | O_NONBLOCK);
            victim_check(fcntl(fds[0], F_GETFL) & O_NONBLOCK, "the pipe sent twice came back as two open files");
            close(fds[0]);
        }
        close(read_end);
    } else {
        victim_check(0, "datagram 1 carried no pipe");
    }

    victim_check(receive_files(seq[1], "plain", fds, "seqpacket 1") == 0, "seqpacket 1 carried files");
    if (receive_files(seq[1], "files", fds, "seqpacket 2") == 2) {
        victim_check(lseek(fds[0], 0, SEEK_CUR) == 5, "the file in flight is not at offset 5");
        lseek(fds[0], 8, SEEK_SET);
        victim_check(lseek(20, 0, SEEK_CUR) == 8, "the file in flight and fd 20 no longer share an offset");
        char buffer[16] = "";
        victim_check(pread(fds[1], buffer, sizeof(buffer), 0) == 10 && memcmp(buffer, "memfd data", 10) == 0,
                     "the memfd in flight lost its data ('%s')", buffer);
        close(fds[0]);
        close(fds[1]);
    } else {
        victim_check(0, "seqpacket 2 did not carry two files");
    }

    /* A stream read glues the data before a message with files to it. */
    if (receive_files(stream[1], "abcdef", fds, "stream 1") == 1) {
        uint64_t count = 0;
        victim_check(read(fds[0], &count, sizeof(count)) == sizeof(count) && count == 7,
                     "the eventfd in flight counts %llu, not 7", (unsigned long long)count);
        close(fds[0]);
    } else {
        victim_check(0, "the stream's data came without the eventfd");
    }
    victim_check(receive_files(stream[1], "ghi", fds, "stream 2") == 0, "the end of the stream carried files");
    return victim_finish();
}
