/* memfds and deleted ("ghost") files, with the corners tests/victims/memfd.c
 * leaves out.
 *
 * With no argument:
 * - memfd "cryo-fds": 1 MiB, a pattern in its first two pages and its last
 *   one (a hole between), sealed F_SEAL_GROW | F_SEAL_SHRINK, dup'ed and
 *   shared with a forked child (one open file: the parent's lseek moves the
 *   child's offset); a second, write-only open file of it with its own
 *   offset;
 * - a sealable memfd without seals (must stay sealable) and one made without
 *   MFD_ALLOW_SEALING (must stay unsealable); one made with MFD_NOEXEC_SEAL
 *   (Linux 6.3 and later), which must stay unexecutable;
 * - a deleted file in the log's directory, pattern, mode 0640, offset 1234,
 *   plus a second, write-only O_APPEND open file of it; after the unlink a
 *   new file takes its name, which the restore must leave alone;
 * - a 2 GiB sparse deleted file with 8 KiB of data at 1 GiB, which must
 *   stay sparse.
 * With "hardlink": a deleted file that still has another name, in another
 * directory (refused; one in the same directory is opened through it).
 * With "big": a deleted file with 65 MiB of data (over the default limit).
 * With "bigmemfd": a memfd with 65 MiB of data (over the memfd limit).
 * With "budget": four deleted files of 50 MiB each (under the per-file
 * limit, over what one image holds). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

#define PAGE 4096
#define MEMFD_SIZE (1 << 20)
#define SPARSE_SIZE (2ll << 30)
#define SPARSE_DATA (1ll << 30)

static char pattern_byte(long long offset, int salt) { return (char)('A' + (offset / 7 + salt) % 26); }

static void fill(char *buffer, size_t size, long long offset, int salt)
{
    for (size_t i = 0; i < size; ++i)
        buffer[i] = pattern_byte(offset + (long long)i, salt);
}

static int pattern_at(int fd, long long offset, size_t size, int salt)
{
    char expected[2 * PAGE], actual[2 * PAGE];
    fill(expected, size, offset, salt);
    return pread(fd, actual, size, offset) == (ssize_t)size && memcmp(expected, actual, size) == 0;
}

static int zeroes_at(int fd, long long offset)
{
    char buffer[PAGE], zero[PAGE] = { 0 };
    return pread(fd, buffer, PAGE, offset) == PAGE && memcmp(buffer, zero, PAGE) == 0;
}

/* The /proc/self/fd link of `fd`, or "". */
static const char *fd_link(int fd)
{
    static char target[4200];
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t length = readlink(path, target, sizeof(target) - 1);
    target[length > 0 ? length : 0] = 0;
    return target;
}

static int ends_with(const char *text, const char *suffix)
{
    size_t length = strlen(text), suffix_length = strlen(suffix);
    return length >= suffix_length && strcmp(text + length - suffix_length, suffix) == 0;
}

/* A deleted file at `path` holding `megabytes` MiB of data. */
static int big_deleted_file(const char *path, int megabytes)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    static char chunk[1 << 20];
    memset(chunk, 'B', sizeof(chunk));
    for (int i = 0; fd >= 0 && i < megabytes; ++i)
        if (write(fd, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk))
            return -1;
    unlink(path);
    return fd;
}

/* The refused cases: set up, wait (the dump fails and the victim runs on),
 * check the file is still there. */
