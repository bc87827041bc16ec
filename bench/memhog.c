/* Benchmark victim: N MiB of resident anonymous memory filled with a
 * pseudo-random pattern (so compression or zero-page tricks gain nothing),
 * then "READY" on stdout, then it sleeps until killed.
 * Usage: cryo-bench-memhog MIB */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    for (int fd = 3; fd < 1024; ++fd)
        close(fd);
    size_t bytes = (size_t)atol(argv[1]) << 20;
    uint64_t *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED)
        return 1;
    uint64_t state = 88172645463325252ull;
    for (size_t i = 0; i < bytes / 8; ++i) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        memory[i] = state;
    }
    printf("READY %d\n", getpid());
    fflush(stdout);
    for (;;)
        pause();
}
