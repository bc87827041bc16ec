/* Memory mappings of memfds and of files deleted while mapped.
 *
 * With no argument, a parent and a forked child share:
 * - memfd "cryo-shared" (4 pages), mapped MAP_SHARED at offset 1 page for 3
 *   pages, its fd kept open in both: writes through the mapping must be seen
 *   through the fd and by the other process, and the other way round;
 * - memfd "cryo-maponly" (3 pages, page 1 a hole, sealed against resizing),
 *   mapped MAP_SHARED, its fd closed: the mapping is all that holds it;
 * - memfd "cryo-ring" (2 pages) mapped twice back to back (a mirrored ring
 *   buffer): a write at the end of the first view appears in the second.
 * The parent alone has:
 * - memfd "cryo-private" (2 pages, fd closed) mapped MAP_PRIVATE read-write
 *   with page 1 changed, MAP_PRIVATE read+exec (like code) and MAP_SHARED
 *   read-only from a read-only open (so it may never become writable);
 * - memfd "cryo-jit" mapped twice MAP_SHARED, read-write and read+exec (JIT
 *   double mapping): what is written through one is seen through the other;
 * - a file deleted while mapped ("LOG.mapped", mode 0640, fd closed),
 *   MAP_SHARED and MAP_PRIVATE with page 1 changed;
 * - a deleted file kept open ("LOG.mapped-open") and mapped MAP_SHARED.
 * After the restore each checks content, /proc/self/maps (same address,
 * protection, sharing, offset and name such as "/memfd:cryo-shared
 * (deleted)"), and that the mappings still are the files (fd and mapping,
 * parent and child, shared and private views agree), syncing over pipes.
 *
 * The refused cases, each set up alone (the dump fails and the victim runs
 * on):
 * "hardlink"    a mapped deleted file whose inode has another name;
 * "bigdeleted"  a mapped deleted file with 65 MiB of data (over --ghost-limit);
 * "futurewrite" a memfd sealed F_SEAL_FUTURE_WRITE with a writable shared
 *               mapping;
 * "sysv"        a System V shared memory segment.
 * With "big": a 100 MiB memfd, only mapped, with data all through (more than
 * an open memfd may hold in files.img): restored through the page file.
 * With "secret": memfd_secret(2) memory (SKIP without it), fd closed, 4
 * pages: mapped at offset 1 page for 3 pages in the parent and, inherited,
 * in the child, and at offset 0 for 2 pages in the parent only. The parent
 * wrote file page 1 (through both of its mappings), the child alone file
 * page 3; page 2 was never touched. After the restore both see everything,
 * page 2 reads as zeros, and writes go from one to the other. (memfd_secret
 * descriptors kept open: victim fds_secret.) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif

#define PAGE 4096
#define BIG_SIZE (100 << 20)

static int new_memfd(const char *name, size_t size, unsigned flags)
{
    int fd = memfd_create(name, flags);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
        return -1;
    return fd;
}

static void *map(void *where, size_t size, int prot, int flags, int fd, off_t offset)
{
    void *mapped = mmap(where, size, prot, flags | (where ? MAP_FIXED : 0), fd, offset);
    if (mapped == MAP_FAILED) {
        victim_say("setup: mmap: %s", strerror(errno));
        exit(2);
    }
    return mapped;
}

/* The /proc/self/maps line of the mapping that starts at `address`. */
struct map_line {
    char perms[8];
    unsigned long offset;
    unsigned long inode;
    char name[4200];
};

static int find_map(const void *address, struct map_line *line)
{
    FILE *maps = fopen("/proc/self/maps", "re");
    char text[4400];
    int found = 0;
    while (maps && !found && fgets(text, sizeof(text), maps)) {
        unsigned long start, end;
        int name_at = 0;
        memset(line, 0, sizeof(*line));
        if (sscanf(text, "%lx-%lx %7s %lx %*x:%*x %lu %n", &start, &end, line->perms, &line->offset, &line->inode,
                   &name_at) < 5)
            continue;
        if (start != (unsigned long)address)
            continue;
        snprintf(line->name, sizeof(line->name), "%s", text + name_at);
        line->name[strcspn(line->name, "\n")] = 0;
        found = 1;
    }
    if (maps)
        fclose(maps);
    return found;
}

