/* pidfds: to a live child (two fds sharing one open file and a second,
 * PIDFD_NONBLOCK open file), to a zombie child, to children that died and
 * were reaped (two pidfds to one of them; one exited, one killed by a
 * signal), to itself with PIDFD_THREAD and to one of its threads.
 *
 * After the restore it checks that each pidfd still refers to the same
 * process (the pidfs inode is one per process, so pidfds to one process
 * have equal inodes and pidfds to different ones do not), what
 * PIDFD_GET_INFO reports (pid, tgid, exit status of the dead), the flags,
 * the sharing of open files, and that waitid(P_PIDFD) collects the live
 * child's and the zombie's exit codes.
 *
 * With "outside" it also holds a pidfd to its parent, a process outside
 * its tree, which cryo must refuse to dump. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include "victim.h"

/* PIDFD_GET_INFO (Linux 6.13; exit status since 6.15), newer than the
 * system headers. */
struct pidfd_info_v0 {
    uint64_t mask, cgroupid;
    uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
    int32_t exit_code;
};
#define GET_INFO _IOWR(0xFF, 11, struct pidfd_info_v0)
#define INFO_PID 1ull
#define INFO_EXIT 8ull
#define THREAD_FLAG O_EXCL
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

enum { LIVE = 20, LIVE_DUP = 21, LIVE_NONBLOCK = 22, EXITED = 23, EXITED_AGAIN = 24, KILLED = 25, SELF_THREAD = 26,
       OTHER_THREAD = 27, ZOMBIE = 28, PARENT = 29 };

static int pidfd_open(pid_t pid, unsigned flags) { return (int)syscall(SYS_pidfd_open, pid, flags); }

static void place(int fd, int number)
{
    if (fd < 0 || dup2(fd, number) != number)
        _exit(2);
    close(fd);
}

static uint64_t inode_of(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static int info_of(int fd, struct pidfd_info_v0 *info)
{
    memset(info, 0, sizeof(*info));
    info->mask = INFO_PID | INFO_EXIT;
    return ioctl(fd, GET_INFO, info);
}

static pid_t thread_tid;
static int thread_go[2];

static void *thread_main(void *unused)
{
    (void)unused;
    thread_tid = gettid();
    char byte;
    while (read(thread_go[0], &byte, 1) < 0 && errno == EINTR) {}
    return NULL;
}

/* A child that is reaped before the checkpoint, dying the given way. */
static pid_t dead_child(int exit_code, int signal, int numbers[], int count)
{
    int go[2];
    if (pipe(go))
        _exit(2);
    pid_t child = fork();
    if (child == 0) {
        close(go[1]);
        char byte;
        while (read(go[0], &byte, 1) < 0 && errno == EINTR) {}
        if (signal)
            kill(getpid(), signal);
        _exit(exit_code);
    }
    for (int i = 0; i < count; ++i)
        place(pidfd_open(child, 0), numbers[i]);
    close(go[0]);
    close(go[1]);
    int status;
    if (waitpid(child, &status, 0) != child)
        _exit(2);
    return child;
}

static void check_info(int fd, const char *name, pid_t pid, pid_t tgid)
{
    struct pidfd_info_v0 info;
    victim_check(info_of(fd, &info) == 0, "%s: PIDFD_GET_INFO: %s", name, strerror(errno));
    victim_check((int)info.pid == pid && (int)info.tgid == tgid, "%s: PIDFD_GET_INFO pid %u tgid %u, expected %d %d",
                 name, info.pid, info.tgid, pid, tgid);
}

static void check_dead(int fd, const char *name, int status)
{
    struct pidfd_info_v0 info;
    victim_check(info_of(fd, &info) == 0, "%s: PIDFD_GET_INFO: %s", name, strerror(errno));
    victim_check(info.mask & INFO_EXIT, "%s: no exit status (mask %llx)", name, (unsigned long long)info.mask);
    victim_check(info.exit_code == status, "%s: exit status %d, expected %d", name, info.exit_code, status);
    victim_check(syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0) < 0 && errno == ESRCH,
                 "%s: signal 0 to the dead process did not fail with ESRCH", name);
    struct pollfd poll_fd = { .fd = fd, .events = POLLIN };
    victim_check(poll(&poll_fd, 1, 0) == 1 && (poll_fd.revents & POLLIN), "%s: not readable (exited) in poll", name);
}

