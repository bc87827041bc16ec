/* memfd_secret(2) descriptors kept open (victim fds_secret).
 *
 * With no argument (SKIP without memfd_secret), a parent and a forked child
 * share three memfd_secret descriptors:
 * - "kept" (O_CLOEXEC, 4 pages), mapped MAP_SHARED whole in both: the parent
 *   wrote file pages 0 and 2, the child alone page 3, page 1 was never
 *   touched;
 * - "unmapped" (2 pages + 100 bytes, O_NONBLOCK set with F_SETFL): written
 *   through a mapping that was unmapped again, so at the dump no process
 *   maps it: file page 0 and the 100 bytes of page 2 have data, page 1 was
 *   never touched;
 * - "empty" (O_CLOEXEC): never given a size.
 * After the restore each process checks: the content; that the fd and the
 * mapping are one file (fstat of the fd, the inode in /proc/self/maps and a
 * stat of /proc/self/map_files agree); that a new mapping of the fd shows
 * the old mapping's pages and writes go both ways; the sizes (the size of a
 * memfd_secret file is set once: "unmapped" refuses a new one, "empty" still
 * takes one); close-on-exec and status flags; that the pages never touched are still holes
 * (mincore on a new mapping: no page was made by the dump or the restore);
 * and that writes of one process, through a mapping or a new mapping of the
 * fd, reach the other.
 *
 * "big": a 65 MiB memfd_secret file, kept open and mapped, all written:
 * over the limit for an open memfd_secret descriptor, the dump is refused
 * and the victim runs on. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif

#define PAGE 4096
#define KEPT_SIZE (4 * PAGE)
#define UNMAPPED_SIZE (2 * PAGE + 100)
#define UNMAPPED_MAPPING (3 * PAGE)
#define BIG_SIZE (65 << 20)

static int new_secret(unsigned flags, size_t size)
{
    int fd = (int)syscall(SYS_memfd_secret, flags);
    if (fd >= 0 && size && ftruncate(fd, (off_t)size) < 0) {
        victim_say("setup: ftruncate: %s", strerror(errno));
        exit(2);
    }
    return fd;
}

static char *map_fd(int fd, size_t size)
{
    char *mapped = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mapped == MAP_FAILED) {
        victim_check(0, "mmap of fd %d (%zu bytes): %s", fd, size, strerror(errno));
        return NULL;
    }
    return mapped;
}

/* The /proc/self/maps fields of the mapping that starts at `address`. */
static int find_map(const void *address, char *perms, unsigned long *inode, char *name, size_t name_size)
{
    FILE *maps = fopen("/proc/self/maps", "re");
    char text[4400];
    int found = 0;
    while (maps && !found && fgets(text, sizeof(text), maps)) {
        unsigned long start, end, offset;
        int name_at = 0;
        if (sscanf(text, "%lx-%lx %7s %lx %*x:%*x %lu %n", &start, &end, perms, &offset, inode, &name_at) < 5)
            continue;
        if (start != (unsigned long)address)
            continue;
        snprintf(name, name_size, "%s", text + name_at);
        name[strcspn(name, "\n")] = 0;
        found = 1;
    }
    if (maps)
        fclose(maps);
    return found;
}

/* How many mappings of /proc/self/maps are of inode `inode`. */
static int mappings_of(unsigned long inode)
{
    FILE *maps = fopen("/proc/self/maps", "re");
    char text[4400];
    int count = 0;
    while (maps && fgets(text, sizeof(text), maps)) {
        unsigned long mapped_inode;
        if (sscanf(text, "%*x-%*x %*s %*x %*x:%*x %lu", &mapped_inode) == 1 && mapped_inode == inode)
            ++count;
    }
    if (maps)
        fclose(maps);
    return count;
}

