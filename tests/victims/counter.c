/* A counter that keeps counting across the checkpoint: same pid, counter
 * and monotonic clock keep going forward, and sched_getcpu() (served by the
 * rseq area, which must be registered again on restore) agrees with the
 * getcpu system call on every CPU. `counter LOG --exit-code N` exits with N
 * after its checks, for the foreground-restore exit status test. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "victim.h"

static double seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    int exit_code = (argc > 3 && strcmp(argv[2], "--exit-code") == 0) ? atoi(argv[3]) : -1;
    pid_t pid = getpid();
    volatile unsigned long counter = 0;
    double before = seconds();
    victim_ready();
    unsigned long at_ready = counter;
    double ready = before;
    while (!victim_released()) {
        counter++;
        if ((counter & 0xfffff) == 0) {
            double now = seconds();
            victim_check(now >= before, "monotonic clock went back from %f to %f", before, now);
            before = now;
            if (now - ready > 120) {
                victim_check(0, "no SIGUSR1 within 120 s");
                break;
            }
        }
    }
    victim_check(getpid() == pid, "pid %d, was %d", getpid(), pid);
    victim_check(counter > at_ready, "counter %lu did not move past %lu", counter, at_ready);
    victim_check(seconds() >= before, "monotonic clock went back");

    int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int cpu = 0; cpu < cpus && cpu < 8; ++cpu) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) != 0)
            continue;
        /* Several samples: the rseq area is updated when the thread is
         * scheduled, so a stale area shows up on the second CPU at the latest. */
        for (int sample = 0; sample < 5; ++sample) {
            unsigned real_cpu = ~0u;
            long result = syscall(SYS_getcpu, &real_cpu, NULL, NULL);
            int cached = sched_getcpu();
            victim_check(result == 0 && cached == (int)real_cpu && (int)real_cpu == cpu,
                         "sample %d: sched_getcpu() %d, getcpu %u, pinned to %d", sample, cached, real_cpu, cpu);
            sched_yield();
        }
    }
    int status = victim_finish();
    return exit_code >= 0 ? exit_code : status;
}
