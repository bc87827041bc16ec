/* File locks: POSIX record locks (a write and a read range), an flock()
 * shared with a child through fork, a shared flock, OFD locks and a read
 * lease. After restore each lock must be held again, by the same process
 * (fdinfo lists the same locks), and must keep other processes and open
 * files out. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

/* The "lock:" lines of fdinfo without their ordinal, sorted, into out. */
static void lock_lines(int fd, char *out, size_t size)
{
    char raw[4096];
    victim_fdinfo_lines(fd, "lock:", raw, sizeof(raw));
    out[0] = 0;
    for (char *line = strtok(raw, "\n"); line; line = strtok(NULL, "\n")) {
        char *rest = strchr(line + 5, ':');   /* after "lock:\tN" */
        strncat(out, rest ? rest : line, size - strlen(out) - 2);
        strncat(out, "\n", size - strlen(out) - 1);
    }
}

static int make_file(const char *base, const char *suffix, char *path, size_t size)
{
    snprintf(path, size, "%s.%s", base, suffix);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 4096) != 0)
        _exit(2);
    return fd;
}

static int posix_lock(int fd, int command, short type, off_t start, off_t length)
{
    struct flock lock = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = length };
    return fcntl(fd, command, &lock);
}

/* Which process (l_pid) holds a lock conflicting with `type` on the range,
 * asked through `fd`: 0 if none, -1 for an OFD lock. */
static int conflicting_owner_fd(int fd, int command, short type, off_t start, off_t length)
{
    struct flock lock = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = length };
    if (fcntl(fd, command, &lock) != 0)
        return -2;
    return lock.l_type == F_UNLCK ? 0 : lock.l_pid;
}

/* The same, asked from a new open file of `path`. Closing it drops every
 * POSIX lock the calling process holds on the file: only for OFD locks or
 * from another process. */
static int conflicting_owner(const char *path, int command, short type, off_t start, off_t length)
{
    int fd = open(path, O_RDWR);
    int owner = conflicting_owner_fd(fd, command, type, start, length);
    close(fd);
    return owner;
}