/* "kept" is still one file with its descriptor: maps line, inodes, size. */
static void check_one_file(const char *who, int fd, const char *mapping, size_t size)
{
    char perms[8] = "", name[4200] = "";
    unsigned long inode = 0;
    struct stat by_fd, by_map_files;
    char path[128];
    snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)mapping,
             (unsigned long)mapping + size);
    int mapped = find_map(mapping, perms, &inode, name, sizeof(name));
    int fstat_result = fstat(fd, &by_fd);
    int stat_result = stat(path, &by_map_files);
    victim_check(mapped && strcmp(perms, "rw-s") == 0 && strcmp(name, "/secretmem (deleted)") == 0,
                 "%s: the mapping is '%s' '%s'", who, perms, name);
    victim_check(fstat_result == 0 && stat_result == 0 && by_fd.st_ino == inode && by_map_files.st_ino == inode
                     && by_fd.st_dev == by_map_files.st_dev,
                 "%s: the fd (inode %lu) and the mapping (maps %lu, map_files %lu) are not one file", who,
                 (unsigned long)by_fd.st_ino, inode, (unsigned long)by_map_files.st_ino);
    victim_check(fstat_result == 0 && by_fd.st_size == (off_t)size, "%s: size %ld, expected %zu", who,
                 (long)by_fd.st_size, size);
}

/* Which pages of `fd` (mapping `size` bytes) are in its page cache, as a
 * string of 0 and 1, read on a new mapping before touching it. */
static void resident(int fd, size_t size, char *out)
{
    out[0] = 0;
    char *mapped = map_fd(fd, size);
    unsigned char vector[64];
    if (!mapped || size / PAGE > sizeof(vector) || mincore(mapped, size, vector) < 0) {
        victim_check(0, "mincore: %s", strerror(errno));
    } else {
        for (size_t i = 0; i < size / PAGE; ++i)
            out[i] = (vector[i] & 1) ? '1' : '0';
        out[size / PAGE] = 0;
    }
    if (mapped)
        munmap(mapped, size);
}

static void sync_write(int fd)
{
    if (write(fd, "x", 1) != 1)
        victim_check(0, "sync write: %s", strerror(errno));
}

static void sync_read(int fd)
{
    char byte;
    ssize_t got;
    while ((got = read(fd, &byte, 1)) < 0 && errno == EINTR) { }
    victim_check(got == 1, "sync read: %zd (%s)", got, strerror(errno));
}

static int skip(void)
{
    victim_say("SKIP: memfd_secret: %s", strerror(errno));
    victim_ready();
    victim_wait();
    return victim_finish();
}

static int big_case(void)
{
    int fd = new_secret(0, BIG_SIZE);
    if (fd < 0)
        return skip();
    char *memory = map_fd(fd, BIG_SIZE);
    if (!memory)
        return 2;
    memset(memory, 'R', BIG_SIZE);
    victim_ready();
    victim_wait();
    victim_check(memory[0] == 'R' && memory[BIG_SIZE - 1] == 'R', "big: the mapping changed");
    return victim_finish();
}

