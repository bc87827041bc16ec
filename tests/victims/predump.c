/* Memory that keeps changing while pre-dumps run (iterative pre-dump,
 * incremental dump, restore of a chain).
 *
 * A 64 MiB region of 16384 pages is written all the time: every
 * millisecond a few pages, in a scrambled order, get a new generation.
 * Each page holds its index and generation in its first two words and a
 * pattern derived from both in the rest; a table (elsewhere in memory)
 * keeps every page's generation. The table is updated after the page, and
 * a restored process resumes exactly where it was frozen, so after a
 * restore every page must agree with the table: a page taken from a stale
 * pre-dump, or torn by a copy made while it was written, fails the check.
 *
 * Modes (first argument):
 *   (none)   just the writer.
 *   changes  on SIGUSR2 (sent by the test between the last pre-dump and
 *            the dump) it changes its layout: munmap of a region and a new
 *            one mapped at the same address, MADV_DONTNEED of pre-dumped
 *            pages (some written again), mremap of a region elsewhere, an
 *            mprotect that splits a region, a larger heap, and a child
 *            forked then, which changes pages of its copy of the region
 *            and checks them itself after the restore. Then "CHANGED".
 *   uffd     holds a userfaultfd of its own with a registered region: cryo
 *            must not track it. On SIGUSR2 it closes it ("CHANGED"),
 *            so that it can be dumped.
 *   marks    a mapping of MARK_PAGES pages of its own holds "CRYO-MARK-BEFORE"
 *            in page 3 from the start and, once SIGUSR2 came,
 *            "CRYO-MARK-AFTER!" in page 9 (both at offset 96); it says
 *            "MARKS <address of page 3> <address of page 9>" before
 *            READY, for the inspection tests of a chain (cryo mem, diff).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "victim.h"

#define PAGE 4096
#define PAGES 16384
#define SIDE 64   /* pages of each side region */
#define MARK_PAGES 16
#define MARK_OFFSET 96
/* The marks with bit 5 flipped ("cryo\rmark\rbefore" is "CRYO-MARK-BEFORE"),
 * flipped back at run time: the pattern a test searches for must be nowhere
 * else in memory, and the page of the executable holding constants is
 * stored too (the relocations write it). */
static const char mark_before[17] = "cryo\rmark\rbefore";
static const char mark_after[17] = "cryo\rmark\rafter\x01";
static volatile char mark_flip = 0x20;   /* volatile: not folded into the constants */

static void put_mark(char *at, const char *mark)
{
    for (int i = 0; i < 16; ++i)
        at[i] = (char)(mark[i] ^ mark_flip);
}

static int has_mark(const char *at, const char *mark)
{
    for (int i = 0; i < 16; ++i)
        if (at[i] != (char)(mark[i] ^ mark_flip))
            return 0;
    return 1;
}

static char *region;
static uint32_t *generations;
static volatile sig_atomic_t change_requested;

static uint64_t mix(uint64_t index, uint64_t generation)
{
    return (index * 0x9e3779b97f4a7c15ull) ^ (generation * 0xbf58476d1ce4e5b9ull) ^ 0x94d049bb133111ebull;
}

static void write_page(char *page, uint64_t index, uint64_t generation)
{
    uint64_t *words = (uint64_t *)page;
    words[0] = index;
    words[1] = generation;
    for (int i = 2; i < PAGE / 8; ++i)
        words[i] = mix(index, generation) + (uint64_t)i;
}

static int page_ok(const char *page, uint64_t index, uint64_t generation)
{
    const uint64_t *words = (const uint64_t *)page;
    if (words[0] != index || words[1] != generation)
        return 0;
    for (int i = 2; i < PAGE / 8; ++i)
        if (words[i] != mix(index, generation) + (uint64_t)i)
            return 0;
    return 1;
}