/* flock(LOCK_NB) of a new open file of `path` fails with EWOULDBLOCK. */
static int flock_is_taken(const char *path, int operation)
{
    int fd = open(path, O_RDONLY);
    int result = flock(fd, operation | LOCK_NB);
    int error = errno;
    close(fd);
    return result < 0 && error == EWOULDBLOCK;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t pid = getpid();
    char posix_path[4200], flock_path[4200], shared_path[4200], ofd_path[4200], lease_path[4200];
    int posix_fd = make_file(argv[1], "posix", posix_path, sizeof(posix_path));
    int flock_fd = make_file(argv[1], "flock", flock_path, sizeof(flock_path));
    int shared_fd = make_file(argv[1], "shared", shared_path, sizeof(shared_path));
    int ofd_fd = make_file(argv[1], "ofd", ofd_path, sizeof(ofd_path));
    close(make_file(argv[1], "lease", lease_path, sizeof(lease_path)));
    int lease_fd = open(lease_path, O_RDONLY);

    int failed = posix_lock(posix_fd, F_SETLK, F_WRLCK, 0, 100) != 0 || posix_lock(posix_fd, F_SETLK, F_RDLCK, 200, 0) != 0
                 || flock(flock_fd, LOCK_EX) != 0 || flock(shared_fd, LOCK_SH) != 0
                 || posix_lock(ofd_fd, F_OFD_SETLK, F_RDLCK, 10, 10) != 0 || posix_lock(ofd_fd, F_OFD_SETLK, F_WRLCK, 50, 10) != 0
                 || fcntl(lease_fd, F_SETLEASE, F_RDLCK) != 0;
    if (failed) {
        victim_say("FAIL: setting up the locks: %s", strerror(errno));
        return 2;
    }
    int flock_dup = dup(flock_fd);
    /* The child shares the flock (one open file) and holds a POSIX lock of
     * its own on another range of the POSIX file. */
    int to_child[2];
    if (pipe(to_child) != 0)
        return 2;
    pid_t child = fork();
    if (child == 0) {
        close(to_child[1]);
        int fd = open(posix_path, O_RDWR);
        if (posix_lock(fd, F_SETLK, F_WRLCK, 120, 10) != 0)
            _exit(2);
        char byte;
        victim_check(read(to_child[0], &byte, 1) == 1, "child: no word from the parent");
        /* The parent asked: is the child's lock still there? (checked by the
         * parent); wait for the end. */
        victim_check(read(to_child[0], &byte, 1) == 0, "child: pipe not closed");
        _exit(victim_failures() ? 1 : 0);
    }
    close(to_child[0]);
    usleep(50000);   /* the child has taken its lock (checked below) */

    char before[6][1024];
    int fds[6] = { posix_fd, flock_fd, shared_fd, ofd_fd, lease_fd, flock_dup };
    for (int i = 0; i < 6; ++i)
        lock_lines(fds[i], before[i], sizeof(before[i]));
    victim_check(conflicting_owner_fd(posix_fd, F_GETLK, F_WRLCK, 120, 1) == child, "child's lock not taken before dump");

    victim_ready();
    victim_wait();

    victim_check(getpid() == pid, "pid %d, was %d", getpid(), pid);
    for (int i = 0; i < 6; ++i) {
        char after[1024];
        lock_lines(fds[i], after, sizeof(after));
        victim_check(strcmp(before[i], after) == 0, "fd %d: fdinfo locks\n%swere\n%s", fds[i], after, before[i]);
    }
    victim_check(before[0][0] && before[1][0] && before[3][0] && before[4][0], "fdinfo shows no lock");

    /* POSIX: held by this process, as another process (a checker) sees it. */
    pid_t checker = fork();
    if (checker == 0) {
        int ok = conflicting_owner(posix_path, F_GETLK, F_RDLCK, 0, 1) == pid
                 && conflicting_owner(posix_path, F_GETLK, F_RDLCK, 99, 1) == pid
                 && conflicting_owner(posix_path, F_GETLK, F_RDLCK, 100, 1) == 0
                 && conflicting_owner(posix_path, F_GETLK, F_WRLCK, 5000, 1) == pid
                 && conflicting_owner(posix_path, F_GETLK, F_RDLCK, 5000, 1) == 0
                 && conflicting_owner(posix_path, F_GETLK, F_RDLCK, 125, 1) == child;
        _exit(ok ? 0 : 1);
    }
    int status = -1;
    waitpid(checker, &status, 0);
    victim_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "POSIX locks not held as before (checker status %#x)", status);
    /* The child's lock is there too, seen through our own fd. */
    victim_check(conflicting_owner_fd(posix_fd, F_GETLK, F_WRLCK, 120, 1) == child, "child's POSIX lock lost");

    /* OFD locks: a new open file of this process conflicts with them. */
    victim_check(conflicting_owner(ofd_path, F_OFD_GETLK, F_WRLCK, 15, 1) == -1, "OFD read lock lost");
    victim_check(conflicting_owner(ofd_path, F_OFD_GETLK, F_RDLCK, 55, 1) == -1, "OFD write lock lost");
    victim_check(conflicting_owner(ofd_path, F_OFD_GETLK, F_WRLCK, 30, 1) == 0, "OFD lock where there was none");

    /* flock: exclusive keeps everyone out, shared keeps writers out. */
    victim_check(flock_is_taken(flock_path, LOCK_SH), "exclusive flock lost");
    victim_check(flock_is_taken(shared_path, LOCK_EX) && !flock_is_taken(shared_path, LOCK_SH), "shared flock wrong");
    /* The child's copy of the open file keeps the flock when ours go. */
    close(flock_fd);
    close(flock_dup);
    victim_check(flock_is_taken(flock_path, LOCK_SH), "flock not shared with the child");

    victim_check(fcntl(lease_fd, F_GETLEASE) == F_RDLCK, "lease is %d", fcntl(lease_fd, F_GETLEASE));

    if (write(to_child[1], "x", 1) != 1)
        victim_check(0, "writing to the child");
    close(to_child[1]);
    status = -1;
    waitpid(child, &status, 0);
    victim_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    victim_check(!flock_is_taken(flock_path, LOCK_EX), "flock still held after the child exited");
    fcntl(lease_fd, F_SETLEASE, F_UNLCK);
    unlink(posix_path);
    unlink(flock_path);
    unlink(shared_path);
    unlink(ofd_path);
    unlink(lease_path);
    return victim_finish();
}
