/* signalfd and timerfd in detail.
 *
 * signalfds: one reading SIGUSR2 and SIGRTMIN+1 (both blocked) with a
 * SIGUSR2 already pending at the checkpoint; a non-blocking one reading
 * SIGRTMIN+1; one made with the raw system call whose mask holds signals 32
 * and 33 (glibc's own, which its sigaddset() refuses) and 64.
 *
 * timerfds: CLOCK_MONOTONIC with 1000 s left and a 500 s interval; a
 * CLOCK_REALTIME one-shot armed for 2 s that fires after the restore; a
 * disarmed one; a CLOCK_REALTIME one set to an absolute time 1000 s ahead
 * with TFD_TIMER_CANCEL_ON_SET; a periodic one (10 s) that expired once,
 * unread; a disarmed one holding 7 unread expirations put there with
 * TFD_IOC_SET_TICKS (left out where the kernel lacks that ioctl). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "victim.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

#define SECOND 1000000000ll

static uint64_t bit(int signal) { return 1ull << (signal - 1); }

/* The text after "KEY:" in /proc/self/fdinfo/FD (into `value`), or 0. */
static int fdinfo_value(int fd, const char *key, char *value, size_t size)
{
    char path[64], text[4096];
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
    int file = open(path, O_RDONLY | O_CLOEXEC);
    if (file < 0)
        return 0;
    ssize_t length = read(file, text, sizeof(text) - 1);
    close(file);
    if (length <= 0)
        return 0;
    text[length] = '\0';
    size_t key_length = strlen(key);
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, key_length) != 0 || line[key_length] != ':')
            continue;
        line += key_length + 1;
        while (*line == ' ' || *line == '\t')
            ++line;
        size_t end = strcspn(line, "\n");
        if (end >= size)
            end = size - 1;
        memcpy(value, line, end);
        value[end] = '\0';
        return 1;
    }
    return 0;
}

static unsigned long long fdinfo_number(int fd, const char *key, int base)
{
    char value[128];
    if (!fdinfo_value(fd, key, value, sizeof(value)))
        return ~0ull;
    return strtoull(value, NULL, base);
}

static long long nanoseconds(struct timespec time) { return time.tv_sec * SECOND + time.tv_nsec; }

static long long now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return nanoseconds(now);
}

/* One signal from a signalfd, waiting at most a second; 0 if none. */
static uint32_t read_signal(int fd)
{
    struct pollfd ready = { .fd = fd, .events = POLLIN };
    struct signalfd_siginfo info;
    if (poll(&ready, 1, 1000) != 1 || read(fd, &info, sizeof(info)) != sizeof(info))
        return 0;
    return info.ssi_signo;
}