static int check_region(const char *memory, const uint32_t *table, int pages, const char *what)
{
    int bad = 0;
    for (int i = 0; i < pages; ++i) {
        if (page_ok(memory + (size_t)i * PAGE, (uint64_t)i, table[i]))
            continue;
        if (bad++ < 5) {
            const uint64_t *words = (const uint64_t *)(memory + (size_t)i * PAGE);
            victim_check(0, "%s page %d: index %llu generation %llu, expected generation %u", what, i,
                         (unsigned long long)words[0], (unsigned long long)words[1], table[i]);
        }
    }
    victim_check(bad == 0, "%s: %d of %d pages wrong", what, bad, pages);
    return bad == 0;
}

static void on_usr2(int signal)
{
    (void)signal;
    change_requested = 1;
}

/* Writes `count` pages in a scrambled order (a step coprime with PAGES). */
static void write_some(uint64_t *cursor, int count)
{
    for (int i = 0; i < count; ++i) {
        uint64_t index = (*cursor * 7919) % PAGES;
        *cursor += 1;
        uint32_t next = generations[index] + 1;
        write_page(region + index * PAGE, index, next);
        generations[index] = next;
    }
}

static char *map_side(int seed)
{
    char *memory = mmap(NULL, SIDE * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < SIDE; ++i)
        write_page(memory + (size_t)i * PAGE, (uint64_t)i, (uint64_t)seed);
    return memory;
}

static int side_ok(const char *memory, int first, int count, int seed)
{
    for (int i = first; i < first + count; ++i)
        if (!page_ok(memory + (size_t)i * PAGE, (uint64_t)i, (uint64_t)seed))
            return 0;
    return 1;
}

static int all_zero(const char *memory, size_t bytes) { return victim_all_zero(memory, bytes); }

struct Changes {
    char *replaced;      /* munmapped, then mapped anew at the same address */
    char *dropped;       /* MADV_DONTNEED: first half dropped, pages 40.. written again */
    char *moved;         /* mremapped elsewhere */
    char *split;         /* middle made read-only */
    char *heap;          /* a new malloc block */
    pid_t child;
};

