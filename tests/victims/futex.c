/* Threads blocked on futexes across the checkpoint: one waits for a mutex
 * the main thread holds, one waits on a condition variable, one sleeps in
 * FUTEX_WAIT with a timeout on a plain word. A thread that holds a robust
 * mutex exits after restore without unlocking it: the robust list must have
 * been kept for the next locker to get EOWNERDEAD. After restore each waiter
 * must wake exactly when released. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "victim.h"

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t condition_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t condition = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t robust;
static pthread_mutex_t robust_release = PTHREAD_MUTEX_INITIALIZER;
static int signalled;
static _Atomic int word;
static _Atomic int got_mutex, got_condition, got_word, waiting;

static void *wait_for_mutex(void *unused)
{
    (void)unused;
    atomic_fetch_add(&waiting, 1);
    pthread_mutex_lock(&held);
    atomic_store(&got_mutex, 1);
    pthread_mutex_unlock(&held);
    return NULL;
}

static void *wait_for_condition(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&condition_lock);
    atomic_fetch_add(&waiting, 1);
    while (!signalled)
        pthread_cond_wait(&condition, &condition_lock);
    atomic_store(&got_condition, 1);
    pthread_mutex_unlock(&condition_lock);
    return NULL;
}

static void *wait_on_word(void *unused)
{
    (void)unused;
    atomic_fetch_add(&waiting, 1);
    while (atomic_load(&word) == 0) {
        struct timespec timeout = { .tv_sec = 30 };
        syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &timeout, NULL, 0);
    }
    atomic_store(&got_word, 1);
    return NULL;
}

/* Takes the robust mutex and dies holding it once told to. */
static void *hold_robust(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&robust);
    atomic_fetch_add(&waiting, 1);
    pthread_mutex_lock(&robust_release);
    pthread_mutex_unlock(&robust_release);
    return NULL;
}

static int wait_until(_Atomic int *flag)
{
    for (int i = 0; i < 300 && !atomic_load(flag); ++i)
        usleep(10000);
    return atomic_load(flag);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pthread_mutexattr_t attributes;
    pthread_mutexattr_init(&attributes);
    pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &attributes);
    pthread_mutex_lock(&held);
    pthread_mutex_lock(&robust_release);
    pthread_t threads[4];
    pthread_create(&threads[0], NULL, wait_for_mutex, NULL);
    pthread_create(&threads[1], NULL, wait_for_condition, NULL);
    pthread_create(&threads[2], NULL, wait_on_word, NULL);
    pthread_create(&threads[3], NULL, hold_robust, NULL);
    while (atomic_load(&waiting) < 4)
        usleep(1000);
    usleep(50000);   /* every waiter is inside its futex wait */

    victim_ready();
    victim_wait();

    victim_check(!atomic_load(&got_mutex) && !atomic_load(&got_condition) && !atomic_load(&got_word),
                 "a waiter woke before it was released");
    pthread_mutex_unlock(&held);
    victim_check(wait_until(&got_mutex), "mutex waiter did not wake");
    pthread_mutex_lock(&condition_lock);
    signalled = 1;
    pthread_cond_signal(&condition);
    pthread_mutex_unlock(&condition_lock);
    victim_check(wait_until(&got_condition), "condition waiter did not wake");
    atomic_store(&word, 1);
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    victim_check(wait_until(&got_word), "futex word waiter did not wake");
    pthread_mutex_unlock(&robust_release);
    pthread_join(threads[3], NULL);
    int result = pthread_mutex_lock(&robust);
    victim_check(result == EOWNERDEAD, "robust mutex of a dead owner: %d, expected EOWNERDEAD", result);
    if (result == EOWNERDEAD)
        pthread_mutex_consistent(&robust);
    pthread_mutex_unlock(&robust);
    for (int i = 0; i < 3; ++i)
        pthread_join(threads[i], NULL);
    return victim_finish();
}
