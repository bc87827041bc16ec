/* Copy-on-write sharing between a parent and its child after fork: 64 MiB
 * filled before fork stay shared (each process's proportional share, Pss,
 * stays about half its Rss after restore), while each side's own changes
 * after fork stay its own: the parent rewrote the first MiB, the child the
 * last; pages only the parent touched after fork read as zeros in the child
 * and the other way round. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

#define MIB (1024 * 1024)
#define REGION (64 * MIB)
#define PAGE 4096

static unsigned char *region, *touched;

static int filled_with(const unsigned char *memory, size_t size, unsigned char value)
{
    for (size_t i = 0; i < size; i += 512)
        if (memory[i] != value)
            return 0;
    return 1;
}

/* Rss and Pss (kB) of the mapping holding `address`. */
static void sizes_of(void *address, long *rss, long *pss)
{
    FILE *smaps = fopen("/proc/self/smaps", "r");
    char line[512];
    int inside = 0;
    *rss = *pss = -1;
    while (smaps && fgets(line, sizeof(line), smaps)) {
        uintptr_t start, end;
        if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = start <= (uintptr_t)address && (uintptr_t)address < end;
            continue;
        }
        if (inside && strncmp(line, "Rss:", 4) == 0)
            sscanf(line + 4, "%ld", rss);
        if (inside && strncmp(line, "Pss:", 4) == 0)
            sscanf(line + 4, "%ld", pss);
    }
    if (smaps)
        fclose(smaps);
}

static void check_common(const char *who, int parent)
{
    victim_check(filled_with(region + MIB, REGION - 2 * MIB, 'A'), "%s: the shared part changed", who);
    victim_check(filled_with(region, MIB, parent ? 'B' : 'A'), "%s: first MiB wrong", who);
    victim_check(filled_with(region + REGION - MIB, MIB, parent ? 'A' : 'C'), "%s: last MiB wrong", who);
    victim_check(filled_with(touched, 8 * PAGE, parent ? 'P' : 0), "%s: pages the parent touched after fork", who);
    victim_check(filled_with(touched + 8 * PAGE, 8 * PAGE, parent ? 0 : 'D'), "%s: pages the child touched after fork", who);
    long rss, pss;
    sizes_of(region, &rss, &pss);
    victim_check(rss > 0 && pss * 10 < rss * 7, "%s: not shared any more: Rss %ld kB, Pss %ld kB", who, rss, pss);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    region = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    touched = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(region, 'A', REGION);
    int ready[2];
    if (pipe(ready))
        return 2;
    pid_t child = fork();
    if (child == 0) {
        memset(region + REGION - MIB, 'C', MIB);
        memset(touched + 8 * PAGE, 'D', 8 * PAGE);
        if (write(ready[1], "x", 1) != 1)
            _exit(2);
        victim_wait();
        check_common("child", 0);
        _exit(victim_failures() ? 1 : 0);
    }
    memset(region, 'B', MIB);
    memset(touched, 'P', 8 * PAGE);
    char byte;
    if (read(ready[0], &byte, 1) != 1)
        return 2;
    victim_ready();
    victim_wait();
    /* Check before the child may exit (its exit ends the sharing). */
    check_common("parent", 1);
    kill(child, SIGUSR1);
    int status = 0;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    return victim_finish();
}