static void check_timer(int fd, const char *name, long long most, long long least, long long interval, int clock)
{
    struct itimerspec left;
    victim_check(timerfd_gettime(fd, &left) == 0, "%s: timerfd_gettime: %s", name, strerror(errno));
    long long value = nanoseconds(left.it_value);
    victim_check(value <= most && value >= least, "%s: %lld ns left, expected %lld..%lld", name, value, least, most);
    victim_check(nanoseconds(left.it_interval) == interval, "%s: interval %lld ns, expected %lld", name,
                 nanoseconds(left.it_interval), interval);
    unsigned long long clock_id = fdinfo_number(fd, "clockid", 10);
    victim_check(clock_id == (unsigned long long)clock, "%s: clock %llu, expected %d", name, clock_id, clock);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR2);
    sigaddset(&mask, SIGRTMIN + 1);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int signals = signalfd(-1, &mask, 0);
    sigset_t rt_only;
    sigemptyset(&rt_only);
    sigaddset(&rt_only, SIGRTMIN + 1);
    int nonblocking = signalfd(-1, &rt_only, SFD_NONBLOCK);
    uint64_t raw_mask = bit(32) | bit(33) | bit(64);
    int raw = (int)syscall(SYS_signalfd4, -1, &raw_mask, sizeof(raw_mask), 0);
    if (signals < 0 || nonblocking < 0 || raw < 0)
        return 2;
    raise(SIGUSR2);
    uint64_t signals_mask = bit(SIGUSR2) | bit(SIGRTMIN + 1);

    int periodic = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec periodic_spec = { .it_interval = { 500, 0 }, .it_value = { 1000, 0 } };
    int once = timerfd_create(CLOCK_REALTIME, 0);
    struct itimerspec two_seconds = { .it_value = { 2, 0 } };
    int disarmed = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    int absolute = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
    struct itimerspec absolute_spec = { .it_value = { 0, 0 } };
    clock_gettime(CLOCK_REALTIME, &absolute_spec.it_value);
    absolute_spec.it_value.tv_sec += 1000;
    int expired = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec expired_spec = { .it_interval = { 10, 0 }, .it_value = { 0, 1000000 } };
    int seven = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK);
    if (periodic < 0 || once < 0 || disarmed < 0 || absolute < 0 || expired < 0 || seven < 0)
        return 2;
    if (timerfd_settime(periodic, 0, &periodic_spec, NULL) || timerfd_settime(once, 0, &two_seconds, NULL)
        || timerfd_settime(absolute, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &absolute_spec, NULL)
        || timerfd_settime(expired, 0, &expired_spec, NULL))
        return 2;
    uint64_t seven_ticks = 7;
    int have_set_ticks = ioctl(seven, TFD_IOC_SET_TICKS, &seven_ticks) == 0;
    if (!have_set_ticks)
        victim_say("no TFD_IOC_SET_TICKS here (%s): not checking an exact count of unread expirations", strerror(errno));
    usleep(20000);
    victim_ready();
    victim_wait();
    long long released_at = now_ns();

    /* signalfds */
    victim_check(read_signal(signals) == SIGUSR2, "the signalfd did not read the pending SIGUSR2");
    victim_check(fdinfo_number(signals, "sigmask", 16) == signals_mask, "signalfd sigmask %llx, expected %llx",
                 fdinfo_number(signals, "sigmask", 16), (unsigned long long)signals_mask);
    victim_check(!(fcntl(signals, F_GETFL) & O_NONBLOCK), "the blocking signalfd became non-blocking");
    raise(SIGRTMIN + 1);
    victim_check(read_signal(signals) == (uint32_t)(SIGRTMIN + 1), "the signalfd does not read SIGRTMIN+1");
    victim_check(fcntl(nonblocking, F_GETFL) & O_NONBLOCK, "the signalfd lost O_NONBLOCK");
    struct signalfd_siginfo info;
    victim_check(read(nonblocking, &info, sizeof(info)) < 0 && errno == EAGAIN,
                 "the non-blocking signalfd should have nothing and not block");
    raise(SIGRTMIN + 1);
    victim_check(read_signal(nonblocking) == (uint32_t)(SIGRTMIN + 1), "the non-blocking signalfd does not read SIGRTMIN+1");
    victim_check(fdinfo_number(raw, "sigmask", 16) == raw_mask, "raw signalfd sigmask %llx, expected %llx",
                 fdinfo_number(raw, "sigmask", 16), (unsigned long long)raw_mask);

    /* timerfds */
    check_timer(periodic, "periodic timerfd", 1000 * SECOND, 900 * SECOND, 500 * SECOND, CLOCK_MONOTONIC);
    check_timer(disarmed, "disarmed timerfd", 0, 0, 0, CLOCK_MONOTONIC);
    check_timer(absolute, "absolute timerfd", 1000 * SECOND, 900 * SECOND, 0, CLOCK_REALTIME);
    unsigned long long flags = fdinfo_number(absolute, "settime flags", 8);
    victim_check(flags == (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET), "absolute timerfd: settime flags %llo", flags);
    check_timer(expired, "expired periodic timerfd", 10 * SECOND, 1, 10 * SECOND, CLOCK_MONOTONIC);
    uint64_t ticks = 0;
    victim_check(read(expired, &ticks, sizeof(ticks)) == sizeof(ticks) && ticks == 1,
                 "expired periodic timerfd: %llu unread expirations, expected 1", (unsigned long long)ticks);
    if (have_set_ticks) {
        check_timer(seven, "timerfd with 7 expirations", 0, 0, 0, CLOCK_BOOTTIME);
        ticks = 0;
        victim_check(read(seven, &ticks, sizeof(ticks)) == sizeof(ticks) && ticks == 7,
                     "timerfd: %llu unread expirations, expected 7", (unsigned long long)ticks);
    }
    check_timer(once, "one-shot timerfd", 2 * SECOND, 0, 0, CLOCK_REALTIME);
    struct pollfd fires = { .fd = once, .events = POLLIN };
    ticks = 0;
    victim_check(poll(&fires, 1, 5000) == 1 && read(once, &ticks, sizeof(ticks)) == sizeof(ticks) && ticks == 1,
                 "the 2 s one-shot timerfd did not fire once (%llu)", (unsigned long long)ticks);
    long long waited = now_ns() - released_at;
    victim_check(waited <= 5 * SECOND, "the one-shot fired %lld ms after the release", waited / 1000000);
    check_timer(once, "fired one-shot timerfd", 0, 0, 0, CLOCK_REALTIME);
    return victim_finish();
}
