/* POSIX timers (timer_create): a periodic CLOCK_MONOTONIC timer with a
 * signal and a value, a disarmed CLOCK_REALTIME timer without notification,
 * and a one-shot timer aimed at the main thread that fires after the
 * restore. Ids, clocks, time left, intervals and deliveries must survive,
 * and the one-shot timer stays aimed at a thread ("signal/tid" in
 * /proc/self/timers: glibc's SIGEV_THREAD timers are such, zdtm
 * pthread_timers). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "victim.h"

static volatile sig_atomic_t fired;
static volatile int fired_value;

static void on_timer(int signal, siginfo_t *info, void *context)
{
    (void)signal;
    (void)context;
    fired++;
    fired_value = info->si_value.sival_int;
}

static int count_timer_lines(const char *prefix, const char *part)
{
    FILE *timers = fopen("/proc/self/timers", "r");
    char line[256];
    int count = 0;
    while (timers && fgets(line, sizeof(line), timers))
        count += strncmp(line, prefix, strlen(prefix)) == 0 && strstr(line, part) != NULL;
    if (timers)
        fclose(timers);
    return count;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = on_timer;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN + 3, &action, NULL);

    timer_t periodic, silent, once;
    struct sigevent event;
    memset(&event, 0, sizeof(event));
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = SIGRTMIN + 4;
    event.sigev_value.sival_int = 0x1234;
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGRTMIN + 4);
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    if (timer_create(CLOCK_MONOTONIC, &event, &periodic))
        return 2;
    struct itimerspec spec = { .it_interval = { 5, 0 }, .it_value = { 100, 0 } };
    timer_settime(periodic, 0, &spec, NULL);
    memset(&event, 0, sizeof(event));
    event.sigev_notify = SIGEV_NONE;
    if (timer_create(CLOCK_REALTIME, &event, &silent))
        return 2;
    memset(&event, 0, sizeof(event));
    event.sigev_notify = SIGEV_THREAD_ID;
    event.sigev_signo = SIGRTMIN + 3;
    event.sigev_value.sival_int = 77;
    event._sigev_un._tid = gettid();
    if (timer_create(CLOCK_MONOTONIC, &event, &once))
        return 2;
    struct itimerspec one_shot = { .it_value = { 3, 0 } };
    timer_settime(once, 0, &one_shot, NULL);

    victim_ready();
    victim_wait();

    struct itimerspec now;
    victim_check(timer_gettime(periodic, &now) == 0 && now.it_interval.tv_sec == 5 && now.it_value.tv_sec <= 100
                     && (now.it_value.tv_sec > 0 || now.it_value.tv_nsec > 0),
                 "periodic timer: %ld s left, interval %ld s", (long)now.it_value.tv_sec, (long)now.it_interval.tv_sec);
    victim_check(timer_gettime(silent, &now) == 0 && now.it_value.tv_sec == 0 && now.it_value.tv_nsec == 0,
                 "the disarmed timer is armed");
    victim_check(count_timer_lines("ID:", "") == 3, "%d timers in /proc/self/timers", count_timer_lines("ID:", ""));
    victim_check(count_timer_lines("notify:", "/tid.") == 1, "%d timers aimed at a thread",
                 count_timer_lines("notify:", "/tid."));
    for (int i = 0; i < 1000 && !fired; ++i)
        usleep(10000);
    victim_check(fired == 1 && fired_value == 77, "one-shot timer fired %d times, value %d", (int)fired, fired_value);
    victim_check(timer_delete(periodic) == 0 && timer_delete(silent) == 0 && timer_delete(once) == 0,
                 "the timer ids are not the same any more");
    return victim_finish();
}
