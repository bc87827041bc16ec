/* The victim of the fault-injection walks (tests/e2e/fault_test.cpp): a bit
 * of everything a dump or restore touches, and a check that a failed or
 * killed cryo left nothing behind.
 *
 * The root has three threads, each with its own signal mask: one counting
 * in user mode, one blocked in read() on a pipe (its syscall must restart,
 * not return an error), one sleeping in nanosleep() loops. It has two
 * children: one in its own process group that shares anonymous memory with
 * the root, one with a unix socket to the root and a child of its own; and
 * a zombie that exited with code 5. The root also holds a regular file at
 * an offset, a pipe with unread data, an eventfd, an epoll set watching it,
 * a memfd and a socketpair with queued data.
 *
 * Before READY it logs "PIDS p ..." (every pid and tid of the tree, the
 * zombie's too). Each process records its memory map, its descriptors and
 * the signal masks and tracers of its threads when ready; after SIGUSR1 it
 * checks they are the same (no scratch mapping, extra descriptor, blocked
 * signals or stopped thread left over) and that its data is intact. With
 * the argument "restored" (the tree went through a real dump and restore)
 * the memory map is not compared and the descriptors only by kind (pipes
 * and sockets are new ones then). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "victim.h"

static int restored_mode;

/* ------------------------------------------------------------ snapshots */

struct snapshot {
    char maps[32768];
    char fds[8192];
    char tasks[4096];
};

/* Per thread: its signal mask and tracer, and that it is not stopped. */
static void list_tasks(char *out, size_t size)
{
    out[0] = 0;
    DIR *dir = opendir("/proc/self/task");
    if (!dir)
        return;
    struct dirent *entry;
    char lines[16][160];
    int count = 0;
    while ((entry = readdir(dir)) && count < 16) {
        if (entry->d_name[0] == '.')
            continue;
        char path[128], status[4096];
        snprintf(path, sizeof(path), "/proc/self/task/%.16s/status", entry->d_name);
        victim_read_text(path, status, sizeof(status));
        const char *blocked = strstr(status, "SigBlk:");
        const char *tracer = strstr(status, "TracerPid:");
        const char *state = strstr(status, "State:");
        int blocked_length = blocked ? (int)strcspn(blocked, "\n") : 0;
        int tracer_length = tracer ? (int)strcspn(tracer, "\n") : 0;
        int stopped = state && (state[7] == 'T' || state[7] == 't');
        snprintf(lines[count++], sizeof(lines[0]), "%.16s %.*s %.*s%s\n", entry->d_name, blocked_length,
                 blocked ? blocked : "", tracer_length, tracer ? tracer : "", stopped ? " STOPPED" : "");
    }
    closedir(dir);
    for (int i = 0; i < count; ++i)
        for (int j = i + 1; j < count; ++j)
            if (strcmp(lines[j], lines[i]) < 0) {
                char swap[160];
                memcpy(swap, lines[i], sizeof(swap));
                memcpy(lines[i], lines[j], sizeof(swap));
                memcpy(lines[j], swap, sizeof(swap));
            }
    for (int i = 0; i < count; ++i)
        strncat(out, lines[i], size - strlen(out) - 1);
}

static void take_snapshot(struct snapshot *snapshot)
{
    /* opendir() may create the heap: the memory map comes last. */
    /* In restored mode pipes and sockets are new ones: compare them by kind. */
    victim_list_fds(snapshot->fds, sizeof(snapshot->fds), restored_mode);
    list_tasks(snapshot->tasks, sizeof(snapshot->tasks));
    victim_read_maps(snapshot->maps, sizeof(snapshot->maps));
}

static void compare_snapshot(const char *who, const struct snapshot *before)
{
    static struct snapshot now;
    take_snapshot(&now);
    if (!restored_mode)
        victim_check(strcmp(before->maps, now.maps) == 0, "%s: memory map changed at: %.200s (now %.200s)", who,
                     victim_first_difference(before->maps, now.maps), victim_first_difference(now.maps, before->maps));
    victim_check(strcmp(before->fds, now.fds) == 0, "%s: descriptors changed at: %.200s (now %.200s)", who,
                 victim_first_difference(before->fds, now.fds), victim_first_difference(now.fds, before->fds));
    victim_check(strcmp(before->tasks, now.tasks) == 0, "%s: threads changed: was\n%s now\n%s", who, before->tasks,
                 now.tasks);
}

/* ------------------------------------------------------------ threads */

static volatile unsigned long counter;
static volatile int thread_ready[3];
static pid_t thread_tids[3];
static int blocked_pipe[2];
static volatile int sleeps_done;
static volatile int finishing;   /* set by the root once it checked them */

static void set_mask(int first, int second)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, first);
    sigaddset(&mask, second);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
}

static void check_mask(const char *who, int first, int second)
{
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    int others = 0;
    for (int signal = 1; signal < 65; ++signal)
        if (signal != first && signal != second && sigismember(&now, signal))
            ++others;
    victim_check(sigismember(&now, first) && sigismember(&now, second) && others == 0,
                 "%s: signal mask changed (%d other signals blocked)", who, others);
}

