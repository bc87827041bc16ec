/* Signal state: handlers with their flags and masks, an ignored signal, the
 * blocked mask, a blocked SIGUSR2 pending before the checkpoint and
 * delivered after unblocking, two queued realtime signals delivered in order
 * with their values, the alternate stack (and a handler running on it), and
 * armed interval timers (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF). The
 * blocked and pending sets must be exactly what they were (cryo blocks
 * everything while it works on a process), and SA_RESETHAND must still act. */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "victim.h"

static volatile sig_atomic_t usr2_count, rt_count, prof_count, hup_count, on_altstack;
static volatile int rt_values[4];
static char alt_stack[1 << 16];

static void on_usr2(int signal)
{
    (void)signal;
    char here;
    on_altstack = &here >= alt_stack && &here < alt_stack + sizeof(alt_stack);
    usr2_count++;
}

static void on_rt(int signal, siginfo_t *info, void *context)
{
    (void)signal;
    (void)context;
    if (rt_count < 4)
        rt_values[rt_count] = info->si_value.sival_int;
    rt_count++;
}

static void on_prof(int signal) { (void)signal; prof_count++; }
static void on_hup(int signal)
{
    if (signal == SIGHUP)
        hup_count++;
}

/* Checks that `set` holds exactly the signals of `expected`. */
static void check_set(const char *what, const sigset_t *set, const sigset_t *expected)
{
    for (int signal = 1; signal <= SIGRTMAX; ++signal)
        victim_check(sigismember(set, signal) == sigismember(expected, signal), "%s: signal %d is%s in it", what, signal,
                     sigismember(set, signal) ? "" : " not");
}