/* The child after the restore: reads what the parent wrote, answers. */
static void child_checks(int kept_fd, char *kept, int unmapped_fd, int empty_fd)
{
    check_one_file("child: kept", kept_fd, kept, KEPT_SIZE);
    victim_check(memcmp(kept + PAGE, "parent", 6) == 0, "child: kept: the parent's write is not here");
    victim_check(victim_has_pattern(kept + 3 * PAGE, PAGE, 3 * PAGE, 3), "child: kept: its own page");
    char *remapped = map_fd(kept_fd, KEPT_SIZE);
    if (remapped) {
        victim_check(memcmp(remapped + PAGE, "parent", 6) == 0,
                     "child: kept: the parent's write is not seen through a new mapping of the fd");
        memcpy(remapped + 3 * PAGE + 100, "child", 5);   /* through the fd */
        munmap(remapped, KEPT_SIZE);
    }
    char *unmapped = map_fd(unmapped_fd, UNMAPPED_MAPPING);
    if (unmapped) {
        victim_check(memcmp(unmapped + PAGE, "parent-u", 8) == 0, "child: unmapped: the parent's write is not here");
        memcpy(unmapped + 2 * PAGE + 50, "child-u", 7);
        munmap(unmapped, UNMAPPED_MAPPING);
    }
    char *empty = map_fd(empty_fd, PAGE);
    if (empty) {
        victim_check(memcmp(empty, "empty", 5) == 0, "child: empty: the parent's write after its ftruncate is not here");
        munmap(empty, PAGE);
    }
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    if (argc > 2 && strcmp(argv[2], "big") == 0)
        return big_case();
    if (argc > 2)
        return 2;

    int kept_fd = new_secret(O_CLOEXEC, KEPT_SIZE);
    if (kept_fd < 0)
        return skip();
    char *kept = map_fd(kept_fd, KEPT_SIZE);
    int unmapped_fd = new_secret(0, UNMAPPED_SIZE);
    int empty_fd = new_secret(O_CLOEXEC, 0);
    if (!kept || unmapped_fd < 0 || empty_fd < 0 || fcntl(unmapped_fd, F_SETFL, O_NONBLOCK) < 0)
        return 2;
    victim_fill(kept, PAGE, 0, 1);
    victim_fill(kept + 2 * PAGE, PAGE, 2 * PAGE, 1);
    char *unmapped = map_fd(unmapped_fd, UNMAPPED_MAPPING);
    if (!unmapped)
        return 2;
    victim_fill(unmapped, PAGE, 0, 2);
    victim_fill(unmapped + 2 * PAGE, 100, 2 * PAGE, 2);
    munmap(unmapped, UNMAPPED_MAPPING);

    int to_child[2], to_parent[2];
    if (pipe(to_child) < 0 || pipe(to_parent) < 0)
        return 2;
    pid_t child = fork();
    if (child == 0) {
        victim_fill(kept + 3 * PAGE, PAGE, 3 * PAGE, 3);   /* file page 3, only here */
        sync_write(to_parent[1]);
        sync_read(to_child[0]);
        child_checks(kept_fd, kept, unmapped_fd, empty_fd);
        sync_write(to_parent[1]);
        _exit(victim_failures() ? 1 : 0);
    }
    sync_read(to_parent[0]);
    victim_ready();
    victim_wait();

    /* kept: content, one file with its fd, a new mapping of the fd. */
    char pages[8];
    resident(kept_fd, KEPT_SIZE, pages);
    victim_check(strcmp(pages, "1011") == 0, "kept: resident pages %s, expected 1011 (page 1 is a hole)", pages);
    check_one_file("kept", kept_fd, kept, KEPT_SIZE);
    victim_check(victim_has_pattern(kept, PAGE, 0, 1) && victim_has_pattern(kept + 2 * PAGE, PAGE, 2 * PAGE, 1), "kept: content");
    victim_check(victim_all_zero(kept + PAGE, PAGE), "kept: the untouched page is not zeros");
    victim_check(victim_has_pattern(kept + 3 * PAGE, PAGE, 3 * PAGE, 3), "kept: the page only the child wrote");
    int fd_flags = fcntl(kept_fd, F_GETFD);
    victim_check(fd_flags == FD_CLOEXEC, "kept: fd flags %#x, expected FD_CLOEXEC", fd_flags);
    int status_flags = fcntl(kept_fd, F_GETFL);
    victim_check((status_flags & O_ACCMODE) == O_RDWR && !(status_flags & O_NONBLOCK), "kept: status flags %#o",
                 status_flags);
    char *remapped = map_fd(kept_fd, KEPT_SIZE);
    if (remapped) {
        victim_check(memcmp(remapped, kept, KEPT_SIZE) == 0, "kept: a new mapping of the fd differs from the old one");
        memcpy(remapped + 2 * PAGE + 10, "via-remap", 9);
        victim_check(memcmp(kept + 2 * PAGE + 10, "via-remap", 9) == 0,
                     "kept: a write through a new mapping of the fd is not seen through the old mapping");
        memcpy(kept + 20, "via-map", 7);
        victim_check(memcmp(remapped + 20, "via-map", 7) == 0,
                     "kept: a write through the old mapping is not seen through a new mapping of the fd");
        munmap(remapped, KEPT_SIZE);
    }
    victim_check(ftruncate(kept_fd, 8 * PAGE) < 0 && errno == EINVAL, "kept: its size could be set again");
    memcpy(kept + PAGE, "parent", 6);

    /* unmapped: nothing maps it; size, content, holes. */
    struct stat st, kept_stat;
    int stat_result = fstat(unmapped_fd, &st);
    fstat(kept_fd, &kept_stat);
    victim_check(stat_result == 0 && st.st_size == UNMAPPED_SIZE, "unmapped: size %ld, expected %d", (long)st.st_size,
                 UNMAPPED_SIZE);
    victim_check(st.st_ino != kept_stat.st_ino, "unmapped and kept are one file");
    victim_check(mappings_of(st.st_ino) == 0, "unmapped: something maps it");
    victim_check(fcntl(unmapped_fd, F_GETFD) == 0, "unmapped: the fd is close-on-exec");
    status_flags = fcntl(unmapped_fd, F_GETFL);
    victim_check((status_flags & O_ACCMODE) == O_RDWR && (status_flags & O_NONBLOCK), "unmapped: status flags %#o",
                 status_flags);
    resident(unmapped_fd, UNMAPPED_MAPPING, pages);
    victim_check(strcmp(pages, "101") == 0, "unmapped: resident pages %s, expected 101 (page 1 is a hole)", pages);
    unmapped = map_fd(unmapped_fd, UNMAPPED_MAPPING);
    if (unmapped) {
        victim_check(victim_has_pattern(unmapped, PAGE, 0, 2), "unmapped: page 0");
        victim_check(victim_all_zero(unmapped + PAGE, PAGE), "unmapped: the untouched page is not zeros");
        victim_check(victim_has_pattern(unmapped + 2 * PAGE, 100, 2 * PAGE, 2), "unmapped: the data of its last page");
        victim_check(victim_all_zero(unmapped + 2 * PAGE + 100, PAGE - 100), "unmapped: past its end, not zeros");
        memcpy(unmapped + PAGE, "parent-u", 8);
        munmap(unmapped, UNMAPPED_MAPPING);
    }
    victim_check(ftruncate(unmapped_fd, 4 * PAGE) < 0 && errno == EINVAL, "unmapped: its size could be set again");

    /* empty: no size yet, so one can be set. */
    stat_result = fstat(empty_fd, &st);
    victim_check(stat_result == 0 && st.st_size == 0, "empty: size %ld", (long)st.st_size);
    victim_check(ftruncate(empty_fd, PAGE) == 0, "empty: ftruncate: %s", strerror(errno));
    char *empty = map_fd(empty_fd, PAGE);
    if (empty) {
        memcpy(empty, "empty", 5);
        munmap(empty, PAGE);
    }

    /* The child sees all that and answers. */
    sync_write(to_child[1]);
    sync_read(to_parent[0]);
    victim_check(memcmp(kept + 3 * PAGE + 100, "child", 5) == 0,
                 "kept: the child's write through a new mapping of its fd is not here");
    unmapped = map_fd(unmapped_fd, UNMAPPED_MAPPING);
    if (unmapped) {
        victim_check(memcmp(unmapped + 2 * PAGE + 50, "child-u", 7) == 0, "unmapped: the child's write is not here");
        munmap(unmapped, UNMAPPED_MAPPING);
    }
    int status = 0;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "child status %#x", status);
    return victim_finish();
}
