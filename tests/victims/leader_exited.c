/* The thread group leader calls pthread_exit() while two threads run on
 * (a zombie thread, the process alive). After restore the leader must have
 * exited again, and the threads run on with the same pid, tids and TLS. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "victim.h"

static pid_t pid;
static __thread long tls_value;
static volatile unsigned long counter;
static volatile int counter_started;

/* The state letter of the leader in /proc/PID/stat ('Z' once it exited). */
static char leader_state(void)
{
    char path[64], text[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    victim_read_text(path, text, sizeof(text));
    const char *end = strrchr(text, ')');
    return end && end[1] == ' ' ? end[2] : '?';
}

static void *count(void *argument)
{
    (void)argument;
    tls_value = 2;
    counter_started = 1;
    while (!victim_released())
        counter++;
    counter++;   /* at least once after the release, however it was scheduled */
    victim_check(tls_value == 2, "counting thread: TLS %ld", tls_value);
    return NULL;
}

static void *run(void *argument)
{
    (void)argument;
    tls_value = 1;
    pid_t tid = gettid();
    pthread_t counting;
    pthread_create(&counting, NULL, count, NULL);
    while (!counter_started || leader_state() != 'Z')
        usleep(1000);
    unsigned long before = counter;
    victim_ready();
    victim_wait();
    pthread_join(counting, NULL);
    victim_check(getpid() == pid, "pid %d, was %d", getpid(), pid);
    victim_check(gettid() == tid, "tid %d, was %d", gettid(), tid);
    victim_check(tls_value == 1, "TLS %ld", tls_value);
    victim_check(counter > before, "the counting thread stopped counting");
    victim_check(leader_state() == 'Z', "the leader is in state %c, not an exited (zombie) thread", leader_state());
    exit(victim_finish());
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid = getpid();
    pthread_t thread;
    pthread_create(&thread, NULL, run, NULL);
    pthread_exit(NULL);
}