static void make_changes(struct Changes *c)
{
    munmap(c->replaced, SIDE * PAGE);
    char *again = mmap(c->replaced, SIDE * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    victim_check(again == c->replaced, "mmap at the old address");
    for (int i = 0; i < SIDE; i += 2)
        write_page(again + (size_t)i * PAGE, (uint64_t)i, 1001);
    madvise(c->dropped, SIDE / 2 * PAGE, MADV_DONTNEED);
    for (int i = 40; i < 48; ++i)
        write_page(c->dropped + (size_t)i * PAGE, (uint64_t)i, 1002);
    madvise(c->dropped + 48 * PAGE, 8 * PAGE, MADV_DONTNEED);
    char *target = mmap(NULL, SIDE * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    c->moved = mremap(c->moved, SIDE * PAGE, SIDE * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, target);
    mprotect(c->split + 16 * PAGE, 16 * PAGE, PROT_READ);
    c->heap = malloc(4 << 20);
    for (int i = 0; i < (4 << 20) / PAGE; ++i)
        write_page(c->heap + (size_t)i * PAGE, (uint64_t)i, 1003);
    c->child = fork();
    if (c->child == 0) {
        /* The child changes its copy of the region; its parent goes on. */
        for (int i = 0; i < PAGES; i += 3) {
            generations[i] += 100;
            write_page(region + (size_t)i * PAGE, (uint64_t)i, generations[i]);
        }
        victim_wait();
        check_region(region, generations, PAGES, "child's region");
        _exit(victim_failures() ? 1 : 0);
    }
}

static void check_changes(const struct Changes *c)
{
    for (int i = 0; i < SIDE; ++i) {
        const char *page = c->replaced + (size_t)i * PAGE;
        victim_check(i % 2 ? all_zero(page, PAGE) : page_ok(page, (uint64_t)i, 1001), "replaced region page %d", i);
    }
    victim_check(all_zero(c->dropped, 32 * PAGE), "dropped pages read as zeros");
    victim_check(side_ok(c->dropped, 32, 8, 12), "pages kept after MADV_DONTNEED");
    victim_check(side_ok(c->dropped, 40, 8, 1002), "pages written again after MADV_DONTNEED");
    victim_check(all_zero(c->dropped + 48 * PAGE, 8 * PAGE), "second dropped stretch reads as zeros");
    victim_check(side_ok(c->dropped, 56, 8, 12), "last pages of the dropped region");
    victim_check(side_ok(c->moved, 0, SIDE, 13), "mremapped region");
    victim_check(side_ok(c->split, 0, SIDE, 14), "split region");
    victim_check(side_ok(c->heap, 0, (4 << 20) / PAGE, 1003), "new heap block");
    int status = 0;
    if (c->child > 1)
        kill(c->child, SIGUSR1);
    victim_check(waitpid(c->child, &status, 0) == c->child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "the child forked between pre-dump and dump passed (status %#x)", status);
}

static int open_own_userfaultfd(char *memory)
{
    int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    victim_check(uffd >= 0, "userfaultfd: %s", strerror(errno));
    struct uffdio_api api = { .api = UFFD_API };
    victim_check(ioctl(uffd, UFFDIO_API, &api) == 0, "UFFDIO_API: %s", strerror(errno));
    struct uffdio_register reg = { .range = { (uint64_t)(uintptr_t)memory, SIDE * PAGE }, .mode = UFFDIO_REGISTER_MODE_MISSING };
    victim_check(ioctl(uffd, UFFDIO_REGISTER, &reg) == 0, "UFFDIO_REGISTER: %s", strerror(errno));
    return uffd;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    const char *mode = argc > 2 ? argv[2] : "";
    region = mmap(NULL, (size_t)PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    generations = calloc(PAGES, sizeof(*generations));
    for (int i = 0; i < PAGES; ++i)
        write_page(region + (size_t)i * PAGE, (uint64_t)i, 0);

    struct Changes changes = { 0 };
    int uffd = -1;
    if (strcmp(mode, "changes") == 0) {
        changes.replaced = map_side(11);
        changes.dropped = map_side(12);
        changes.moved = map_side(13);
        changes.split = map_side(14);
    }
    char *marks = NULL;
    if (strcmp(mode, "marks") == 0) {
        /* Between two PROT_NONE pages: a mapping of its own, never merged
         * with the region next to it. */
        char *guarded = mmap(NULL, (MARK_PAGES + 2) * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        marks = guarded + PAGE;
        victim_check(mprotect(marks, MARK_PAGES * PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect marks");
        put_mark(marks + 3 * PAGE + MARK_OFFSET, mark_before);
        victim_say("MARKS %p %p", (void *)(marks + 3 * PAGE), (void *)(marks + 9 * PAGE));
    }
    char *own = NULL;
    if (strcmp(mode, "uffd") == 0) {
        own = map_side(15);
        uffd = open_own_userfaultfd(own);
    }
    signal(SIGUSR2, on_usr2);
    victim_ready();

    uint64_t cursor = 0;
    struct timespec pause = { 0, 1000000 };
    while (!victim_released()) {
        write_some(&cursor, 4);
        if (change_requested) {
            change_requested = 0;
            if (changes.replaced)
                make_changes(&changes);
            if (uffd >= 0) {
                close(uffd);
                uffd = -1;
            }
            if (marks)
                put_mark(marks + 9 * PAGE + MARK_OFFSET, mark_after);
            victim_say("CHANGED");
        }
        nanosleep(&pause, NULL);
    }
    victim_say("verifying after %llu page writes", (unsigned long long)cursor);
    check_region(region, generations, PAGES, "region");
    if (changes.replaced)
        check_changes(&changes);
    if (own)
        victim_check(side_ok(own, 0, SIDE, 15), "region registered with the victim's own userfaultfd");
    if (marks)
        for (int i = 0; i < MARK_PAGES; ++i) {
            const char *page = marks + (size_t)i * PAGE;
            const char *mark = i == 3 ? mark_before : i == 9 ? mark_after : NULL;
            int ok = mark ? has_mark(page + MARK_OFFSET, mark) && all_zero(page, MARK_OFFSET)
                                && all_zero(page + MARK_OFFSET + 16, PAGE - MARK_OFFSET - 16)
                          : all_zero(page, PAGE);
            victim_check(ok, "marks region page %d", i);
        }
    return victim_finish();
}