static int same_open_file(int a, int b) { return syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b) == 0; }

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    int outside = argc > 2 && strcmp(argv[2], "outside") == 0;
    pid_t self = getpid();

    int live_go[2];
    if (pipe(live_go))
        return 2;
    pid_t live = fork();
    if (live == 0) {
        close(live_go[1]);
        char byte;
        while (read(live_go[0], &byte, 1) < 0 && errno == EINTR) {}
        _exit(42);
    }
    close(live_go[0]);
    place(pidfd_open(live, 0), LIVE);
    if (dup2(LIVE, LIVE_DUP) != LIVE_DUP)
        return 2;
    place(pidfd_open(live, O_NONBLOCK), LIVE_NONBLOCK);

    pid_t zombie = fork();
    if (zombie == 0)
        _exit(5);
    place(pidfd_open(zombie, 0), ZOMBIE);
    siginfo_t zombie_info;
    memset(&zombie_info, 0, sizeof(zombie_info));
    if (waitid(P_PID, zombie, &zombie_info, WEXITED | WNOWAIT))   /* a zombie now */
        return 2;

    int exited_numbers[] = { EXITED, EXITED_AGAIN };
    pid_t exited = dead_child(7, 0, exited_numbers, 2);
    int killed_numbers[] = { KILLED };
    pid_t killed = dead_child(0, SIGTERM, killed_numbers, 1);

    place(pidfd_open(self, THREAD_FLAG), SELF_THREAD);
    if (pipe(thread_go))
        return 2;
    pthread_t thread;
    if (pthread_create(&thread, NULL, thread_main, NULL))
        return 2;
    while (__atomic_load_n(&thread_tid, __ATOMIC_SEQ_CST) == 0)
        usleep(1000);
    place(pidfd_open(thread_tid, THREAD_FLAG), OTHER_THREAD);
    if (outside)
        place(pidfd_open(getppid(), 0), PARENT);

    /* A child that inherited every pidfd: after the restore they must
     * still be the parent's open files, not copies. */
    int sharer_go[2];
    if (pipe(sharer_go))
        return 2;
    pid_t sharer = fork();
    if (sharer == 0) {
        close(sharer_go[1]);
        char byte;
        while (read(sharer_go[0], &byte, 1) < 0 && errno == EINTR) {}
        pid_t parent = getppid();
        int numbers[] = { LIVE, LIVE_NONBLOCK, EXITED, KILLED, SELF_THREAD, OTHER_THREAD, ZOMBIE };
        int failed = 0;
        for (unsigned i = 0; i < sizeof(numbers) / sizeof(numbers[0]); ++i)
            if (syscall(SYS_kcmp, parent, getpid(), KCMP_FILE, numbers[i], numbers[i]) != 0) {
                victim_say("FAIL: fd %d is no longer the open file the parent has", numbers[i]);
                failed = 1;
            }
        _exit(failed);
    }
    close(sharer_go[0]);

    victim_ready();
    victim_wait();

    /* Who is who. */
    check_info(LIVE, "live child", live, live);
    check_info(LIVE_NONBLOCK, "live child (nonblock)", live, live);
    check_info(SELF_THREAD, "itself", self, self);
    check_info(OTHER_THREAD, "its thread", thread_tid, self);
    check_info(ZOMBIE, "zombie", zombie, zombie);
    victim_check(inode_of(LIVE) == inode_of(LIVE_NONBLOCK), "two pidfds to the live child differ in inode");
    victim_check(inode_of(EXITED) == inode_of(EXITED_AGAIN), "two pidfds to one dead child differ in inode");
    victim_check(inode_of(EXITED) != inode_of(KILLED), "pidfds to two dead children have one inode");
    victim_check(inode_of(EXITED) != inode_of(LIVE) && inode_of(KILLED) != inode_of(SELF_THREAD),
                 "a dead child's pidfd has the inode of a live process");
    check_dead(EXITED, "exited child", 7 << 8);
    check_dead(EXITED_AGAIN, "exited child (second pidfd)", 7 << 8);
    check_dead(KILLED, "killed child", SIGTERM);
    (void)exited;
    (void)killed;

    /* Open files and flags. */
    victim_check(same_open_file(LIVE, LIVE_DUP), "dup of a pidfd is no longer the same open file");
    victim_check(!same_open_file(LIVE, LIVE_NONBLOCK), "two pidfd_open()s became one open file");
    victim_check(fcntl(LIVE_NONBLOCK, F_GETFL) & O_NONBLOCK, "PIDFD_NONBLOCK lost");
    victim_check(!(fcntl(LIVE, F_GETFL) & O_NONBLOCK), "O_NONBLOCK appeared on a blocking pidfd");
    victim_check(fcntl(SELF_THREAD, F_GETFL) & THREAD_FLAG, "PIDFD_THREAD lost on the pidfd to itself");
    victim_check(fcntl(OTHER_THREAD, F_GETFL) & THREAD_FLAG, "PIDFD_THREAD lost on the pidfd to its thread");
    victim_check((fcntl(LIVE, F_GETFD) & FD_CLOEXEC) == 0, "close-on-exec appeared");

    /* The live child: still running, then its exit code through the pidfd. */
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    victim_check(waitid(P_PIDFD, LIVE_NONBLOCK, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0,
                 "live child not running (si_pid %d)", info.si_pid);
    victim_check(syscall(SYS_pidfd_send_signal, LIVE, 0, NULL, 0) == 0, "signal 0 to the live child: %s", strerror(errno));
    if (write(live_go[1], "x", 1) != 1)
        victim_check(0, "cannot release the live child");
    memset(&info, 0, sizeof(info));
    victim_check(waitid(P_PIDFD, LIVE, &info, WEXITED) == 0, "waitid on the live child's pidfd: %s", strerror(errno));
    victim_check(info.si_pid == live && info.si_code == CLD_EXITED && info.si_status == 42,
                 "live child: pid %d code %d status %d", info.si_pid, info.si_code, info.si_status);
    memset(&info, 0, sizeof(info));
    victim_check(waitid(P_PIDFD, ZOMBIE, &info, WEXITED) == 0, "waitid on the zombie's pidfd: %s", strerror(errno));
    victim_check(info.si_pid == zombie && info.si_status == 5, "zombie: pid %d status %d", info.si_pid, info.si_status);

    if (write(sharer_go[1], "x", 1) != 1)
        victim_check(0, "cannot release the child sharing the pidfds");
    int sharer_status = 0;
    victim_check(waitpid(sharer, &sharer_status, 0) == sharer && WIFEXITED(sharer_status) && WEXITSTATUS(sharer_status) == 0,
                 "the child sharing the pidfds found copies (status %d)", sharer_status);

    if (write(thread_go[1], "x", 1) != 1 || pthread_join(thread, NULL))
        victim_check(0, "cannot join the thread");
    return victim_finish();
}
