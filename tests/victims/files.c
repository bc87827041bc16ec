/* Regular files: offsets, access modes, O_APPEND, close-on-exec, a dup'ed
 * descriptor sharing its offset, /dev/null at a high number, and fds that
 * were closed stay closed. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "victim.h"

#define MAX_FD 1024

/* Which descriptors below MAX_FD are open. */
static void open_fds(char open[MAX_FD])
{
    for (int fd = 0; fd < MAX_FD; ++fd)
        open[fd] = fcntl(fd, F_GETFD) >= 0;
}

/* fstat(fd) is the file at `path`. */
static int same_file(int fd, const char *path)
{
    struct stat by_fd, by_path;
    return fstat(fd, &by_fd) == 0 && stat(path, &by_path) == 0 && by_fd.st_ino == by_path.st_ino && by_fd.st_dev == by_path.st_dev;
}

static void make_file(const char *path, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char block[4096];
    for (size_t done = 0; done < size; done += sizeof(block)) {
        for (size_t i = 0; i < sizeof(block); ++i)
            block[i] = (char)('a' + (done + i) % 26);
        if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block))
            _exit(2);
    }
    close(fd);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t pid = getpid();
    char read_write[4200], append[4200], read_only[4200];
    snprintf(read_write, sizeof(read_write), "%s.rw", argv[1]);
    snprintf(append, sizeof(append), "%s.append", argv[1]);
    snprintf(read_only, sizeof(read_only), "%s.ro", argv[1]);
    make_file(read_write, 16384);
    make_file(append, 4096);
    make_file(read_only, 8192);

    int rw = open(read_write, O_RDWR);
    lseek(rw, 12345, SEEK_SET);
    int ap = open(append, O_WRONLY | O_APPEND | O_CLOEXEC);
    int ro = open(read_only, O_RDONLY);
    lseek(ro, 7, SEEK_SET);
    dup2(rw, 100);
    int null_fd = open("/dev/null", O_RDWR);
    dup2(null_fd, 50);
    close(null_fd);
    int path_only = open(read_only, O_PATH);
    int directory = open("/tmp", O_RDONLY | O_DIRECTORY);
    int directory_path = open("/usr", O_PATH | O_DIRECTORY);
    int closed = open(read_only, O_RDONLY);
    close(closed);
    struct stat rw_stat;
    fstat(rw, &rw_stat);
    char open_before[MAX_FD];
    open_fds(open_before);

    victim_ready();
    victim_wait();

    /* Exactly the same descriptors are open: none lost, none added. */
    char open_after[MAX_FD];
    open_fds(open_after);
    for (int fd = 0; fd < MAX_FD; ++fd)
        victim_check(open_before[fd] == open_after[fd], "fd %d is %s", fd, open_after[fd] ? "open, was closed" : "closed, was open");

    victim_check(getpid() == pid, "pid %d, was %d", getpid(), pid);
    victim_check(lseek(rw, 0, SEEK_CUR) == 12345, "read-write offset %ld", (long)lseek(rw, 0, SEEK_CUR));
    victim_check((fcntl(rw, F_GETFL) & O_ACCMODE) == O_RDWR && !(fcntl(rw, F_GETFD) & FD_CLOEXEC), "read-write flags");
    victim_check(same_file(rw, read_write) && same_file(100, read_write) && same_file(ap, append) && same_file(ro, read_only),
                 "a descriptor points to another file");
    char next[5] = "";
    victim_check(read(rw, next, sizeof(next)) == sizeof(next) && next[0] == 'a' + 12345 % 26 && next[4] == 'a' + 12349 % 26,
                 "read at offset 12345 gave '%.5s'", next);
    victim_check(lseek(rw, 12345, SEEK_SET) == 12345, "seek back");
    victim_check((fcntl(ap, F_GETFL) & O_APPEND) && (fcntl(ap, F_GETFL) & O_ACCMODE) == O_WRONLY, "O_APPEND lost");
    victim_check((fcntl(100, F_GETFL) & O_ACCMODE) == O_RDWR && !(fcntl(100, F_GETFD) & FD_CLOEXEC), "fd 100 flags");
    victim_check((fcntl(50, F_GETFL) & O_ACCMODE) == O_RDWR, "fd 50 flags");
    victim_check(fcntl(ap, F_GETFD) & FD_CLOEXEC, "close-on-exec lost");
    victim_check((fcntl(ro, F_GETFL) & O_ACCMODE) == O_RDONLY && lseek(ro, 0, SEEK_CUR) == 7, "read-only offset");
    char byte = 0;
    victim_check(read(ro, &byte, 1) == 1 && byte == 'a' + 7, "read after restore gave '%c'", byte);

    /* fd 100 shares the open file (and offset) of rw. */
    victim_check(lseek(100, 0, SEEK_CUR) == 12345, "dup'ed fd offset");
    lseek(100, 20, SEEK_SET);
    victim_check(lseek(rw, 0, SEEK_CUR) == 20, "dup'ed fd no longer shares the offset");
    struct stat now;
    victim_check(fstat(rw, &now) == 0 && now.st_ino == rw_stat.st_ino && now.st_dev == rw_stat.st_dev, "another file");

    victim_check(write(ap, "END", 3) == 3, "append write");
    struct stat append_stat;
    stat(append, &append_stat);
    victim_check(append_stat.st_size == 4099, "O_APPEND wrote at the wrong place (size %ld)", (long)append_stat.st_size);

    struct stat null_stat;
    victim_check(fstat(50, &null_stat) == 0 && S_ISCHR(null_stat.st_mode), "fd 50 is not /dev/null");
    victim_check(fcntl(closed, F_GETFD) < 0 || closed == 100 || closed == 50 || closed == rw || closed == ro || closed == ap,
                 "closed fd %d is open again", closed);
    victim_check(fcntl(99, F_GETFD) < 0, "fd 99 is open");
    struct stat path_stat, ro_stat;
    victim_check((fcntl(path_only, F_GETFL) & O_PATH) && fstat(path_only, &path_stat) == 0 && stat(read_only, &ro_stat) == 0
                     && path_stat.st_ino == ro_stat.st_ino,
                 "O_PATH file descriptor lost");
    struct stat dir_stat;
    victim_check(fstat(directory, &dir_stat) == 0 && S_ISDIR(dir_stat.st_mode) && faccessat(directory, ".", R_OK, 0) == 0,
                 "directory descriptor lost");
    victim_check((fcntl(directory_path, F_GETFL) & O_PATH) && faccessat(directory_path, "bin", F_OK, 0) == 0,
                 "O_PATH directory descriptor lost");
    unlink(read_write);
    unlink(append);
    unlink(read_only);
    return victim_finish();
}