static int refused_case(const char *mode, const char *log)
{
    char path[4200], other[4200];
    int fds[4] = { -1, -1, -1, -1 };
    int count = 1;
    snprintf(path, sizeof(path), "%s.%s", log, mode);
    if (strcmp(mode, "hardlink") == 0) {
        snprintf(other, sizeof(other), "%s.hardlink-dir", log);
        if (mkdir(other, 0700) < 0 && errno != EEXIST)
            return 2;
        snprintf(other, sizeof(other), "%s.hardlink-dir/other", log);
        fds[0] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fds[0] < 0 || write(fds[0], "linked", 6) != 6 || link(path, other) < 0)
            return 2;
        unlink(path);
    } else if (strcmp(mode, "big") == 0) {
        fds[0] = big_deleted_file(path, 65);
    } else if (strcmp(mode, "bigmemfd") == 0) {
        fds[0] = memfd_create("cryo-big", 0);
        static char chunk[1 << 20];
        memset(chunk, 'B', sizeof(chunk));
        for (int i = 0; fds[0] >= 0 && i < 65; ++i)
            if (write(fds[0], chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk))
                return 2;
    } else if (strcmp(mode, "budget") == 0) {
        count = 4;
        for (int i = 0; i < count; ++i) {
            snprintf(path, sizeof(path), "%s.budget%d", log, i);
            fds[i] = big_deleted_file(path, 50);
        }
    } else {
        return 2;
    }
    for (int i = 0; i < count; ++i)
        if (fds[i] < 0)
            return 2;
    victim_ready();
    victim_wait();
    for (int i = 0; i < count; ++i) {
        struct stat st;
        victim_check(fstat(fds[i], &st) == 0 && st.st_size > 0, "%s: fd %d lost its file", mode, fds[i]);
    }
    return victim_finish();
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    if (argc > 2)
        return refused_case(argv[2], argv[1]);

    char page[2 * PAGE];
    int memfd = memfd_create("cryo-fds", MFD_ALLOW_SEALING);
    if (memfd < 0 || ftruncate(memfd, MEMFD_SIZE))
        return 2;
    fill(page, 2 * PAGE, 0, 1);
    if (pwrite(memfd, page, 2 * PAGE, 0) != 2 * PAGE)
        return 2;
    fill(page, PAGE, MEMFD_SIZE - PAGE, 1);
    if (pwrite(memfd, page, PAGE, MEMFD_SIZE - PAGE) != PAGE)
        return 2;
    if (fcntl(memfd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) < 0)
        return 2;
    int memfd_dup = dup(memfd);
    char proc_path[64];
    snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", memfd);
    int memfd_writer = open(proc_path, O_WRONLY);
    if (memfd_dup < 0 || memfd_writer < 0 || lseek(memfd_writer, 777, SEEK_SET) != 777)
        return 2;
    int sealable = memfd_create("cryo-sealable", MFD_ALLOW_SEALING);
    int unsealable = memfd_create("cryo-unsealable", 0);
    if (sealable < 0 || unsealable < 0 || write(sealable, "s", 1) != 1)
        return 2;
    int no_exec = memfd_create("cryo-noexec", MFD_NOEXEC_SEAL);   /* -1 before Linux 6.3 */

    char ghost_path[4200], sparse_path[4200];
    snprintf(ghost_path, sizeof(ghost_path), "%s.ghost", argv[1]);
    snprintf(sparse_path, sizeof(sparse_path), "%s.sparse", argv[1]);
    int ghost = open(ghost_path, O_RDWR | O_CREAT | O_TRUNC, 0640);
    fill(page, 2 * PAGE, 0, 2);
    if (ghost < 0 || fchmod(ghost, 0640) || write(ghost, page, 2 * PAGE) != 2 * PAGE)
        return 2;
    lseek(ghost, 1234, SEEK_SET);
    int ghost_appender = open(ghost_path, O_WRONLY | O_APPEND);
    if (ghost_appender < 0)
        return 2;
    /* The write-only open file gets the lower number, so it is the one
     * dumped first and whose data is read (through a new read-only open). */
    int moved = fcntl(ghost, F_DUPFD, 100);
    if (moved < 0)
        return 2;
    close(ghost);
    ghost = moved;
    unlink(ghost_path);
    /* A new file takes the name: the restore must not touch it. */
    int occupant = open(ghost_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (occupant < 0 || write(occupant, "occupant", 8) != 8)
        return 2;
    close(occupant);

    int sparse = open(sparse_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    fill(page, 2 * PAGE, SPARSE_DATA, 3);
    if (sparse < 0 || ftruncate(sparse, SPARSE_SIZE) || pwrite(sparse, page, 2 * PAGE, SPARSE_DATA) != 2 * PAGE)
        return 2;
    unlink(sparse_path);

    pid_t child = fork();
    if (child == 0) {
        victim_wait();
        /* The parent moved the shared offset before releasing us. */
        for (int i = 0; i < 100 && lseek(memfd_dup, 0, SEEK_CUR) != 4242; ++i)
            usleep(10000);
        victim_check(lseek(memfd_dup, 0, SEEK_CUR) == 4242, "child: memfd offset not shared (%ld)",
                     (long)lseek(memfd_dup, 0, SEEK_CUR));
        victim_check(pattern_at(memfd_dup, MEMFD_SIZE - PAGE, PAGE, 1), "child: memfd last page");
        victim_check(fcntl(memfd_dup, F_GET_SEALS) == (F_SEAL_GROW | F_SEAL_SHRINK), "child: memfd seals %#x",
                     fcntl(memfd_dup, F_GET_SEALS));
        _exit(victim_failures() ? 1 : 0);
    }
    victim_ready();
    victim_wait();

    /* The sealed memfd. */
    struct stat st;
    victim_check(fstat(memfd, &st) == 0 && st.st_size == MEMFD_SIZE, "memfd size %ld", (long)st.st_size);
    victim_check(pattern_at(memfd, 0, 2 * PAGE, 1), "memfd first pages");
    victim_check(pattern_at(memfd, MEMFD_SIZE - PAGE, PAGE, 1), "memfd last page");
    victim_check(zeroes_at(memfd, 100 * PAGE), "memfd hole");
    victim_check(fcntl(memfd, F_GET_SEALS) == (F_SEAL_GROW | F_SEAL_SHRINK), "memfd seals %#x", fcntl(memfd, F_GET_SEALS));
    victim_check(ftruncate(memfd, 2 * MEMFD_SIZE) < 0 && errno == EPERM, "the sealed memfd could grow");
    victim_check(strcmp(fd_link(memfd), "/memfd:cryo-fds (deleted)") == 0, "memfd link '%s'", fd_link(memfd));
    victim_check(lseek(memfd_writer, 0, SEEK_CUR) == 777, "write-only memfd offset %ld", (long)lseek(memfd_writer, 0, SEEK_CUR));
    victim_check((fcntl(memfd_writer, F_GETFL) & O_ACCMODE) == O_WRONLY, "write-only memfd flags %#x", fcntl(memfd_writer, F_GETFL));
    victim_check(write(memfd_writer, "w", 1) == 1 && pread(memfd, page, 1, 777) == 1 && page[0] == 'w',
                 "the write-only open file is not the same memfd");
    lseek(memfd, 4242, SEEK_SET);
    kill(child, SIGUSR1);
    victim_check(fcntl(sealable, F_GET_SEALS) == 0 && fcntl(sealable, F_ADD_SEALS, F_SEAL_WRITE) == 0,
                 "the sealable memfd: seals %#x, F_ADD_SEALS %s", fcntl(sealable, F_GET_SEALS), strerror(errno));
    victim_check(fcntl(unsealable, F_GET_SEALS) == F_SEAL_SEAL, "the unsealable memfd: seals %#x", fcntl(unsealable, F_GET_SEALS));
    if (no_exec >= 0)
        victim_check(fstat(no_exec, &st) == 0 && (st.st_mode & 0111) == 0 && (fcntl(no_exec, F_GET_SEALS) & F_SEAL_EXEC)
                         && fchmod(no_exec, 0755) < 0,
                     "the MFD_NOEXEC_SEAL memfd: mode %o, seals %#x", st.st_mode & 07777, fcntl(no_exec, F_GET_SEALS));

    /* The deleted file and its write-only O_APPEND twin. */
    victim_check(lseek(ghost, 0, SEEK_CUR) == 1234, "ghost offset %ld", (long)lseek(ghost, 0, SEEK_CUR));
    victim_check(pattern_at(ghost, 0, 2 * PAGE, 2), "ghost content");
    victim_check(fstat(ghost, &st) == 0 && st.st_size == 2 * PAGE && (st.st_mode & 07777) == 0640 && st.st_nlink == 0,
                 "ghost size %ld mode %o links %ld", (long)st.st_size, st.st_mode & 07777, (long)st.st_nlink);
    victim_check(fcntl(ghost_appender, F_GETFL) & O_APPEND, "the ghost appender lost O_APPEND");
    victim_check(write(ghost_appender, "z", 1) == 1 && pread(ghost, page, 1, 2 * PAGE) == 1 && page[0] == 'z',
                 "the two open files of the ghost are not one file any more");
    victim_check(ends_with(fd_link(ghost), " (deleted)"), "ghost link '%s'", fd_link(ghost));
    victim_check(ends_with(fd_link(ghost_appender), " (deleted)"), "ghost appender link '%s'", fd_link(ghost_appender));
    int occupant_check = open(ghost_path, O_RDONLY | O_CLOEXEC);
    char occupant_text[16] = { 0 };
    victim_check(occupant_check >= 0 && read(occupant_check, occupant_text, sizeof(occupant_text)) == 8
                     && memcmp(occupant_text, "occupant", 8) == 0,
                 "the file that took the ghost's name changed: '%s'", occupant_text);
    if (occupant_check >= 0)
        close(occupant_check);

    /* The sparse deleted file. */
    victim_check(fstat(sparse, &st) == 0 && st.st_size == SPARSE_SIZE && st.st_blocks * 512 < (1 << 20),
                 "sparse ghost: size %lld, %lld bytes allocated", (long long)st.st_size, (long long)st.st_blocks * 512);
    victim_check(pattern_at(sparse, SPARSE_DATA, 2 * PAGE, 3), "sparse ghost data");
    victim_check(zeroes_at(sparse, PAGE), "sparse ghost hole");
    victim_check(ends_with(fd_link(sparse), " (deleted)"), "sparse ghost link '%s'", fd_link(sparse));

    int status = 0;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "child status %#x", status);
    return victim_finish();
}