static void *counting(void *argument)
{
    (void)argument;
    set_mask(SIGUSR1, SIGRTMIN);
    thread_tids[0] = gettid();
    thread_ready[0] = 1;
    while (!finishing)
        counter++;
    check_mask("counting thread", SIGUSR1, SIGRTMIN);
    return NULL;
}

static void *reading(void *argument)
{
    (void)argument;
    set_mask(SIGUSR1, SIGRTMIN + 1);
    thread_tids[1] = gettid();
    thread_ready[1] = 1;
    char byte = 0;
    ssize_t got;
    /* Blocked here through every dump; only the root's 'x' ends it. */
    do
        got = read(blocked_pipe[0], &byte, 1);
    while (got < 0 && errno == EINTR);
    victim_check(got == 1 && byte == 'x', "reading thread: read() returned %zd (errno %d), byte %d", got,
                 got < 0 ? errno : 0, byte);
    check_mask("reading thread", SIGUSR1, SIGRTMIN + 1);
    return NULL;
}

static void *sleeping(void *argument)
{
    (void)argument;
    set_mask(SIGUSR1, SIGRTMIN + 2);
    thread_tids[2] = gettid();
    thread_ready[2] = 1;
    while (!finishing) {
        struct timespec nap = { 0, 5 * 1000 * 1000 };
        int result = nanosleep(&nap, NULL);
        victim_check(result == 0 || errno == EINTR, "sleeping thread: nanosleep failed with errno %d", errno);
        if (result != 0 && errno != EINTR)
            break;
        sleeps_done++;
    }
    check_mask("sleeping thread", SIGUSR1, SIGRTMIN + 2);
    return NULL;
}

/* ------------------------------------------------------------ children */

