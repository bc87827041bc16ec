/* Benchmark victim: N MiB of resident private anonymous memory filled with a
 * xorshift pseudo-random stream (so neither compression nor zero-page
 * tricks gain anything), then "READY <pid>" on its standard output (the
 * benchmark's log, a regular file), then it sleeps until killed.
 * Usage: cryo-bench-memhog MIB */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    char *end = NULL;
    unsigned long mib = argc == 2 ? strtoul(argv[1], &end, 10) : 0;
    if (mib == 0 || *end != '\0') {
        fprintf(stderr, "usage: cryo-bench-memhog MIB\n");
        return 2;
    }
    /* Only stdin, stdout and stderr: whatever the shell leaked is not ours. */
    close_range(3, ~0u, 0);

    size_t bytes = (size_t)mib << 20;
    uint64_t *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
        perror("cryo-bench-memhog: mmap");
        return 1;
    }
    uint64_t state = 88172645463325252ull;
    for (size_t i = 0; i < bytes / sizeof(uint64_t); ++i) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        memory[i] = state;
    }
    printf("READY %d\n", (int)getpid());
    fflush(stdout);
    for (;;)
        pause();
}
