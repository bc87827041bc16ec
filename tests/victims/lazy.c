/* Memory for lazy restore (cryo restore --lazy-pages).
 *
 * `lazy LOG MIB [MODE]` maps MIB MiB of private anonymous memory and writes
 * a pattern into four pages of every five (each 8-byte word a mix of its
 * index); the fifth page is never touched and must read as zeros. After
 * the restore it first says how much of the region was resident when it
 * woke ("RESIDENT <KiB>": small for a lazy restore), then checks the
 * region, page by page in a scrambled order, according to MODE:
 *
 *   random   (default) the main thread checks every page.
 *   threads  four threads check every page at once, each in its own order.
 *   changes  right away it forks a child that checks its own copy, then
 *            munmaps a range and maps fresh memory there (zeros), moves a
 *            range elsewhere with mremap (the pattern must follow), drops a
 *            range with MADV_DONTNEED (zeros), and checks everything. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

#define PAGE 4096
#define WORDS (PAGE / 8)
#define THREADS 4

static char *region;
static size_t pages;

static uint64_t word_at(uint64_t index)
{
    uint64_t x = index * 0x9e3779b97f4a7c15ull + 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x * 0xbf58476d1ce4e5b9ull;
}

static int written(size_t page) { return page % 5 != 3; }

static void write_page(char *memory, size_t page)
{
    uint64_t *words = (uint64_t *)memory;
    for (size_t i = 0; i < WORDS; ++i)
        words[i] = word_at(page * WORDS + i);
}

/* Whether `memory` holds what page `page` of the region should. */
static int page_ok(const char *memory, size_t page)
{
    const uint64_t *words = (const uint64_t *)memory;
    if (!written(page))
        return victim_all_zero(memory, PAGE);
    for (size_t i = 0; i < WORDS; ++i)
        if (words[i] != word_at(page * WORDS + i))
            return 0;
    return 1;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Visits every page of [0, pages) once in an order given by `seed`: a
 * full-period step through the indexes. */
static size_t scrambled(size_t step, uint64_t seed)
{
    uint64_t stride = (seed * 2654435761u) % pages;
    while (gcd(stride, pages) != 1)
        stride = (stride + 1) % pages;
    return (size_t)((step * stride + seed) % pages);
}

/* Pages of the region that `changes` altered, skipped by the full check. */
static size_t skip_from[3], skip_to[3];
static int skips;

static int skipped(size_t page)
{
    for (int i = 0; i < skips; ++i)
        if (page >= skip_from[i] && page < skip_to[i])
            return 1;
    return 0;
}

static int check_all(uint64_t seed)
{
    int bad = 0;
    for (size_t step = 0; step < pages; ++step) {
        size_t page = scrambled(step, seed);
        if (!skipped(page) && !page_ok(region + page * PAGE, page) && bad++ < 5)
            victim_check(0, "page %zu (seed %llu) holds the wrong data", page, (unsigned long long)seed);
    }
    return bad;
}

static void *checker(void *seed) { return (void *)(intptr_t)check_all((uint64_t)(uintptr_t)seed); }

static long resident_kib(void)
{
    unsigned char *vector = malloc(pages);
    long resident = 0;
    if (vector && mincore(region, pages * PAGE, vector) == 0)
        for (size_t i = 0; i < pages; ++i)
            resident += vector[i] & 1;
    free(vector);
    return resident * (PAGE / 1024);
}

static void changes(void)
{
    pid_t child = fork();
    victim_check(child >= 0, "fork");
    if (child == 0)
        _exit(check_all(7) ? 1 : 0);

    /* munmap + fresh memory at the same place: zeros, not the old pages. */
    size_t unmapped = pages / 4;
    char *at = region + unmapped * PAGE;
    victim_check(munmap(at, 16 * PAGE) == 0, "munmap");
    victim_check(mmap(at, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == at,
                 "mmap over the hole");
    victim_check(victim_all_zero(at, 16 * PAGE), "fresh memory after munmap is not zero");
    skip_from[skips] = unmapped, skip_to[skips++] = unmapped + 16;

    /* mremap elsewhere: the pages move with their content. */
    size_t moved = pages / 2;
    char *target = mmap(NULL, 64 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *landed = mremap(region + moved * PAGE, 64 * PAGE, 64 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, target);
    victim_check(landed == target, "mremap");
    for (size_t i = 0; landed == target && i < 64; ++i)
        victim_check(page_ok(target + i * PAGE, moved + i), "page %zu moved by mremap holds the wrong data", moved + i);
    skip_from[skips] = moved, skip_to[skips++] = moved + 64;

    /* MADV_DONTNEED: the range reads as zeros, never as the image's pages. */
    size_t dropped = pages * 3 / 4;
    victim_check(madvise(region + dropped * PAGE, 64 * PAGE, MADV_DONTNEED) == 0, "madvise");
    victim_check(victim_all_zero(region + dropped * PAGE, 64 * PAGE), "pages after MADV_DONTNEED are not zero");
    skip_from[skips] = dropped, skip_to[skips++] = dropped + 64;

    check_all(3);
    int status = 0;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "the child forked after the restore found wrong pages");
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 256;
    const char *mode = argc > 3 ? argv[3] : "random";
    pages = mib * 256;
    region = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) {
        victim_check(0, "mmap %zu MiB", mib);
        return victim_finish();
    }
    for (size_t page = 0; page < pages; ++page)
        if (written(page))
            write_page(region + page * PAGE, page);
    victim_ready();
    victim_wait();
    victim_say("RESIDENT %ld of %zu KiB", resident_kib(), pages * 4);

    if (strcmp(mode, "threads") == 0) {
        pthread_t threads[THREADS];
        for (uintptr_t i = 0; i < THREADS; ++i)
            victim_check(pthread_create(&threads[i], NULL, checker, (void *)(i * 1000 + 11)) == 0, "pthread_create");
        for (int i = 0; i < THREADS; ++i) {
            void *bad = NULL;
            pthread_join(threads[i], &bad);
            victim_check(bad == NULL, "thread %d found wrong pages", i);
        }
    } else if (strcmp(mode, "changes") == 0) {
        changes();
    } else {
        check_all(12345);
    }
    return victim_finish();
}
