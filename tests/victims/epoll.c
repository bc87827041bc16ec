/* epoll: registrations on a pipe with data, an edge-triggered eventfd, a
 * writable unix socket and an empty pipe, each with its own data cookie.
 * After restore epoll_wait must report exactly the ready ones with their
 * cookies, and EPOLL_CTL_MOD/DEL must find the registrations by fd number.
 * One more pipe is registered as fd 200, closed afterwards (the file lives
 * on in the pipe's first fd, and so does the registration): after restore
 * fd 200 is still closed and the registration reports data (zdtm epoll).
 * Fd 201 was registered, then made another pipe's (close-on-exec) and
 * registered again: both registrations live under the one number, and
 * after restore 201 is the second pipe's again (zdtm epoll01). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "victim.h"

static int add(int epoll, int fd, uint32_t events, uint64_t cookie)
{
    struct epoll_event event = { .events = events, .data.u64 = cookie };
    return epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    int full[2], empty[2], sockets[2];
    if (pipe(full) || pipe(empty) || socketpair(AF_UNIX, SOCK_STREAM, 0, sockets))
        return 2;
    if (write(full[1], "x", 1) != 1)
        return 2;
    int counter = eventfd(3, 0);
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (add(epoll, full[0], EPOLLIN, 0x1111) || add(epoll, counter, EPOLLIN | EPOLLET, 0x2222)
        || add(epoll, sockets[0], EPOLLOUT, 0x3333) || add(epoll, empty[0], EPOLLIN, 0x4444))
        return 2;
    int closed[2];
    if (pipe(closed) || dup2(closed[0], 200) != 200 || add(epoll, 200, EPOLLIN, 0x6666) || close(200))
        return 2;
    int gone[2], reused[2];
    if (pipe(gone) || pipe(reused) || dup2(gone[0], 201) != 201 || add(epoll, 201, EPOLLIN, 0x7777)
        || dup3(reused[0], 201, O_CLOEXEC) != 201 || add(epoll, 201, EPOLLIN, 0x8888))
        return 2;
    victim_ready();
    victim_wait();

    struct epoll_event events[8];
    int ready = epoll_wait(epoll, events, 8, 1000);
    int seen_full = 0, seen_counter = 0, seen_socket = 0, seen_empty = 0;
    for (int i = 0; i < ready; ++i) {
        seen_full += events[i].data.u64 == 0x1111 && (events[i].events & EPOLLIN);
        seen_counter += events[i].data.u64 == 0x2222 && (events[i].events & EPOLLIN);
        seen_socket += events[i].data.u64 == 0x3333 && (events[i].events & EPOLLOUT);
        seen_empty += events[i].data.u64 == 0x4444;
    }
    victim_check(ready == 3 && seen_full == 1 && seen_counter == 1 && seen_socket == 1 && seen_empty == 0,
                 "epoll_wait: %d ready (pipe %d, eventfd %d, socket %d, empty pipe %d)", ready, seen_full, seen_counter,
                 seen_socket, seen_empty);
    struct epoll_event change = { .events = EPOLLIN, .data.u64 = 0x5555 };
    victim_check(epoll_ctl(epoll, EPOLL_CTL_MOD, sockets[0], &change) == 0, "EPOLL_CTL_MOD does not find the socket");
    victim_check(epoll_ctl(epoll, EPOLL_CTL_DEL, full[0], NULL) == 0, "EPOLL_CTL_DEL does not find the pipe");
    victim_check(add(epoll, empty[0], EPOLLIN, 1) < 0, "the empty pipe was not registered any more");
    if (write(empty[1], "y", 1) != 1)
        return 2;
    ready = epoll_wait(epoll, events, 8, 1000);
    int seen_new = 0;
    for (int i = 0; i < ready; ++i)
        seen_new += events[i].data.u64 == 0x4444;
    victim_check(seen_new == 1, "the empty pipe's registration does not report new data");
    victim_check(fcntl(200, F_GETFD) < 0, "fd 200, closed before the dump, is open");
    if (write(closed[1], "z", 1) != 1)
        return 2;
    ready = epoll_wait(epoll, events, 8, 1000);
    int seen_closed = 0;
    for (int i = 0; i < ready; ++i)
        seen_closed += events[i].data.u64 == 0x6666 && (events[i].events & EPOLLIN);
    victim_check(seen_closed == 1, "the registration of the closed fd 200 does not report new data");
    struct stat at_201, reused_stat;
    victim_check(fstat(201, &at_201) == 0 && fstat(reused[0], &reused_stat) == 0 && at_201.st_ino == reused_stat.st_ino,
                 "fd 201 is not the second pipe any more");
    victim_check(fcntl(201, F_GETFD) == FD_CLOEXEC, "fd 201 lost FD_CLOEXEC");
    for (int round = 0; round < 2; ++round) {
        uint64_t cookie = round == 0 ? 0x7777 : 0x8888;
        if (write(round == 0 ? gone[1] : reused[1], "w", 1) != 1)
            return 2;
        ready = epoll_wait(epoll, events, 8, 1000);
        int seen = 0;
        for (int i = 0; i < ready; ++i)
            seen += events[i].data.u64 == cookie;
        victim_check(seen == 1, "the registration %#lx under the reused fd 201 does not report new data",
                     (unsigned long)cookie);
    }
    return victim_finish();
}
