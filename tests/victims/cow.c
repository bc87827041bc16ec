/* Copy-on-write sharing between a parent and its child after fork: 64 MiB
 * filled before fork stay shared (each process's proportional share, Pss,
 * stays about half its Rss after restore), while each side's own changes
 * after fork stay its own: the parent rewrote the first MiB, the child the
 * last; pages only the parent touched after fork read as zeros in the child
 * and the other way round. The same with a private mapping of a file
 * (zdtm cow01): pages written before fork stay shared (Shared_Dirty in
 * smaps), each side's later writes stay its own, and pages never written
 * still read the file. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

#define MIB (1024 * 1024)
#define REGION (64 * MIB)
#define PAGE 4096

#define FILE_SIZE (2 * MIB)
#define OWN (64 * 1024)

static unsigned char *region, *touched, *mapped_file;

static int filled_with(const unsigned char *memory, size_t size, unsigned char value)
{
    for (size_t i = 0; i < size; i += 512)
        if (memory[i] != value)
            return 0;
    return 1;
}

/* The smaps field `name` (kB) of the mapping holding `address`, -1 if
 * missing. */
static long smaps_field(void *address, const char *name)
{
    FILE *smaps = fopen("/proc/self/smaps", "r");
    char line[512];
    int inside = 0;
    long value = -1;
    size_t length = strlen(name);
    while (smaps && fgets(line, sizeof(line), smaps)) {
        uintptr_t start, end;
        if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = start <= (uintptr_t)address && (uintptr_t)address < end;
            continue;
        }
        if (inside && strncmp(line, name, length) == 0 && line[length] == ':')
            sscanf(line + length + 1, "%ld", &value);
    }
    if (smaps)
        fclose(smaps);
    return value;
}

/* Rss and Pss (kB) of the mapping holding `address`. */
static void sizes_of(void *address, long *rss, long *pss)
{
    *rss = smaps_field(address, "Rss");
    *pss = smaps_field(address, "Pss");
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

    /* The private file mapping: the parent rewrote the first OWN bytes
     * after fork, the child the last OWN bytes of the first MiB. */
    victim_check(filled_with(mapped_file, OWN, parent ? 'I' : 'G'), "%s: file mapping: first pages wrong", who);
    victim_check(filled_with(mapped_file + OWN, MIB - 2 * OWN, 'G'), "%s: file mapping: written before fork", who);
    victim_check(filled_with(mapped_file + MIB - OWN, OWN, parent ? 'G' : 'H'), "%s: file mapping: last written pages",
                 who);
    victim_check(filled_with(mapped_file + MIB, FILE_SIZE - MIB, 'F'), "%s: file mapping: the file's own pages", who);
    long shared = smaps_field(mapped_file, "Shared_Dirty");
    victim_check(shared * 1024 >= MIB - 2 * OWN,
                 "%s: file mapping: pages written before fork not shared (Shared_Dirty %ld kB)", who, shared);
}

/* FILE_SIZE bytes of 'F' in a file next to the log, mapped private and
 * writable; the file is removed when the victim ends. */
static char file_path[4096];

static void remove_file(void)
{
    unlink(file_path);
}

static unsigned char *map_file(const char *log)
{
    snprintf(file_path, sizeof(file_path), "%s.cow-file", log);
    int fd = open(file_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return NULL;
    atexit(remove_file);
    static unsigned char block[64 * 1024];
    memset(block, 'F', sizeof(block));
    for (size_t done = 0; done < FILE_SIZE; done += sizeof(block))
        if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block))
            return NULL;
    void *memory = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    return memory == MAP_FAILED ? NULL : memory;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    region = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    touched = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(region, 'A', REGION);
    mapped_file = map_file(argv[1]);
    if (!mapped_file)
        return 2;
    memset(mapped_file, 'G', MIB);
    int ready[2];
    if (pipe(ready))
        return 2;
    pid_t child = fork();
    if (child == 0) {
        memset(region + REGION - MIB, 'C', MIB);
        memset(touched + 8 * PAGE, 'D', 8 * PAGE);
        memset(mapped_file + MIB - OWN, 'H', OWN);
        if (write(ready[1], "x", 1) != 1)
            _exit(2);
        victim_wait();
        check_common("child", 0);
        _exit(victim_failures() ? 1 : 0);
    }
    memset(region, 'B', MIB);
    memset(touched, 'P', 8 * PAGE);
    memset(mapped_file, 'I', OWN);
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
