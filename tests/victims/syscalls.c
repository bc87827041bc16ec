/* Frozen inside blocking system calls: nanosleep, clock_nanosleep with an
 * absolute deadline, poll, select and sigtimedwait, in a loop (or only one of
 * them: `syscalls LOG KIND`, so that the checkpoint surely lands inside that
 * call). After restore each call must complete with a sane result:
 *
 * - select and an absolute clock_nanosleep are restarted by the kernel
 *   (-ERESTARTNOHAND), so they must not fail with EINTR unless SIGUSR1 (our
 *   handler) interrupted them;
 * - nanosleep, poll and sigtimedwait may report EINTR when the checkpoint
 *   interrupted them (-ERESTART_RESTARTBLOCK is turned into EINTR, as CRIU
 *   does), with a consistent remaining time for nanosleep;
 * - a call that says its time ran out must really have waited that long. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "victim.h"

#define NAP_NS (50 * 1000 * 1000L)

static long long now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000000000LL + now.tv_nsec;
}

/* A call that reports a timeout must have lasted at least the timeout
 * (1 ms of slack for clock granularity). */
static void check_waited(const char *call, long long start)
{
    long long waited = now_ns() - start;
    victim_check(waited >= NAP_NS - 1000000, "%s returned after %lld ns, expected at least %ld", call, waited, NAP_NS);
}

/* EINTR without our SIGUSR1 behind it. */
static int spurious_eintr(int error) { return error == EINTR && !victim_released(); }

static void call_nanosleep(void)
{
    struct timespec nap = { 0, NAP_NS }, left = { -1, -1 };
    long long start = now_ns();
    int result = nanosleep(&nap, &left);
    int error = errno;
    if (result == 0)
        check_waited("nanosleep", start);
    else
        victim_check(error == EINTR && left.tv_sec == 0 && left.tv_nsec >= 0 && left.tv_nsec <= NAP_NS,
                     "nanosleep: errno %d (%s), left %ld.%09ld s", error, strerror(error), (long)left.tv_sec, left.tv_nsec);
}

static void call_clock_nanosleep(void)
{
    long long start = now_ns();
    struct timespec deadline = { (time_t)((start + NAP_NS) / 1000000000LL), (long)((start + NAP_NS) % 1000000000LL) };
    int result = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL);
    if (result == 0)
        victim_check(now_ns() >= start + NAP_NS, "clock_nanosleep(TIMER_ABSTIME) returned before its deadline");
    else
        victim_check(result == EINTR && !spurious_eintr(result), "clock_nanosleep(TIMER_ABSTIME): %d (%s)%s", result,
                     strerror(result), result == EINTR ? " without a signal: it was not restarted" : "");
}

static void call_poll(void)
{
    long long start = now_ns();
    int result = poll(NULL, 0, (int)(NAP_NS / 1000000));
    int error = errno;
    if (result == 0)
        check_waited("poll", start);
    else
        victim_check(result < 0 && error == EINTR, "poll: %d errno %d (%s)", result, error, strerror(error));
}

static void call_select(void)
{
    struct timeval timeout = { 0, NAP_NS / 1000 };
    long long start = now_ns();
    int result = select(0, NULL, NULL, NULL, &timeout);
    int error = errno;
    if (result == 0)
        check_waited("select", start);
    else
        victim_check(result < 0 && error == EINTR && !spurious_eintr(error), "select: %d errno %d (%s)%s", result, error,
                     strerror(error), error == EINTR ? " without a signal: it was not restarted" : "");
}

static void call_sigtimedwait(const sigset_t *waited)
{
    struct timespec wait_time = { 0, NAP_NS };
    long long start = now_ns();
    int result = sigtimedwait(waited, NULL, &wait_time);
    int error = errno;
    victim_check(result < 0 && (error == EAGAIN || error == EINTR), "sigtimedwait: %d errno %d (%s)", result, error, strerror(error));
    if (result < 0 && error == EAGAIN)
        check_waited("sigtimedwait", start);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    const char *only = argc > 2 ? argv[2] : "";
    const char *kinds[] = { "nanosleep", "clock_nanosleep", "poll", "select", "sigtimedwait" };
    int wanted[5];
    int known = only[0] == 0;
    for (int i = 0; i < 5; ++i) {
        wanted[i] = only[0] == 0 || strcmp(only, kinds[i]) == 0;
        known = known || wanted[i];
    }
    if (!known) {
        victim_say("unknown system call %s", only);
        return 2;
    }
    pid_t pid = getpid();
    sigset_t waited;
    sigemptyset(&waited);
    sigaddset(&waited, SIGRTMIN + 5);
    sigprocmask(SIG_BLOCK, &waited, NULL);
    victim_ready();
    long rounds = 0;
    long long start = now_ns();
    while (!victim_released()) {
        if (now_ns() - start > 120 * 1000000000LL) {
            victim_check(0, "no SIGUSR1 within 120 s");
            break;
        }
        if (wanted[0])
            call_nanosleep();
        if (wanted[1])
            call_clock_nanosleep();
        if (wanted[2])
            call_poll();
        if (wanted[3])
            call_select();
        if (wanted[4])
            call_sigtimedwait(&waited);
        rounds++;
    }
    victim_check(getpid() == pid, "pid %d, was %d", getpid(), pid);
    victim_check(rounds > 0, "no round completed");
    return victim_finish();
}
