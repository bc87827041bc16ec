/* Benchmark baselines: how long this machine needs to move N bytes between
 * memory and a file without cryo, timed inside the program (start-up and the
 * final munmap are left out, as cryo's own figures leave out the victim's).
 *
 *   cryo-bench-plainio write FILE MIB [direct|cache]
 *       MIB MiB of fresh anonymous memory are filled with a xorshift stream
 *       (untimed), then written to FILE (created, truncated) in 16 MiB
 *       write()s, then fdatasync(); with "direct", FILE is opened O_DIRECT
 *       (as cryo writes its page files); with "cache", no fdatasync (the
 *       bytes only reach the page cache, as with cryo dump --no-sync).
 *       Prints the timed milliseconds.
 *
 *   cryo-bench-plainio read FILE [MODE]
 *       FILE is read into freshly mmap()ed private anonymous memory (so every
 *       page takes its first-touch fault, as in a restored process) with
 *       preadv() calls of at most 1 GiB. Prints the timed milliseconds,
 *       mmap included. MODE (for experiments, not the baseline):
 *         plain     the baseline (default)
 *         populate  MADV_POPULATE_WRITE on the memory first
 *         huge      MADV_HUGEPAGE on the memory first
 *         collapse  one page per 2 MiB touched, then MADV_COLLAPSE
 *       The memory is 2 MiB aligned in every mode.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define HUGE (2ul << 20)

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Fresh memory, 2 MiB aligned (so huge page modes can use every byte). */
static char *fresh(size_t bytes)
{
    char *raw = mmap(NULL, bytes + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        die("mmap");
    char *aligned = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
    if (aligned > raw)
        munmap(raw, (size_t)(aligned - raw));
    munmap(aligned + bytes, (size_t)(raw + bytes + HUGE - aligned - bytes));
    return aligned;
}

static int do_write(const char *path, size_t mib, int direct, int sync)
{
    size_t bytes = mib << 20;
    uint64_t *memory = (uint64_t *)fresh(bytes);
    uint64_t state = 88172645463325252ull;
    for (size_t i = 0; i < bytes / sizeof(uint64_t); ++i) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        memory[i] = state;
    }
    double start = now_ms();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (direct ? O_DIRECT : 0), 0600);
    if (fd < 0)
        die("open");
    const char *p = (const char *)memory;
    for (size_t done = 0; done < bytes;) {
        size_t chunk = bytes - done < (16ul << 20) ? bytes - done : (16ul << 20);
        ssize_t n = write(fd, p + done, chunk);
        if (n <= 0)
            die("write");
        done += (size_t)n;
    }
    if (sync && fdatasync(fd) < 0)
        die("fdatasync");
    close(fd);
    printf("%.0f\n", now_ms() - start);
    return 0;
}

static int do_read(const char *path, const char *mode)
{
    double start = now_ms();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("open");
    struct stat st;
    if (fstat(fd, &st) < 0)
        die("fstat");
    size_t bytes = (size_t)st.st_size;
    char *memory = fresh(bytes);
    if (strcmp(mode, "populate") == 0) {
        if (madvise(memory, bytes, MADV_POPULATE_WRITE) < 0)
            die("MADV_POPULATE_WRITE");
    } else if (strcmp(mode, "huge") == 0) {
        if (madvise(memory, bytes, MADV_HUGEPAGE) < 0)
            die("MADV_HUGEPAGE");
    } else if (strcmp(mode, "collapse") == 0) {
        for (size_t at = 0; at + HUGE <= bytes; at += HUGE)
            memory[at] = 0;
        if (madvise(memory, bytes & ~(HUGE - 1), MADV_COLLAPSE) < 0)
            die("MADV_COLLAPSE");
    } else if (strcmp(mode, "plain") != 0) {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    for (size_t done = 0; done < bytes;) {
        size_t chunk = bytes - done < (1ul << 30) ? bytes - done : (1ul << 30);
        struct iovec iov = { memory + done, chunk };
        ssize_t n = preadv(fd, &iov, 1, (off_t)done);
        if (n <= 0)
            die("preadv");
        done += (size_t)n;
    }
    printf("%.0f\n", now_ms() - start);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "write") == 0)
        return do_write(argv[2], strtoul(argv[3], NULL, 10), argc > 4 && strcmp(argv[4], "direct") == 0,
                        !(argc > 4 && strcmp(argv[4], "cache") == 0));
    if (argc >= 3 && strcmp(argv[1], "read") == 0)
        return do_read(argv[2], argc > 3 ? argv[3] : "plain");
    fprintf(stderr, "usage: cryo-bench-plainio write FILE MIB [direct|cache] | read FILE [plain|populate|huge|collapse]\n");
    return 2;
}
