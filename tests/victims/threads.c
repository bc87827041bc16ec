/* Five threads, each with its own TLS value, signal mask and name, still
 * running (counting) with the same TIDs after restore. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "victim.h"

#define THREADS 5
static __thread long tls_value;
static pid_t tids[THREADS];
static volatile unsigned long counters[THREADS];
static volatile int started;

static void *worker(void *argument)
{
    long index = (long)argument;
    tls_value = 1000 + index;
    tids[index] = gettid();
    char name[16];
    snprintf(name, sizeof(name), "worker-%ld", index);
    prctl(PR_SET_NAME, name);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGRTMIN + (int)index);
    sigaddset(&mask, SIGUSR1);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
    __sync_fetch_and_add(&started, 1);
    while (!victim_released())
        counters[index]++;
    counters[index]++;   /* at least once after the release, however it was scheduled */
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    char now_name[16] = "";
    prctl(PR_GET_NAME, now_name);
    victim_check(tls_value == 1000 + index, "thread %ld: TLS %ld", index, tls_value);
    victim_check(tids[index] == gettid(), "thread %ld: tid %d, was %d", index, gettid(), tids[index]);
    victim_check(sigismember(&now, SIGRTMIN + (int)index) && !sigismember(&now, SIGRTMIN + (int)((index + 1) % THREADS)),
                 "thread %ld: signal mask changed", index);
    victim_check(strcmp(now_name, name) == 0, "thread %ld: name '%s'", index, now_name);
    return NULL;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t pid = getpid();
    pthread_t threads[THREADS];
    for (long i = 0; i < THREADS; ++i)
        pthread_create(&threads[i], NULL, worker, (void *)i);
    while (started < THREADS)
        usleep(1000);
    pid_t saved[THREADS];
    memcpy(saved, tids, sizeof(saved));
    /* Read before READY: the release may come at once (no checkpoint). */
    unsigned long before[THREADS];
    for (int i = 0; i < THREADS; ++i)
        before[i] = counters[i];
    victim_ready();
    victim_wait();
    for (int i = 0; i < THREADS; ++i)
        pthread_join(threads[i], NULL);
    victim_check(getpid() == pid, "pid %d, was %d", getpid(), pid);
    for (int i = 0; i < THREADS; ++i) {
        victim_check(counters[i] > before[i], "thread %d stopped counting", i);
        victim_check(saved[i] == tids[i], "thread %d tid changed", i);
    }
    return victim_finish();
}
