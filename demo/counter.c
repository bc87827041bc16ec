/* The demo program: prints "tick N pid P" ten times a second to its standard
 * output, which must be a regular file (the demo's log). Each tick is one
 * write(2) through that descriptor, opened with O_APPEND, so the log stays
 * whole lines whatever happens between two ticks. After a restore the loop
 * simply carries on: the next line says tick N+1, with the same pid. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void)
{
    /* Whatever the starting shell leaked (pipes of a terminal multiplexer,
     * an editor's sockets) is not ours: keep only stdin, stdout, stderr. */
    close_range(3, ~0u, 0);
    /* Its own session: the counter depends on no terminal and no shell. */
    setsid();

    struct stat log;
    if (fstat(STDOUT_FILENO, &log) < 0 || !S_ISREG(log.st_mode)) {
        fprintf(stderr, "cryo-demo-counter: standard output must be a regular file\n");
        return 2;
    }
    int flags = fcntl(STDOUT_FILENO, F_GETFL);
    if (flags < 0 || fcntl(STDOUT_FILENO, F_SETFL, flags | O_APPEND) < 0)
        return 2;

    for (unsigned long tick = 1;; ++tick) {
        char line[64];
        int length = snprintf(line, sizeof(line), "tick %lu pid %d\n", tick, (int)getpid());
        if (write(STDOUT_FILENO, line, (size_t)length) != length)
            return 1;
        usleep(100000);
    }
}
