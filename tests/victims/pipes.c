/* Pipes, FIFOs and eventfds: data sitting in a pipe inside the process, in
 * a named pipe (FIFO) with separate read and write ends, in a FIFO open
 * read-write whose name was removed (mode 0640: zdtm unlink_fifo), and in
 * pipes between a parent and its child (both directions), a pipe with a
 * bigger buffer, O_NONBLOCK on one end, a dup'ed end sharing its flags,
 * and eventfds with their counters, one in semaphore mode. Every pipe end
 * keeps the status flags F_GETFL gave before the dump (a pipe end reopened
 * through /proc would add the kernel's O_LARGEFILE: zdtm file_fown). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    int local[2], down[2], up[2], big[2];
    if (pipe(local) || pipe(down) || pipe(up) || pipe(big))
        return 2;
    if (write(local[1], "hello", 5) != 5)
        return 2;
    fcntl(big[0], F_SETPIPE_SZ, 1 << 20);
    static char payload[300000];
    for (size_t i = 0; i < sizeof(payload); ++i)
        payload[i] = (char)(i * 7);
    if (write(big[1], payload, sizeof(payload)) != (ssize_t)sizeof(payload))
        return 2;
    fcntl(local[0], F_SETFL, O_NONBLOCK);
    int async_ends[2];
    if (pipe(async_ends) || fcntl(async_ends[0], F_SETFL, O_ASYNC) || fcntl(async_ends[1], F_SETFL, O_ASYNC))
        return 2;
    int flags_before[4] = { fcntl(big[0], F_GETFL), fcntl(big[1], F_GETFL), fcntl(async_ends[0], F_GETFL),
                            fcntl(async_ends[1], F_GETFL) };
    int shared_end = dup(local[1]);
    int semaphore = eventfd(5, EFD_SEMAPHORE);
    int counter = eventfd(0, EFD_NONBLOCK);
    uint64_t large = 1ull << 40;
    if (write(counter, &large, sizeof(large)) != sizeof(large))
        return 2;

    char fifo_path[4200];
    snprintf(fifo_path, sizeof(fifo_path), "%s.fifo", argv[1]);
    unlink(fifo_path);
    if (mkfifo(fifo_path, 0600))
        return 2;
    int fifo_read = open(fifo_path, O_RDONLY | O_NONBLOCK);
    int fifo_write = open(fifo_path, O_WRONLY);
    if (fifo_read < 0 || fifo_write < 0 || write(fifo_write, "fifo-data", 9) != 9)
        return 2;

    char gone_path[4200];
    snprintf(gone_path, sizeof(gone_path), "%s.gone", argv[1]);
    unlink(gone_path);
    if (mkfifo(gone_path, 0640) || chmod(gone_path, 0640))
        return 2;
    int gone = open(gone_path, O_RDWR | O_NONBLOCK);
    if (gone < 0 || write(gone, "ghost", 5) != 5 || unlink(gone_path))
        return 2;

    pid_t child = fork();
    if (child == 0) {
        close(down[1]);
        close(up[0]);
        if (write(up[1], "from-child", 10) != 10)
            _exit(2);
        victim_wait();
        char buffer[16] = "";
        victim_check(victim_read_exactly(down[0], buffer, 11) && memcmp(buffer, "from-parent", 11) == 0, "child read '%s'", buffer);
        victim_check(read(down[0], buffer, 1) == 0, "the pipe from the parent is not at its end");
        _exit(victim_failures() ? 1 : 0);
    }
    close(down[0]);
    close(up[1]);
    if (write(down[1], "from-parent", 11) != 11)
        return 2;
    close(down[1]);
    usleep(100000);
    victim_ready();
    victim_wait();
    kill(child, SIGUSR1);

    int flags_after[4] = { fcntl(big[0], F_GETFL), fcntl(big[1], F_GETFL), fcntl(async_ends[0], F_GETFL),
                           fcntl(async_ends[1], F_GETFL) };
    for (int i = 0; i < 4; ++i)
        victim_check(flags_after[i] == flags_before[i], "pipe end %d: status flags %#o, %#o before the dump", i,
                     flags_after[i], flags_before[i]);
    char buffer[16] = "";
    victim_check(victim_read_exactly(up[0], buffer, 10) && memcmp(buffer, "from-child", 10) == 0, "parent read '%s'", buffer);
    victim_check(victim_read_exactly(local[0], buffer, 5) && memcmp(buffer, "hello", 5) == 0, "local pipe gave '%s'", buffer);
    victim_check(read(local[0], buffer, 1) < 0, "the local pipe should be empty and non-blocking");
    victim_check(fcntl(local[0], F_GETFL) & O_NONBLOCK, "O_NONBLOCK lost");
    fcntl(local[1], F_SETFL, O_NONBLOCK);
    victim_check(fcntl(shared_end, F_GETFL) & O_NONBLOCK, "dup'ed pipe end no longer shares its flags");
    victim_check(write(shared_end, "again", 5) == 5 && victim_read_exactly(local[0], buffer, 5) && memcmp(buffer, "again", 5) == 0,
                 "the local pipe no longer works");
    victim_check(fcntl(big[0], F_GETPIPE_SZ) >= (1 << 20), "pipe size %d", fcntl(big[0], F_GETPIPE_SZ));
    static char back[300000];
    victim_check(victim_read_exactly(big[0], back, sizeof(back)) && memcmp(back, payload, sizeof(back)) == 0, "big pipe data changed");

    victim_check(victim_read_exactly(fifo_read, buffer, 9) && memcmp(buffer, "fifo-data", 9) == 0, "FIFO gave '%s'", buffer);
    victim_check(write(fifo_write, "more", 4) == 4 && victim_read_exactly(fifo_read, buffer, 4) && memcmp(buffer, "more", 4) == 0,
                 "the FIFO no longer works");
    struct stat fifo_stat;
    victim_check(stat(fifo_path, &fifo_stat) == 0 && S_ISFIFO(fifo_stat.st_mode), "the FIFO is gone from its path");
    unlink(fifo_path);
    victim_check(victim_read_exactly(gone, buffer, 5) && memcmp(buffer, "ghost", 5) == 0, "unlinked FIFO gave '%s'", buffer);
    struct stat gone_stat;
    victim_check(fstat(gone, &gone_stat) == 0 && S_ISFIFO(gone_stat.st_mode) && gone_stat.st_nlink == 0
                     && (gone_stat.st_mode & 07777) == 0640,
                 "the unlinked FIFO: mode %#o, %lu links", gone_stat.st_mode, (unsigned long)gone_stat.st_nlink);
    victim_check(access(gone_path, F_OK) != 0, "the unlinked FIFO's name is back");

    uint64_t value = 0;
    victim_check(read(semaphore, &value, 8) == 8 && value == 1, "semaphore eventfd gave %lu", (unsigned long)value);
    victim_check(read(counter, &value, 8) == 8 && value == large, "eventfd counter %lu", (unsigned long)value);
    victim_check(read(counter, &value, 8) < 0, "eventfd counter should be empty and non-blocking");
    int status = 0;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    return victim_finish();
}