static struct snapshot own_snapshot;

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    restored_mode = argc > 2 && strcmp(argv[2], "restored") == 0;
    pid_t root = getpid();

    volatile int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *pattern = mmap(NULL, 64 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED || pattern == MAP_FAILED)
        return 2;
    for (int i = 0; i < 64 * 4096; i += 512)
        pattern[i] = (char)(i / 512 + 1);

    /* The descriptors of the root (the children inherit them too). */
    char path[4200];
    snprintf(path, sizeof(path), "%s.file", argv[1]);
    int file = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char text[100];
    for (int i = 0; i < 100; ++i)
        text[i] = (char)('a' + i % 26);
    if (file < 0 || write(file, text, sizeof(text)) != sizeof(text) || lseek(file, 37, SEEK_SET) != 37)
        return 2;
    int data_pipe[2], socket_pair[2], child_socket[2], child_pipe[2];
    if (pipe(data_pipe) || pipe(blocked_pipe) || pipe(child_pipe) || socketpair(AF_UNIX, SOCK_STREAM, 0, socket_pair)
        || socketpair(AF_UNIX, SOCK_STREAM, 0, child_socket))
        return 2;
    if (write(data_pipe[1], "abc", 3) != 3 || write(socket_pair[0], "queued-data", 11) != 11)
        return 2;
    int counter_fd = eventfd(5, EFD_NONBLOCK | EFD_CLOEXEC);
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = { .events = EPOLLIN, .data.u64 = 77 };
    if (counter_fd < 0 || epoll < 0 || epoll_ctl(epoll, EPOLL_CTL_ADD, counter_fd, &event))
        return 2;
    int memfd = memfd_create("fault-mix", MFD_CLOEXEC);
    if (memfd < 0 || write(memfd, "memfd-content", 13) != 13)
        return 2;
    /* Each descendant writes a byte here once it took its snapshot. */
    int settled[2];
    if (pipe(settled))
        return 2;

    pid_t zombie = fork();
    if (zombie == 0)
        _exit(5);

    pid_t sharing = fork();
    if (sharing == 0) {
        setpgid(0, 0);
        close(child_pipe[1]);
        take_snapshot(&own_snapshot);
        if (write(settled[1], "s", 1) != 1)
            _exit(2);
        victim_wait();
        compare_snapshot("sharing child", &own_snapshot);
        char buffer[16] = "";
        victim_check(victim_read_exactly(child_pipe[0], buffer, 8) && memcmp(buffer, "to-child", 8) == 0,
                     "sharing child read '%s'", buffer);
        for (int i = 0; i < 500 && shared[0] != 42; ++i)
            usleep(10000);
        victim_check(shared[0] == 42 && shared[1] == 7, "shared memory not shared: %d %d", shared[0], shared[1]);
        for (int i = 0; i < 64 * 4096; i += 512)
            if (pattern[i] != (char)(i / 512 + 1)) {
                victim_check(0, "sharing child: private memory changed at %d", i);
                break;
            }
        _exit(victim_failures() ? 1 : 0);
    }
    int grandchild_pid[2];
    if (pipe(grandchild_pid))
        return 2;
    pid_t talking = fork();
    if (talking == 0) {
        close(child_socket[0]);
        pid_t grandchild = fork();
        if (grandchild == 0) {
            take_snapshot(&own_snapshot);
            if (write(settled[1], "g", 1) != 1)
                _exit(2);
            victim_wait();
            compare_snapshot("grandchild", &own_snapshot);
            _exit(victim_failures() ? 1 : 0);
        }
        if (write(grandchild_pid[1], &grandchild, sizeof(grandchild)) != sizeof(grandchild))
            _exit(2);
        take_snapshot(&own_snapshot);
        if (write(settled[1], "t", 1) != 1)
            _exit(2);
        victim_wait();
        compare_snapshot("talking child", &own_snapshot);
        kill(grandchild, SIGUSR1);
        char buffer[16] = "";
        victim_check(victim_read_exactly(child_socket[1], buffer, 10) && memcmp(buffer, "over-there", 10) == 0,
                     "talking child read '%s'", buffer);
        int status = 0;
        victim_check(waitpid(grandchild, &status, 0) == grandchild && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                     "grandchild status %#x", status);
        _exit(victim_failures() ? 1 : 0);
    }
    pid_t grandchild = 0;
    if (!victim_read_exactly(grandchild_pid[0], (char *)&grandchild, sizeof(grandchild)))
        return 2;
    close(grandchild_pid[0]);
    close(grandchild_pid[1]);
    if (write(child_socket[0], "over-there", 10) != 10 || write(child_pipe[1], "to-child", 8) != 8)
        return 2;
    shared[1] = 7;

    pthread_t threads[3];
    pthread_create(&threads[0], NULL, counting, NULL);
    pthread_create(&threads[1], NULL, reading, NULL);
    pthread_create(&threads[2], NULL, sleeping, NULL);
    while (!thread_ready[0] || !thread_ready[1] || !thread_ready[2])
        usleep(1000);
    /* Let the descendants take their snapshots and the zombie exit. */
    char settled_bytes[3];
    siginfo_t exited;
    if (!victim_read_exactly(settled[0], settled_bytes, 3) || waitid(P_PID, (id_t)zombie, &exited, WEXITED | WNOWAIT))
        return 2;
    take_snapshot(&own_snapshot);
    victim_say("PIDS %d %d %d %d %d %d %d %d", root, thread_tids[0], thread_tids[1], thread_tids[2], zombie, sharing,
               talking, grandchild);
    victim_ready();
    victim_wait();

    compare_snapshot("root", &own_snapshot);
    victim_check(getpid() == root, "pid %d, was %d", getpid(), root);
    unsigned long counted = counter;
    int slept = sleeps_done;
    /* Both threads must go on (given up to 5 s on a busy machine). */
    for (int i = 0; i < 500 && (counter <= counted || sleeps_done <= slept); ++i)
        usleep(10000);
    victim_check(counter > counted, "the counting thread stopped");
    victim_check(sleeps_done > slept, "the sleeping thread stopped");
    finishing = 1;
    if (write(blocked_pipe[1], "x", 1) != 1)
        victim_check(0, "write to the reading thread");
    for (int i = 0; i < 3; ++i)
        pthread_join(threads[i], NULL);

    char buffer[32] = "";
    victim_check(lseek(file, 0, SEEK_CUR) == 37, "file offset %ld", (long)lseek(file, 0, SEEK_CUR));
    victim_check(read(file, buffer, 3) == 3 && memcmp(buffer, "lmn", 3) == 0, "file read '%.3s'", buffer);
    fcntl(data_pipe[0], F_SETFL, O_NONBLOCK);
    memset(buffer, 0, sizeof(buffer));
    victim_check(read(data_pipe[0], buffer, sizeof(buffer)) == 3 && memcmp(buffer, "abc", 3) == 0, "pipe held '%s'",
                 buffer);
    struct epoll_event ready = { 0 };
    victim_check(epoll_wait(epoll, &ready, 1, 1000) == 1 && ready.data.u64 == 77, "epoll: eventfd not ready");
    uint64_t value = 0;
    victim_check(read(counter_fd, &value, sizeof(value)) == sizeof(value) && value == 5, "eventfd count %lu",
                 (unsigned long)value);
    memset(buffer, 0, sizeof(buffer));
    victim_check(pread(memfd, buffer, sizeof(buffer), 0) == 13 && memcmp(buffer, "memfd-content", 13) == 0,
                 "memfd held '%s'", buffer);
    memset(buffer, 0, sizeof(buffer));
    victim_check(victim_read_exactly(socket_pair[1], buffer, 11) && memcmp(buffer, "queued-data", 11) == 0,
                 "socketpair held '%s'", buffer);
    for (int i = 0; i < 64 * 4096; i += 512)
        if (pattern[i] != (char)(i / 512 + 1)) {
            victim_check(0, "private memory changed at %d", i);
            break;
        }

    shared[0] = 42;
    kill(sharing, SIGUSR1);
    kill(talking, SIGUSR1);
    int status = 0;
    victim_check(waitpid(zombie, &status, 0) == zombie && WIFEXITED(status) && WEXITSTATUS(status) == 5,
                 "zombie status %#x", status);
    victim_check(waitpid(sharing, &status, 0) == sharing && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "sharing child status %#x", status);
    victim_check(waitpid(talking, &status, 0) == talking && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "talking child status %#x", status);
    /* The file stays: the checkpoint is restored more than once. */
    return victim_finish();
}
