/* The demo program: prints "tick N" ten times a second to its standard
 * output (a log file), one write(2) per tick. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    /* Whatever the starting shell leaked (pipes of a terminal multiplexer,
     * an editor's sockets) is not ours: keep only stdin, stdout, stderr. */
    for (int fd = 3; fd < 1024; ++fd)
        close(fd);
    for (unsigned long tick = 1;; ++tick) {
        char line[64];
        int length = snprintf(line, sizeof(line), "tick %lu pid %d\n", tick, getpid());
        if (write(1, line, (size_t)length) != length)
            return 1;
        usleep(100000);
    }
}