static void check_map(const void *address, const char *perms, unsigned long offset, const char *name, const char *what)
{
    struct map_line line;
    if (!find_map(address, &line)) {
        victim_check(0, "%s: no mapping starts at %p any more", what, address);
        return;
    }
    victim_check(strcmp(line.perms, perms) == 0, "%s: perms %s, expected %s", what, line.perms, perms);
    victim_check(line.offset == offset, "%s: offset %#lx, expected %#lx", what, line.offset, offset);
    victim_check(strcmp(line.name, name) == 0, "%s: name '%s', expected '%s'", what, line.name, name);
}

static unsigned long mapped_inode(const void *address)
{
    struct map_line line;
    return find_map(address, &line) ? line.inode : 0;
}

/* The file behind a mapping, opened through /proc/self/map_files. */
static int open_mapped(const void *address, size_t size)
{
    char path[128];
    snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)address,
             (unsigned long)address + size);
    return open(path, O_RDONLY | O_CLOEXEC);
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

/* Each refused case: set up, say READY, wait, check the state is intact. */
static int refused_case(const char *mode, const char *log)
{
    char path[4200], other[4200];
    char *memory = NULL;
    size_t size = PAGE;
    char expected = 'R';
    if (strcmp(mode, "hardlink") == 0) {
        snprintf(path, sizeof(path), "%s.hardlink", log);
        snprintf(other, sizeof(other), "%s.hardlink-other", log);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || ftruncate(fd, PAGE) < 0 || link(path, other) < 0)
            return 2;
        memory = map(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        unlink(path);
    } else if (strcmp(mode, "bigdeleted") == 0) {
        snprintf(path, sizeof(path), "%s.bigdeleted", log);
        size = 65 << 20;
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
            return 2;
        memory = map(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        memset(memory, 'R', size);
        close(fd);
        unlink(path);
    } else if (strcmp(mode, "futurewrite") == 0) {
        int fd = new_memfd("cryo-future", PAGE, MFD_ALLOW_SEALING);
        if (fd < 0)
            return 2;
        memory = map(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) < 0)
            return 2;
        close(fd);
    } else if (strcmp(mode, "sysv") == 0) {
        int id = shmget(IPC_PRIVATE, PAGE, IPC_CREAT | 0600);
        if (id < 0)
            return 2;
        memory = shmat(id, NULL, 0);
        shmctl(id, IPC_RMID, NULL);
        if (memory == (void *)-1)
            return 2;
    } else {
        return 2;
    }
    memory[0] = expected;
    memory[size - 1] = expected;
    victim_ready();
    victim_wait();
    victim_check(memory[0] == expected && memory[size - 1] == expected, "%s: the mapping changed", mode);
    return victim_finish();
}

