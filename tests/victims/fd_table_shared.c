/* Processes sharing one fd table (clone(CLONE_FILES) without CLONE_THREAD,
 * zdtm fd01): two children share the root's table, a third (fork) has a copy
 * of its own. The first sharer forked a child with a copy of the shared
 * table; the second cloned a grandchild that shares it too. The root holds a
 * file at a high number (1000) and a pipe. After restore: kcmp(KCMP_FILES)
 * finds the tables shared or not as they were; the first sharer opens fd 77
 * (the root sees it), the second closes the pipe's read end (the root sees
 * it closed), the forked child sees neither. Every process but the root
 * checks its parent and fd 1000 itself. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

#define HIGH_FD 1000
#define OPENED_FD 77

static char stacks[3][64 * 1024] __attribute__((aligned(16)));
static pid_t root;
static int pipe_read = -1;

static int same_table(pid_t a, pid_t b)
{
    return syscall(SYS_kcmp, a, b, KCMP_FILES, 0, 0) == 0;
}

static int check_common(const char *who)
{
    victim_check(getppid() == root, "%s: parent %d, expected %d", who, getppid(), root);
    char path[64] = { 0 };
    victim_check(readlink("/proc/self/fd/1000", path, sizeof(path) - 1) > 0 && strcmp(path, "/dev/null") == 0,
                 "%s: fd %d is '%s', expected /dev/null", who, HIGH_FD, path);
    return victim_failures();
}

static void reap(pid_t child, const char *who);

/* A child of the opener, with a copy of the shared table. */
static void copy_of_shared(pid_t opener_pid)
{
    victim_wait();
    victim_check(!same_table(getpid(), root), "child of the opener: its fd table is the root's");
    victim_check(getppid() == opener_pid, "child of the opener: parent %d, expected %d", getppid(), opener_pid);
    char path[64] = { 0 };
    victim_check(readlink("/proc/self/fd/1000", path, sizeof(path) - 1) > 0 && strcmp(path, "/dev/null") == 0,
                 "child of the opener: fd %d is '%s', expected /dev/null", HIGH_FD, path);
    _exit(victim_failures() ? 1 : 0);
}

/* A child of the closer that shares the table too. */
static int sharing_grandchild(void *closer_pid)
{
    victim_wait();
    victim_check(same_table(getpid(), root), "grandchild: its fd table is not the root's");
    victim_check(getppid() == *(pid_t *)closer_pid, "grandchild: parent %d, expected %d", getppid(), *(pid_t *)closer_pid);
    return victim_failures() ? 1 : 0;
}

static int opener(void *unused)
{
    (void)unused;
    pid_t me = getpid();
    pid_t child = fork();
    if (child == 0)
        copy_of_shared(me);
    victim_wait();
    kill(child, SIGUSR1);
    reap(child, "child of the opener");
    victim_check(same_table(getpid(), root), "opener: its fd table is not the root's");
    int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    victim_check(fd >= 0 && dup2(fd, OPENED_FD) == OPENED_FD, "opener: dup2 to fd %d", OPENED_FD);
    return check_common("opener") ? 1 : 0;
}

static int closer(void *unused)
{
    (void)unused;
    static pid_t me;
    me = getpid();
    pid_t grandchild = clone(sharing_grandchild, stacks[2] + sizeof(stacks[2]), CLONE_FILES | SIGCHLD, &me);
    victim_wait();
    kill(grandchild, SIGUSR1);
    reap(grandchild, "sharing grandchild");
    victim_check(same_table(getpid(), root), "closer: its fd table is not the root's");
    victim_check(close(pipe_read) == 0, "closer: close of the pipe's read end %d", pipe_read);
    return check_common("closer") ? 1 : 0;
}

static void reap(pid_t child, const char *who)
{
    int status = -1;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "%s: status %#x", who, status);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    root = getpid();
    int null = open("/dev/null", O_RDONLY);
    int ends[2];
    if (null < 0 || dup2(null, HIGH_FD) != HIGH_FD || close(null) != 0 || pipe(ends) != 0)
        return 2;
    pipe_read = ends[0];
    pid_t sharers[2];
    sharers[0] = clone(opener, stacks[0] + sizeof(stacks[0]), CLONE_FILES | SIGCHLD, NULL);
    pid_t copy = fork();
    if (copy == 0) {
        victim_wait();
        victim_check(!same_table(getpid(), root), "forked child: its fd table is the root's");
        victim_check(fcntl(OPENED_FD, F_GETFD) < 0, "forked child: fd %d of the opener is in its table", OPENED_FD);
        victim_check(fcntl(pipe_read, F_GETFD) >= 0, "forked child: its copy of the pipe's read end is closed");
        _exit(check_common("forked child") ? 1 : 0);
    }
    sharers[1] = clone(closer, stacks[1] + sizeof(stacks[1]), CLONE_FILES | SIGCHLD, NULL);
    if (sharers[0] < 0 || sharers[1] < 0 || copy < 0)
        return 2;
    victim_ready();
    victim_wait();
    victim_check(same_table(root, sharers[0]) && same_table(root, sharers[1]), "the children's fd tables are not the root's");
    victim_check(!same_table(root, copy), "the forked child's fd table is the root's");
    kill(sharers[0], SIGUSR1);
    reap(sharers[0], "opener");
    victim_check(fcntl(OPENED_FD, F_GETFD) >= 0, "fd %d the opener opened is not in the shared table", OPENED_FD);
    kill(sharers[1], SIGUSR1);
    reap(sharers[1], "closer");
    victim_check(fcntl(pipe_read, F_GETFD) < 0, "the pipe's read end the closer closed is still open");
    kill(copy, SIGUSR1);
    reap(copy, "forked child");
    victim_check(fcntl(HIGH_FD, F_GETFD) >= 0, "fd %d is gone", HIGH_FD);
    return victim_finish();
}
