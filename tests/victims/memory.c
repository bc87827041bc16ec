/* Memory of every kind: heap (small and large blocks), stack, .data, .bss,
 * private anonymous, read-only and PROT_NONE regions (filled before their
 * protection was lowered), a private file mapping with one page modified in
 * memory (the file itself unchanged), a 1 GiB reservation with a few pages
 * touched, MADV_DONTFORK, MADV_SEQUENTIAL and MADV_RANDOM regions (zdtm
 * maps02), 64 MiB of patterned memory, and shared anonymous memory with a
 * hole, a second mapping of part of it and half of another moved by mremap
 * (zdtm maps01). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "victim.h"

#define PAGE 4096
static uint64_t data_array[512] = { 1, 2, 3, 4, 5 };
static uint64_t bss_array[4096];

static uint64_t pattern(uint64_t seed, size_t index) { return (seed * 0x9e3779b97f4a7c15ull) ^ (index * 0xbf58476d1ce4e5b9ull); }

static void fill(void *memory, size_t bytes, uint64_t seed)
{
    uint64_t *words = memory;
    for (size_t i = 0; i < bytes / 8; ++i)
        words[i] = pattern(seed, i);
}

static int intact(const void *memory, size_t bytes, uint64_t seed)
{
    const uint64_t *words = memory;
    for (size_t i = 0; i < bytes / 8; ++i)
        if (words[i] != pattern(seed, i))
            return 0;
    return 1;
}

/* The permissions and VmFlags of the mapping that contains `address`. */
static int mapping_of(void *address, char perms[5], char *flags, size_t flags_size)
{
    FILE *smaps = fopen("/proc/self/smaps", "r");
    char line[512];
    int found = 0;
    uintptr_t target = (uintptr_t)address;
    while (smaps && fgets(line, sizeof(line), smaps)) {
        uintptr_t start, end;
        char p[5];
        if (sscanf(line, "%lx-%lx %4s", &start, &end, p) == 3 && strchr(line, '-') < strchr(line, ' ')) {
            found = start <= target && target < end;
            if (found)
                memcpy(perms, p, 5);
            continue;
        }
        if (found && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(flags, flags_size, "%s", line + 8);
            break;
        }
    }
    if (smaps)
        fclose(smaps);
    return found;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t pid = getpid();

    char *small = malloc(100);
    char *large = malloc(8 << 20);
    fill(small, 96, 1);
    fill(large, 8 << 20, 2);
    volatile uint64_t stack_array[1024];
    for (int i = 0; i < 1024; ++i)
        stack_array[i] = pattern(3, (size_t)i);
    fill(data_array + 8, sizeof(data_array) - 64, 4);
    fill(bss_array, sizeof(bss_array), 5);

    char *anonymous = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fill(anonymous, 16 * PAGE, 6);
    char *read_only = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fill(read_only, 4 * PAGE, 7);
    mprotect(read_only, 4 * PAGE, PROT_READ);
    char *no_access = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fill(no_access, 4 * PAGE, 8);
    mprotect(no_access, 4 * PAGE, PROT_NONE);

    /* A private file mapping: page 1 modified in memory only. */
    char path[4200];
    snprintf(path, sizeof(path), "%s.mapped", argv[1]);
    int file = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    char page[PAGE];
    for (int i = 0; i < 4; ++i) {
        memset(page, 'a' + i, PAGE);
        if (write(file, page, PAGE) != PAGE)
            return 2;
    }
    char *mapped = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, file, 0);
    close(file);
    memset(mapped + PAGE, 'Z', PAGE);

    size_t reservation_size = 1ull << 30;
    char *reservation = mmap(NULL, reservation_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    reservation[0] = 'x';
    reservation[reservation_size / 2] = 'y';
    reservation[reservation_size - 1] = 'z';

    char *dont_fork = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fill(dont_fork, 4 * PAGE, 9);
    madvise(dont_fork, 4 * PAGE, MADV_DONTFORK);
    char *sequential = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *random_read = mmap(NULL, 3 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    madvise(sequential, 2 * PAGE, MADV_SEQUENTIAL);
    madvise(random_read, 3 * PAGE, MADV_RANDOM);

    size_t big_size = 64 << 20;
    char *big = mmap(NULL, big_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fill(big, big_size, 10);

    /* Shared anonymous memory with a hole, seen a second time through a
     * mapping made from /proc/self/map_files over a part the first also
     * shows (only with CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), and half
     * of another moved elsewhere by mremap. */
    char *shared = mmap(NULL, 32 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < 32; ++i)
        fill(shared + i * PAGE, PAGE, 100 + (uint64_t)i);
    char shared_path[128];
    snprintf(shared_path, sizeof(shared_path), "/proc/self/map_files/%lx-%lx", (unsigned long)shared,
             (unsigned long)(shared + 32 * PAGE));
    int shared_fd = open(shared_path, O_RDWR | O_CLOEXEC);
    char *window = shared_fd < 0 ? NULL : mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, shared_fd, 20 * PAGE);
    if (window == MAP_FAILED)
        return 2;
    if (shared_fd >= 0)
        close(shared_fd);
    munmap(shared + 4 * PAGE, PAGE);
    char *moved_from = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    fill(moved_from, 8 * PAGE, 12);
    char *moved_to = mmap(NULL, 4 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *moved = mremap(moved_from + 4 * PAGE, 4 * PAGE, 4 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, moved_to);
    if (moved == MAP_FAILED)
        return 2;

    victim_ready();
    victim_wait();

    victim_check(getpid() == pid, "pid %d, was %d", getpid(), pid);
    victim_check(intact(small, 96, 1), "small heap block changed");
    victim_check(intact(large, 8 << 20, 2), "large heap block changed");
    for (int i = 0; i < 1024; ++i)
        if (stack_array[i] != pattern(3, (size_t)i)) {
            victim_check(0, "stack word %d changed", i);
            break;
        }
    victim_check(data_array[0] == 1 && data_array[4] == 5 && intact(data_array + 8, sizeof(data_array) - 64, 4), ".data changed");
    victim_check(intact(bss_array, sizeof(bss_array), 5), ".bss changed");
    victim_check(intact(anonymous, 16 * PAGE, 6), "anonymous mapping changed");

    char perms[5] = "", flags[600] = "";
    victim_check(mapping_of(read_only, perms, flags, sizeof(flags)) && strcmp(perms, "r--p") == 0, "read-only mapping is %s", perms);
    victim_check(intact(read_only, 4 * PAGE, 7), "read-only mapping changed");
    victim_check(mapping_of(no_access, perms, flags, sizeof(flags)) && strcmp(perms, "---p") == 0, "PROT_NONE mapping is %s", perms);
    mprotect(no_access, 4 * PAGE, PROT_READ);
    victim_check(intact(no_access, 4 * PAGE, 8), "PROT_NONE mapping changed");

    victim_check(mapped[0] == 'a' && mapped[PAGE] == 'Z' && mapped[2 * PAGE + 5] == 'c' && mapped[4 * PAGE - 1] == 'd',
                 "private file mapping: %c %c %c %c", mapped[0], mapped[PAGE], mapped[2 * PAGE + 5], mapped[4 * PAGE - 1]);
    file = open(path, O_RDONLY | O_CLOEXEC);
    victim_check(pread(file, page, PAGE, PAGE) == PAGE && page[0] == 'b', "the mapped file itself changed");
    close(file);
    unlink(path);

    victim_check(reservation[0] == 'x' && reservation[reservation_size / 2] == 'y' && reservation[reservation_size - 1] == 'z'
                     && reservation[4096] == 0,
                 "reservation pages changed");
    victim_check(intact(dont_fork, 4 * PAGE, 9), "MADV_DONTFORK region changed");
    victim_check(mapping_of(dont_fork, perms, flags, sizeof(flags)) && strstr(flags, " dc") != NULL, "MADV_DONTFORK lost: %s", flags);
    victim_check(mapping_of(sequential, perms, flags, sizeof(flags)) && strstr(flags, " sr") != NULL, "MADV_SEQUENTIAL lost: %s", flags);
    victim_check(mapping_of(random_read, perms, flags, sizeof(flags)) && strstr(flags, " rr") != NULL, "MADV_RANDOM lost: %s", flags);
    victim_check(intact(big, big_size, 10), "64 MiB region changed");

    for (int i = 0; i < 32; ++i)
        if (i != 4 && !intact(shared + i * PAGE, PAGE, 100 + (uint64_t)i)) {
            victim_check(0, "shared anonymous page %d changed", i);
            break;
        }
    victim_check(!mapping_of(shared + 4 * PAGE, perms, flags, sizeof(flags)), "the hole in the shared mapping is mapped");
    if (window) {
        victim_check(intact(window, PAGE, 120) && intact(window + PAGE, PAGE, 121), "second mapping of shared memory changed");
        window[8] = 'S';
        shared[21 * PAGE + 8] = 'T';
        victim_check(shared[20 * PAGE + 8] == 'S' && window[PAGE + 8] == 'T', "the two mappings of shared memory no longer share it");
    }
    victim_check(intact(moved_from, 4 * PAGE, 12), "shared memory left by mremap changed");
    const uint64_t *moved_words = (const uint64_t *)moved;
    for (size_t i = 0; i < 4 * PAGE / 8; ++i)
        if (moved_words[i] != pattern(12, 4 * PAGE / 8 + i)) {
            victim_check(0, "shared memory moved by mremap changed at word %zu", i);
            break;
        }

    /* The heap must still grow (brk restored) and new mappings work. */
    char *more = malloc(32 << 20);
    victim_check(more != NULL, "malloc after restore failed");
    if (more)
        memset(more, 1, 32 << 20);
    void *grown = sbrk(1 << 20);
    victim_check(grown != (void *)-1, "sbrk after restore failed");
    return victim_finish();
}
