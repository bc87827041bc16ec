/* Open files of several kinds at fixed numbers, for the golden test of
 * `cryo show` (tests/e2e/show_golden_test.cpp): a regular file at offset 10
 * and a dup of it, /dev/null close-on-exec, a pipe holding "hello", a unix
 * socket pair with a queued message, an eventfd with count 3, an epoll
 * watching it and a memfd holding 8 bytes. After the checkpoint every one
 * still holds what it held. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "victim.h"

/* Moves `fd` to `target` (which must be free), close-on-exec kept, and
 * returns `target`. */
static int place(int fd, int target)
{
    if (fd < 0 || dup3(fd, target, fcntl(fd, F_GETFD) & FD_CLOEXEC ? O_CLOEXEC : 0) != target)
        return -1;
    close(fd);
    return target;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    char data_path[4200];
    snprintf(data_path, sizeof(data_path), "%s.data", argv[1]);
    int data = place(open(data_path, O_RDWR | O_CREAT | O_TRUNC, 0600), 10);
    int pipe_ends[2], sockets[2];
    if (data < 0 || write(data, "0123456789", 10) != 10 || pipe(pipe_ends)
        || socketpair(AF_UNIX, SOCK_STREAM, 0, sockets))
        return 2;
    int copy = place(dup(data), 11);
    int null = place(open("/dev/null", O_WRONLY | O_CLOEXEC), 12);
    int read_end = place(pipe_ends[0], 13);
    int write_end = place(pipe_ends[1], 14);
    int left = place(sockets[0], 15);
    int right = place(sockets[1], 16);
    int counter = place(eventfd(3, 0), 17);
    int poll = place(epoll_create1(0), 18);
    int memory = place(memfd_create("golden", 0), 19);
    struct epoll_event event = { .events = EPOLLIN, .data.u64 = 42 };
    if (copy < 0 || null < 0 || read_end < 0 || write_end < 0 || left < 0 || right < 0 || counter < 0 || poll < 0
        || memory < 0 || epoll_ctl(poll, EPOLL_CTL_ADD, counter, &event) || write(write_end, "hello", 5) != 5
        || write(left, "queued", 6) != 6 || write(memory, "memfd!!!", 8) != 8)
        return 2;
    victim_ready();
    victim_wait();

    char buffer[16] = "";
    victim_check(lseek(copy, 0, SEEK_CUR) == 10, "the dup'ed file is at offset %ld", (long)lseek(copy, 0, SEEK_CUR));
    victim_check(fcntl(null, F_GETFD) == FD_CLOEXEC, "/dev/null lost close-on-exec");
    victim_check(read(read_end, buffer, sizeof(buffer)) == 5 && memcmp(buffer, "hello", 5) == 0, "pipe held '%s'", buffer);
    victim_check(read(right, buffer, sizeof(buffer)) == 6 && memcmp(buffer, "queued", 6) == 0, "socket held '%.6s'", buffer);
    uint64_t count = 0;
    victim_check(read(counter, &count, sizeof(count)) == sizeof(count) && count == 3, "eventfd count %llu",
                 (unsigned long long)count);
    victim_check(pread(memory, buffer, 8, 0) == 8 && memcmp(buffer, "memfd!!!", 8) == 0, "memfd held '%.8s'", buffer);
    unlink(data_path);
    return victim_finish();
}