static int big_case(void)
{
    int fd = new_memfd("cryo-big-mapped", BIG_SIZE, 0);
    if (fd < 0)
        return 2;
    char *memory = map(NULL, BIG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    for (size_t i = 0; i < BIG_SIZE; i += PAGE)
        victim_fill(memory + i, 64, (long)i, 9);
    victim_ready();
    victim_wait();
    int ok = 1;
    for (size_t i = 0; ok && i < BIG_SIZE; i += PAGE)
        ok = victim_has_pattern(memory + i, 64, (long)i, 9) && victim_all_zero(memory + i + 64, PAGE - 64);
    victim_check(ok, "the big memfd's content changed");
    check_map(memory, "rw-s", 0, "/memfd:cryo-big-mapped (deleted)", "big memfd");
    return victim_finish();
}

static int secret_case(void)
{
    int fd = (int)syscall(SYS_memfd_secret, 0);
    if (fd < 0) {
        victim_say("SKIP: memfd_secret: %s", strerror(errno));
        victim_ready();
        victim_wait();
        return victim_finish();
    }
    if (ftruncate(fd, 4 * PAGE) < 0)
        return 2;
    char *secret = map(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, PAGE);
    char *second = map(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    victim_fill(secret, PAGE, PAGE, 8);   /* file page 1 */
    int to_child[2], to_parent[2];
    if (pipe(to_child) < 0 || pipe(to_parent) < 0)
        return 2;
    pid_t child = fork();
    if (child == 0) {
        victim_fill(secret + 2 * PAGE, PAGE, 3 * PAGE, 8);   /* file page 3, only here */
        sync_write(to_parent[1]);
        sync_read(to_child[0]);
        check_map(secret, "rw-s", PAGE, "/secretmem (deleted)", "child: secret");
        victim_check(memcmp(secret, "parent", 6) == 0, "child: the parent's write to the secret memory is not here");
        victim_check(victim_all_zero(secret + PAGE, PAGE), "child: the untouched secret page is not zeros");
        victim_check(victim_has_pattern(secret + 2 * PAGE, PAGE, 3 * PAGE, 8), "child: its own secret page");
        memcpy(secret + 2 * PAGE, "child", 5);
        sync_write(to_parent[1]);
        _exit(victim_failures() ? 1 : 0);
    }
    sync_read(to_parent[0]);
    victim_ready();
    victim_wait();
    check_map(secret, "rw-s", PAGE, "/secretmem (deleted)", "secret");
    check_map(second, "rw-s", 0, "/secretmem (deleted)", "secret, second mapping");
    victim_check(victim_has_pattern(secret, PAGE, PAGE, 8) && victim_has_pattern(second + PAGE, PAGE, PAGE, 8), "secret: file page 1");
    victim_check(victim_all_zero(second, PAGE) && victim_all_zero(secret + PAGE, PAGE), "secret: the untouched pages are not zeros");
    victim_check(victim_has_pattern(secret + 2 * PAGE, PAGE, 3 * PAGE, 8), "secret: the page only the child had");
    victim_check(mapped_inode(secret) == mapped_inode(second), "secret: the two mappings are not one file");
    memcpy(second + PAGE, "parent", 6);
    victim_check(memcmp(secret, "parent", 6) == 0, "secret: the two mappings are not one file");
    sync_write(to_child[1]);
    sync_read(to_parent[0]);
    victim_check(memcmp(secret + 2 * PAGE, "child", 5) == 0, "secret: the child's write is not here");
    int status = 0;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "child status %#x", status);
    return victim_finish();
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    if (argc > 2 && strcmp(argv[2], "big") == 0)
        return big_case();
    if (argc > 2 && strcmp(argv[2], "secret") == 0)
        return secret_case();
    if (argc > 2)
        return refused_case(argv[2], argv[1]);

    char page[2 * PAGE];
    char deleted_path[4200], open_path[4200], deleted_name[4220], open_name[4220];
    snprintf(deleted_path, sizeof(deleted_path), "%s.mapped", argv[1]);
    snprintf(open_path, sizeof(open_path), "%s.mapped-open", argv[1]);

    /* cryo-shared: fd kept, mapped at offset 1 page, shared with the child. */
    int shared_fd = new_memfd("cryo-shared", 4 * PAGE, 0);
    if (shared_fd < 0)
        return 2;
    for (int i = 0; i < 4; ++i) {
        victim_fill(page, PAGE, (long)i * PAGE, 1);
        if (pwrite(shared_fd, page, PAGE, (off_t)i * PAGE) != PAGE)
            return 2;
    }
    char *shared = map(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, shared_fd, PAGE);

    /* cryo-maponly: only mapped, a hole in page 1, sealed. */
    int fd = new_memfd("cryo-maponly", 3 * PAGE, MFD_ALLOW_SEALING);
    if (fd < 0)
        return 2;
    char *maponly = map(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    victim_fill(maponly, PAGE, 0, 2);
    victim_fill(maponly + 2 * PAGE, PAGE, 2 * PAGE, 2);
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) < 0)
        return 2;
    close(fd);

    /* cryo-ring: mapped twice, back to back. */
    fd = new_memfd("cryo-ring", 2 * PAGE, 0);
    char *ring = map(NULL, 4 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    map(ring, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    map(ring + 2 * PAGE, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    memcpy(ring + PAGE, "ring", 4);

    /* cryo-private: MAP_PRIVATE with page 1 changed, r-x, and read-only shared. */
    fd = new_memfd("cryo-private", 2 * PAGE, 0);
    victim_fill(page, 2 * PAGE, 0, 3);
    if (fd < 0 || pwrite(fd, page, 2 * PAGE, 0) != 2 * PAGE)
        return 2;
    char *private_rw = map(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    char *private_rx = map(NULL, 2 * PAGE, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
    char proc_path[64];
    snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", fd);
    int read_only = open(proc_path, O_RDONLY);
    char *shared_ro = map(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, read_only, 0);
    close(read_only);
    close(fd);
    victim_fill(private_rw + PAGE, PAGE, PAGE, 4);

    /* cryo-jit: read-write and read+exec views of the same pages. */
    fd = new_memfd("cryo-jit", PAGE, 0);
    char *jit_rw = map(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *jit_rx = map(NULL, PAGE, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
    close(fd);
    jit_rw[0] = (char)0xc3;   /* ret */

    /* A file deleted while mapped, shared and private. */
    fd = open(deleted_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    victim_fill(page, 2 * PAGE, 0, 5);
    if (fd < 0 || fchmod(fd, 0640) < 0 || pwrite(fd, page, 2 * PAGE, 0) != 2 * PAGE)
        return 2;
    char *deleted_shared = map(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *deleted_private = map(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    unlink(deleted_path);
    victim_fill(deleted_private + PAGE, PAGE, PAGE, 6);

    /* A deleted file kept open and mapped. */
    int open_fd = open(open_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    victim_fill(page, PAGE, 0, 7);
    if (open_fd < 0 || pwrite(open_fd, page, PAGE, 0) != PAGE)
        return 2;
    char *open_mapping = map(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, open_fd, 0);
    unlink(open_path);
    snprintf(deleted_name, sizeof(deleted_name), "%s (deleted)", deleted_path);
    snprintf(open_name, sizeof(open_name), "%s (deleted)", open_path);

    int to_child[2], to_parent[2];
    if (pipe(to_child) < 0 || pipe(to_parent) < 0)
        return 2;
    pid_t child = fork();
    if (child == 0) {
        sync_read(to_child[0]);
        check_map(shared, "rw-s", PAGE, "/memfd:cryo-shared (deleted)", "child: cryo-shared");
        check_map(maponly, "rw-s", 0, "/memfd:cryo-maponly (deleted)", "child: cryo-maponly");
        victim_check(memcmp(shared + PAGE, "parent", 6) == 0, "child: the parent's write to cryo-shared is not here");
        victim_check(pread(shared_fd, page, 6, 2 * PAGE) == 6 && memcmp(page, "parent", 6) == 0,
                     "child: the parent's write to cryo-shared through its fd is not here");
        victim_check(memcmp(maponly + PAGE, "parent", 6) == 0, "child: the parent's write to cryo-maponly is not here");
        victim_check(memcmp(ring + 3 * PAGE, "ring", 4) == 0, "child: cryo-ring views differ");
        victim_check(mapped_inode(shared) != mapped_inode(maponly), "child: cryo-shared and cryo-maponly are one file");
        memcpy(shared + 2 * PAGE, "child", 5);
        memcpy(maponly + 2 * PAGE, "child", 5);
        memcpy(ring + 100, "child", 5);
        sync_write(to_parent[1]);
        _exit(victim_failures() ? 1 : 0);
    }
    victim_ready();
    victim_wait();

    /* cryo-shared. */
    struct stat st;
    check_map(shared, "rw-s", PAGE, "/memfd:cryo-shared (deleted)", "cryo-shared");
    victim_check(victim_has_pattern(shared, 3 * PAGE, PAGE, 1), "cryo-shared: content");
    /* (fstat before the check: the arguments of a call are evaluated in no
     * particular order, the message's could be read before the fstat.) */
    int stat_result = fstat(shared_fd, &st);
    victim_check(stat_result == 0 && st.st_size == 4 * PAGE && st.st_ino == mapped_inode(shared),
                 "cryo-shared: the fd (size %ld, inode %lu) and the mapping (inode %lu) are not one memfd",
                 (long)st.st_size, (unsigned long)st.st_ino, mapped_inode(shared));
    memcpy(shared + PAGE, "parent", 6);   /* file offset 2 pages */
    victim_check(pread(shared_fd, page, 6, 2 * PAGE) == 6 && memcmp(page, "parent", 6) == 0,
                 "cryo-shared: a write through the mapping is not seen through the fd");
    victim_check(pwrite(shared_fd, "via fd", 6, PAGE + 100) == 6 && memcmp(shared + 100, "via fd", 6) == 0,
                 "cryo-shared: a write through the fd is not seen through the mapping");

    /* cryo-maponly. */
    check_map(maponly, "rw-s", 0, "/memfd:cryo-maponly (deleted)", "cryo-maponly");
    victim_check(victim_has_pattern(maponly, PAGE, 0, 2) && victim_all_zero(maponly + PAGE, PAGE)
                     && victim_has_pattern(maponly + 2 * PAGE, PAGE, 2 * PAGE, 2),
                 "cryo-maponly: content");
    int maponly_fd = open_mapped(maponly, 3 * PAGE);
    stat_result = fstat(maponly_fd, &st);
    int seals = fcntl(maponly_fd, F_GET_SEALS);
    victim_check(stat_result == 0 && st.st_size == 3 * PAGE && seals == (F_SEAL_GROW | F_SEAL_SHRINK),
                 "cryo-maponly: size %ld, seals %#x", (long)st.st_size, seals);
    memcpy(maponly + PAGE, "parent", 6);

    /* cryo-ring. */
    check_map(ring, "rw-s", 0, "/memfd:cryo-ring (deleted)", "cryo-ring first view");
    check_map(ring + 2 * PAGE, "rw-s", 0, "/memfd:cryo-ring (deleted)", "cryo-ring second view");
    victim_check(memcmp(ring + PAGE, "ring", 4) == 0 && memcmp(ring + 3 * PAGE, "ring", 4) == 0, "cryo-ring: content");
    ring[3] = 'w';
    victim_check(ring[2 * PAGE + 3] == 'w', "cryo-ring: the two views are not one memfd");
    victim_check(mapped_inode(ring) == mapped_inode(ring + 2 * PAGE), "cryo-ring: two inodes");

    /* cryo-private. */
    check_map(private_rw, "rw-p", 0, "/memfd:cryo-private (deleted)", "cryo-private read-write");
    check_map(private_rx, "r-xp", 0, "/memfd:cryo-private (deleted)", "cryo-private read+exec");
    check_map(shared_ro, "r--s", 0, "/memfd:cryo-private (deleted)", "cryo-private read-only shared");
    victim_check(victim_has_pattern(private_rw, PAGE, 0, 3) && victim_has_pattern(private_rw + PAGE, PAGE, PAGE, 4),
                 "cryo-private: the private mapping's content");
    victim_check(victim_has_pattern(private_rx, 2 * PAGE, 0, 3), "cryo-private: the read+exec mapping's content");
    victim_check(victim_has_pattern(shared_ro, 2 * PAGE, 0, 3), "cryo-private: the memfd's content (the private change leaked?)");
    victim_check(mapped_inode(private_rw) == mapped_inode(shared_ro) && mapped_inode(private_rx) == mapped_inode(shared_ro),
                 "cryo-private: the three mappings are not of one memfd");
    victim_check(mprotect(shared_ro, 2 * PAGE, PROT_READ | PROT_WRITE) < 0 && errno == EACCES,
                 "cryo-private: the read-only shared mapping could be made writable");

    /* cryo-jit. */
    check_map(jit_rw, "rw-s", 0, "/memfd:cryo-jit (deleted)", "cryo-jit read-write");
    check_map(jit_rx, "r-xs", 0, "/memfd:cryo-jit (deleted)", "cryo-jit read+exec");
    victim_check((unsigned char)jit_rx[0] == 0xc3, "cryo-jit: content");
    jit_rw[1] = 0x42;
    victim_check(jit_rx[1] == 0x42, "cryo-jit: the views are not one memfd");
    ((void (*)(void))jit_rx)();   /* ret */

    /* The deleted files. */
    check_map(deleted_shared, "rw-s", 0, deleted_name, "deleted file, shared");
    check_map(deleted_private, "rw-p", 0, deleted_name, "deleted file, private");
    victim_check(victim_has_pattern(deleted_shared, 2 * PAGE, 0, 5), "deleted file: shared content");
    victim_check(victim_has_pattern(deleted_private, PAGE, 0, 5) && victim_has_pattern(deleted_private + PAGE, PAGE, PAGE, 6),
                 "deleted file: private content");
    deleted_shared[10] = '!';
    victim_check(deleted_private[10] == '!', "deleted file: the private mapping's clean page is not the file's");
    int deleted_fd = open_mapped(deleted_shared, 2 * PAGE);
    stat_result = fstat(deleted_fd, &st);
    victim_check(stat_result == 0 && st.st_size == 2 * PAGE && st.st_nlink == 0
                     && (st.st_mode & 07777) == 0640,
                 "deleted file: size %ld, links %ld, mode %o", (long)st.st_size, (long)st.st_nlink, st.st_mode & 07777);
    victim_check(access(deleted_path, F_OK) < 0, "deleted file: it has a name again");

    check_map(open_mapping, "rw-s", 0, open_name, "deleted file kept open");
    victim_check(victim_has_pattern(open_mapping, PAGE, 0, 7), "deleted file kept open: content");
    memcpy(open_mapping, "mapped", 6);
    victim_check(pread(open_fd, page, 6, 0) == 6 && memcmp(page, "mapped", 6) == 0,
                 "deleted file kept open: a write through the mapping is not seen through the fd");
    stat_result = fstat(open_fd, &st);
    victim_check(stat_result == 0 && st.st_ino == mapped_inode(open_mapping),
                 "deleted file kept open: the fd and the mapping are not one file");

    /* The child sees the parent's writes and answers with its own. */
    sync_write(to_child[1]);
    sync_read(to_parent[0]);
    victim_check(memcmp(shared + 2 * PAGE, "child", 5) == 0, "cryo-shared: the child's write is not here");
    victim_check(pread(shared_fd, page, 5, 3 * PAGE) == 5 && memcmp(page, "child", 5) == 0,
                 "cryo-shared: the child's write is not seen through the fd");
    victim_check(memcmp(maponly + 2 * PAGE, "child", 5) == 0, "cryo-maponly: the child's write is not here");
    victim_check(memcmp(ring + 2 * PAGE + 100, "child", 5) == 0, "cryo-ring: the child's write is not here");
    int status = 0;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "child status %#x", status);
    return victim_finish();
}
