/* Benchmark victim: N MiB of resident private anonymous memory filled with a
 * xorshift pseudo-random stream (so neither compression nor zero-page
 * tricks gain anything), then "READY <pid>" on its standard output (the
 * benchmark's log, a regular file), then it sleeps until killed.
 *
 * Usage: cryo-bench-memhog MIB [options]
 *   --reserve GIB     also a GIB GiB PROT_NONE reservation (never touched)
 *   --untouched GIB   also a GIB GiB read-write mapping (MAP_NORESERVE), never touched
 *   --threads N       N - 1 more threads, each sleeping in pause()
 *   --children N      N - 1 child processes, each with 1 MiB of its own memory
 *   --fds N           every process opens /dev/null N times (N open files)
 *
 * It starts a session of its own (setsid), so the benchmark can kill a whole
 * restored tree by its process group. Children are forked after the
 * parent's memory is filled, and share it copy-on-write. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void fill(uint64_t *memory, size_t bytes, uint64_t state)
{
    for (size_t i = 0; i < bytes / sizeof(uint64_t); ++i) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        memory[i] = state;
    }
}

static void *map_or_die(size_t bytes, int prot, int flags)
{
    void *memory = mmap(NULL, bytes, prot, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
    if (memory == MAP_FAILED) {
        perror("cryo-bench-memhog: mmap");
        exit(1);
    }
    return memory;
}

static void open_fds(unsigned long count)
{
    for (unsigned long i = 0; i < count; ++i)
        if (open("/dev/null", O_RDONLY) < 0) {
            perror("cryo-bench-memhog: open /dev/null");
            exit(1);
        }
}

static void *sleeper(void *unused)
{
    (void)unused;
    for (;;)
        pause();
    return NULL;
}

static unsigned long number(const char *text)
{
    char *end = NULL;
    unsigned long value = strtoul(text, &end, 10);
    if (*text == '\0' || *end != '\0') {
        fprintf(stderr, "cryo-bench-memhog: '%s' is not a number\n", text);
        exit(2);
    }
    return value;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: cryo-bench-memhog MIB [--reserve GIB] [--untouched GIB] [--threads N] [--children N] [--fds N]\n");
        return 2;
    }
    unsigned long mib = number(argv[1]);
    unsigned long reserve = 0, untouched = 0, threads = 1, children = 1, fds = 0;
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "cryo-bench-memhog: %s needs a value\n", argv[i]);
            return 2;
        }
        unsigned long value = number(argv[i + 1]);
        if (strcmp(argv[i], "--reserve") == 0)
            reserve = value;
        else if (strcmp(argv[i], "--untouched") == 0)
            untouched = value;
        else if (strcmp(argv[i], "--threads") == 0)
            threads = value;
        else if (strcmp(argv[i], "--children") == 0)
            children = value;
        else if (strcmp(argv[i], "--fds") == 0)
            fds = value;
        else {
            fprintf(stderr, "cryo-bench-memhog: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    /* Only stdin, stdout and stderr: whatever the shell leaked is not ours. */
    close_range(3, ~0u, 0);
    setsid();

    if (reserve)
        map_or_die(reserve << 30, PROT_NONE, MAP_NORESERVE);
    if (untouched)
        map_or_die(untouched << 30, PROT_READ | PROT_WRITE, MAP_NORESERVE);
    if (mib)
        fill(map_or_die(mib << 20, PROT_READ | PROT_WRITE, 0), mib << 20, 88172645463325252ull);
    open_fds(fds);

    for (unsigned long i = 1; i < children; ++i) {
        pid_t child = fork();
        if (child < 0) {
            perror("cryo-bench-memhog: fork");
            return 1;
        }
        if (child == 0) {
            fill(map_or_die(1 << 20, PROT_READ | PROT_WRITE, 0), 1 << 20, 88172645463325252ull + i);
            open_fds(fds);
            for (;;)
                pause();
        }
    }
    for (unsigned long i = 1; i < threads; ++i) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, sleeper, NULL) != 0) {
            fprintf(stderr, "cryo-bench-memhog: pthread_create failed\n");
            return 1;
        }
    }
    printf("READY %d\n", (int)getpid());
    fflush(stdout);
    for (;;)
        pause();
}
