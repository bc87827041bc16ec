/* Frozen inside blocking system calls: nanosleep, clock_nanosleep with an
 * absolute deadline, poll, select and sigtimedwait, in a loop. After
 * restore each call must complete with a sane result: restartable calls
 * restart, the others may report EINTR but nothing else. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "victim.h"

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t pid = getpid();
    sigset_t waited;
    sigemptyset(&waited);
    sigaddset(&waited, SIGRTMIN + 5);
    sigprocmask(SIG_BLOCK, &waited, NULL);
    victim_ready();
    long rounds = 0;
    while (!victim_released()) {
        struct timespec nap = { 0, 50 * 1000 * 1000 }, left;
        int result = nanosleep(&nap, &left);
        victim_check(result == 0 || errno == EINTR, "nanosleep: %d errno %d", result, errno);
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += 50 * 1000 * 1000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
        result = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL);
        victim_check(result == 0 || result == EINTR, "clock_nanosleep: %d", result);
        result = poll(NULL, 0, 50);
        victim_check(result == 0 || errno == EINTR, "poll: %d errno %d", result, errno);
        struct timeval timeout = { 0, 50000 };
        result = select(0, NULL, NULL, NULL, &timeout);
        victim_check(result == 0 || errno == EINTR, "select: %d errno %d", result, errno);
        struct timespec wait_time = { 0, 50 * 1000 * 1000 };
        result = sigtimedwait(&waited, NULL, &wait_time);
        victim_check(result < 0 && (errno == EAGAIN || errno == EINTR), "sigtimedwait: %d errno %d", result, errno);
        rounds++;
    }
    victim_check(getpid() == pid, "pid %d, was %d", getpid(), pid);
    victim_check(rounds > 0, "no round completed");
    return victim_finish();
}
