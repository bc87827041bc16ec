/* Frozen inside sigsuspend(), which runs with a temporary signal mask while
 * the real one waits in the kernel: after restore the call is made again
 * and, once SIGUSR1 ends it, the real mask (SIGUSR1 and SIGUSR2 blocked) is
 * back in force. */
#define _GNU_SOURCE
#include <signal.h>
#include <unistd.h>

#include "victim.h"

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t pid = getpid();
    sigset_t blocked, during;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR1);
    sigaddset(&blocked, SIGUSR2);
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    sigfillset(&during);
    sigdelset(&during, SIGUSR1);
    victim_ready();
    int rounds = 0;
    while (!victim_released() && rounds++ < 100000)
        sigsuspend(&during);
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    victim_check(sigismember(&now, SIGUSR1) && sigismember(&now, SIGUSR2) && !sigismember(&now, SIGINT),
                 "the mask after sigsuspend is not the real one");
    victim_check(getpid() == pid, "pid changed");
    return victim_finish();
}
