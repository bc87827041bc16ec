/* signalfd and timerfd: a signalfd reading SIGUSR2 and SIGRTMIN+1 (blocked)
 * with a SIGUSR2 already pending, a non-blocking one; a periodic monotonic
 * timerfd (1000 s left, 500 s interval), a realtime one-shot armed for 3 s
 * that fires after the restore, a disarmed one and one that expired unread. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "victim.h"

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR2);
    sigaddset(&mask, SIGRTMIN + 1);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int signals = signalfd(-1, &mask, 0);
    sigset_t other;
    sigemptyset(&other);
    sigaddset(&other, SIGRTMIN + 1);
    int nonblocking = signalfd(-1, &other, SFD_NONBLOCK);
    raise(SIGUSR2);

    int periodic = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec spec = { .it_interval = { 500, 0 }, .it_value = { 1000, 0 } };
    timerfd_settime(periodic, 0, &spec, NULL);
    int once = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
    struct itimerspec three_seconds = { .it_value = { 3, 0 } };
    timerfd_settime(once, 0, &three_seconds, NULL);
    int disarmed = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    int expired = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec soon = { .it_value = { 0, 1000000 } };
    timerfd_settime(expired, 0, &soon, NULL);
    usleep(20000);
    victim_ready();
    victim_wait();

    struct signalfd_siginfo info;
    victim_check(read(signals, &info, sizeof(info)) == sizeof(info) && info.ssi_signo == SIGUSR2, "signalfd did not read SIGUSR2");
    victim_check(fcntl(nonblocking, F_GETFL) & O_NONBLOCK, "signalfd lost O_NONBLOCK");
    victim_check(read(nonblocking, &info, sizeof(info)) < 0, "the non-blocking signalfd should have nothing");
    raise(SIGRTMIN + 1);
    victim_check(read(nonblocking, &info, sizeof(info)) == sizeof(info) && info.ssi_signo == (uint32_t)(SIGRTMIN + 1),
                 "the signalfd mask changed");

    struct itimerspec left;
    victim_check(timerfd_gettime(periodic, &left) == 0 && left.it_interval.tv_sec == 500 && left.it_value.tv_sec <= 1000
                     && left.it_value.tv_sec > 900,
                 "periodic timerfd: %ld s left, interval %ld", (long)left.it_value.tv_sec, (long)left.it_interval.tv_sec);
    victim_check(timerfd_gettime(disarmed, &left) == 0 && left.it_value.tv_sec == 0 && left.it_value.tv_nsec == 0,
                 "the disarmed timerfd is armed");
    uint64_t ticks = 0;
    struct pollfd ready = { .fd = expired, .events = POLLIN };
    victim_check(poll(&ready, 1, 1000) == 1 && read(expired, &ticks, sizeof(ticks)) == sizeof(ticks) && ticks >= 1,
                 "the expired timerfd lost its expiration");
    struct pollfd fires = { .fd = once, .events = POLLIN };
    victim_check(poll(&fires, 1, 5000) == 1 && read(once, &ticks, sizeof(ticks)) == sizeof(ticks) && ticks == 1,
                 "the realtime timerfd does not fire");
    return victim_finish();
}