static double cpu_seconds(clockid_t clock)
{
    struct timespec now;
    clock_gettime(clock, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t pid = getpid();
    struct sigaction action;

    memset(&action, 0, sizeof(action));
    action.sa_handler = on_usr2;
    action.sa_flags = SA_RESTART | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaddset(&action.sa_mask, SIGHUP);
    sigaddset(&action.sa_mask, SIGWINCH);
    sigaction(SIGUSR2, &action, NULL);

    memset(&action, 0, sizeof(action));
    action.sa_sigaction = on_rt;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN + 2, &action, NULL);

    memset(&action, 0, sizeof(action));
    action.sa_handler = on_hup;
    action.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigaction(SIGHUP, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&action, 0, sizeof(action));
    action.sa_handler = on_prof;
    action.sa_flags = SA_RESTART;
    sigaction(SIGPROF, &action, NULL);

    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR2);
    sigaddset(&blocked, SIGRTMIN + 2);
    sigaddset(&blocked, SIGTERM);
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    raise(SIGUSR2);
    union sigval value = { .sival_int = 41 };
    sigqueue(getpid(), SIGRTMIN + 2, value);
    value.sival_int = 42;
    sigqueue(getpid(), SIGRTMIN + 2, value);

    stack_t stack = { .ss_sp = alt_stack, .ss_size = sizeof(alt_stack), .ss_flags = 0 };
    sigaltstack(&stack, NULL);

    struct itimerval real = { .it_interval = { 500, 0 }, .it_value = { 1000, 0 } };
    setitimer(ITIMER_REAL, &real, NULL);
    signal(SIGALRM, on_hup);
    struct itimerval virtual_timer = { .it_interval = { 300, 0 }, .it_value = { 600, 0 } };
    setitimer(ITIMER_VIRTUAL, &virtual_timer, NULL);
    struct itimerval prof = { .it_interval = { 0, 0 }, .it_value = { 0, 300000 } };
    setitimer(ITIMER_PROF, &prof, NULL);

    victim_ready();
    victim_wait();

    victim_check(getpid() == pid, "pid %d, was %d", getpid(), pid);
    struct sigaction now;
    sigaction(SIGUSR2, NULL, &now);
    victim_check(now.sa_handler == on_usr2 && (now.sa_flags & SA_RESTART) && (now.sa_flags & SA_ONSTACK)
                     && sigismember(&now.sa_mask, SIGHUP) && sigismember(&now.sa_mask, SIGWINCH)
                     && !sigismember(&now.sa_mask, SIGINT),
                 "SIGUSR2 action changed (flags %#x)", now.sa_flags);
    sigaction(SIGRTMIN + 2, NULL, &now);
    victim_check(now.sa_sigaction == on_rt && (now.sa_flags & SA_SIGINFO), "realtime action changed");
    sigaction(SIGHUP, NULL, &now);
    victim_check(now.sa_handler == on_hup && (now.sa_flags & SA_RESETHAND) && (now.sa_flags & SA_NODEFER), "SIGHUP action changed");
    sigaction(SIGPIPE, NULL, &now);
    victim_check(now.sa_handler == SIG_IGN, "SIGPIPE is no longer ignored");
    sigaction(SIGINT, NULL, &now);
    victim_check(now.sa_handler == SIG_DFL, "SIGINT is no longer default");

    sigset_t mask, pending, expected_pending;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    check_set("blocked mask", &mask, &blocked);
    sigpending(&pending);
    sigemptyset(&expected_pending);
    sigaddset(&expected_pending, SIGUSR2);
    sigaddset(&expected_pending, SIGRTMIN + 2);
    check_set("pending signals", &pending, &expected_pending);

    stack_t current;
    sigaltstack(NULL, &current);
    victim_check(current.ss_sp == alt_stack && current.ss_size == sizeof(alt_stack), "sigaltstack changed");

    struct itimerval timer;
    getitimer(ITIMER_REAL, &timer);
    victim_check(timer.it_interval.tv_sec == 500 && timer.it_value.tv_sec > 0 && timer.it_value.tv_sec <= 1000,
                 "ITIMER_REAL %ld/%ld", (long)timer.it_value.tv_sec, (long)timer.it_interval.tv_sec);
    getitimer(ITIMER_VIRTUAL, &timer);
    victim_check(timer.it_interval.tv_sec == 300 && timer.it_value.tv_sec <= 600 && (timer.it_value.tv_sec > 0 || timer.it_value.tv_usec > 0),
                 "ITIMER_VIRTUAL %ld/%ld", (long)timer.it_value.tv_sec, (long)timer.it_interval.tv_sec);
    /* Not run yet: still about 0.3 s (getitimer rounds up to the tick). */
    getitimer(ITIMER_PROF, &timer);
    victim_check(timer.it_interval.tv_sec == 0 && timer.it_interval.tv_usec == 0 && timer.it_value.tv_sec == 0
                     && timer.it_value.tv_usec > 0 && timer.it_value.tv_usec <= 310000,
                 "ITIMER_PROF %ld.%06ld/%ld.%06ld", (long)timer.it_value.tv_sec, (long)timer.it_value.tv_usec,
                 (long)timer.it_interval.tv_sec, (long)timer.it_interval.tv_usec);

    sigprocmask(SIG_UNBLOCK, &blocked, NULL);
    victim_check(usr2_count == 1, "SIGUSR2 delivered %d times", (int)usr2_count);
    victim_check(on_altstack, "SIGUSR2 handler did not run on the alternate stack");
    victim_check(rt_count == 2 && rt_values[0] == 41 && rt_values[1] == 42, "realtime signals: %d, values %d %d", (int)rt_count,
                 rt_values[0], rt_values[1]);

    /* SA_RESETHAND: the handler runs once, then the action is the default. */
    raise(SIGHUP);
    sigaction(SIGHUP, NULL, &now);
    victim_check(hup_count == 1 && now.sa_handler == SIG_DFL, "SIGHUP: handler ran %d times, then action %p", (int)hup_count,
                 (void *)now.sa_handler);

    /* The profiling timer fires after 0.3 s of CPU time (at most 30 s of
     * spinning before giving up). */
    double start = cpu_seconds(CLOCK_MONOTONIC);
    while (prof_count == 0 && cpu_seconds(CLOCK_MONOTONIC) - start < 30) { }
    victim_check(prof_count == 1, "ITIMER_PROF fired %d times in %.1f s (%.2f s of CPU)", (int)prof_count,
                 cpu_seconds(CLOCK_MONOTONIC) - start, cpu_seconds(CLOCK_PROCESS_CPUTIME_ID));
    return victim_finish();
}
