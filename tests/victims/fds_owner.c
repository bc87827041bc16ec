/* Owners of open files and other per-file state zdtm-style tests check:
 * F_SETOWN_EX (process, thread) and F_SETSIG on pipes with
 * O_ASYNC, a signal that really arrives after restore when the pipe gets
 * data; mlock()ed memory stays locked; a file's atime and mtime set with
 * futimens() are unchanged. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "victim.h"

static volatile sig_atomic_t got_signal;
static volatile int signal_fd;

static void on_signal(int signal, siginfo_t *info, void *context)
{
    (void)context;
    got_signal = signal;
    signal_fd = info->si_fd;
}

static int async_pipe(int ends[2], int type, pid_t owner, int signal)
{
    if (pipe(ends) != 0)
        return -1;
    struct f_owner_ex who = { .type = type, .pid = owner };
    if (fcntl(ends[0], F_SETOWN_EX, &who) != 0 || (signal && fcntl(ends[0], F_SETSIG, signal) != 0)
        || fcntl(ends[0], F_SETFL, O_NONBLOCK | O_ASYNC) != 0)
        return -1;
    return 0;
}

static void check_owner(const char *what, int fd, int type, pid_t owner, int signal)
{
    struct f_owner_ex who = { 0 };
    fcntl(fd, F_GETOWN_EX, &who);
    victim_check((int)who.type == type && who.pid == owner, "%s: owner type %d pid %d, expected %d %d", what, who.type, who.pid,
                 type, owner);
    victim_check(fcntl(fd, F_GETSIG) == signal, "%s: F_GETSIG %d, expected %d", what, fcntl(fd, F_GETSIG), signal);
    victim_check((fcntl(fd, F_GETFL) & (O_NONBLOCK | O_ASYNC)) == (O_NONBLOCK | O_ASYNC), "%s: flags %#x", what,
                 fcntl(fd, F_GETFL));
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t pid = getpid();
    pid_t tid = (pid_t)syscall(SYS_gettid);
    int notify_signal = SIGRTMIN + 2;
    struct sigaction action = { .sa_sigaction = on_signal, .sa_flags = SA_SIGINFO | SA_RESTART };
    sigaction(notify_signal, &action, NULL);
    /* SIGIO of the thread-owned pipe (when its write end closes at exit)
     * must not kill us. No pipe is owned by the process group: the harness
     * shares it and would get SIGIO too. */
    signal(SIGIO, SIG_IGN);
    int by_process[2], by_thread[2];
    if (async_pipe(by_process, F_OWNER_PID, pid, notify_signal) || async_pipe(by_thread, F_OWNER_TID, tid, 0))
        return 2;
    signal_fd = -1;

    char *locked = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (locked == MAP_FAILED || mlock(locked, 8192) != 0)
        return 2;
    char path[4200];
    snprintf(path, sizeof(path), "%s.times", argv[1]);
    int timed = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    struct timespec times[2] = { { 1000, 5 }, { 2000, 7 } };
    if (timed < 0 || write(timed, "x", 1) != 1 || futimens(timed, times) != 0)
        return 2;

    victim_ready();
    victim_wait();

    check_owner("process-owned pipe", by_process[0], F_OWNER_PID, pid, notify_signal);
    check_owner("thread-owned pipe", by_thread[0], F_OWNER_TID, tid, 0);
    /* Data in the process-owned pipe raises its signal, with si_fd. */
    if (write(by_process[1], "x", 1) != 1)
        victim_check(0, "write to the pipe");
    for (int i = 0; i < 100 && !got_signal; ++i)
        usleep(10000);
    victim_check(got_signal == notify_signal && signal_fd == by_process[0], "signal %d fd %d after data", (int)got_signal,
                 (int)signal_fd);

    char line[256];
    int locked_kb = 0;
    FILE *status = fopen("/proc/self/status", "r");
    while (status && fgets(line, sizeof(line), status))
        if (strncmp(line, "VmLck:", 6) == 0)
            sscanf(line + 6, "%d", &locked_kb);
    if (status)
        fclose(status);
    victim_check(locked_kb >= 8, "VmLck %d kB", locked_kb);
    struct stat after;
    fstat(timed, &after);
    victim_check(after.st_atim.tv_sec == 1000 && after.st_atim.tv_nsec == 5 && after.st_mtim.tv_sec == 2000
                     && after.st_mtim.tv_nsec == 7,
                 "times %ld.%09ld %ld.%09ld", (long)after.st_atim.tv_sec, after.st_atim.tv_nsec, (long)after.st_mtim.tv_sec,
                 after.st_mtim.tv_nsec);
    unlink(path);
    return victim_finish();
}
