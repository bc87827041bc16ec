/* Benchmark victim for pre-dumps: N MiB of resident private anonymous
 * memory filled with a pseudo-random stream, then "READY <pid>" on its
 * standard output, then it rewrites P percent of its pages every second
 * (a batch every 10 ms, at pseudo-random pages) until killed.
 *
 * Usage: cryo-bench-dirtier MIB PERCENT_PER_SECOND */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

static uint64_t next(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: cryo-bench-dirtier MIB PERCENT_PER_SECOND\n");
        return 2;
    }
    size_t pages = (size_t)atol(argv[1]) * 256;
    double percent = atof(argv[2]);
    uint64_t *memory = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {
        perror("cryo-bench-dirtier: mmap");
        return 1;
    }
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < pages * PAGE / 8; ++i)
        memory[i] = next(&state);
    printf("READY %d\n", getpid());
    fflush(stdout);
    /* 100 batches a second. */
    double per_batch = (double)pages * percent / 100.0 / 100.0;
    double owed = 0;
    struct timespec pause = { 0, 10 * 1000 * 1000 };
    for (;;) {
        owed += per_batch;
        for (; owed >= 1; owed -= 1) {
            size_t page = next(&state) % pages;
            memory[page * PAGE / 8] = next(&state);
        }
        nanosleep(&pause, NULL);
    }
}
