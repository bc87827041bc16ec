/* Started by the harness as pid 1 of a new PID namespace. Two children
 * (pids 2 and 3 there); with `nested`, the second one creates a nested PID
 * namespace whose first process is pid 1 inside it. All must have the same
 * pids, at every level, after restore. */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    int nested = argc > 2 && strcmp(argv[2], "nested") == 0;
    victim_check(getpid() == 1, "not pid 1 of a namespace (pid %d)", getpid());
    pid_t first = fork();
    if (first == 0) {
        victim_wait();
        victim_check(getpid() == 2 && getppid() == 1, "first child: pid %d parent %d", getpid(), getppid());
        _exit(victim_failures() ? 1 : 0);
    }
    pid_t second = fork();
    if (second == 0) {
        pid_t inner = -1;
        if (nested && unshare(CLONE_NEWPID) == 0) {
            inner = fork();
            if (inner == 0) {
                victim_wait();
                victim_check(getpid() == 1 && getppid() == 0, "nested init: pid %d parent %d", getpid(), getppid());
                _exit(victim_failures() ? 1 : 0);
            }
        }
        victim_wait();
        if (inner > 0) {
            kill(inner, SIGUSR1);
            int status = 0;
            victim_check(waitpid(inner, &status, 0) == inner && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                         "nested init status %#x", status);
        }
        victim_check(getpid() == 3 && getppid() == 1, "second child: pid %d parent %d", getpid(), getppid());
        _exit(victim_failures() ? 1 : 0);
    }
    usleep(200000);
    victim_ready();
    victim_wait();
    kill(first, SIGUSR1);
    kill(second, SIGUSR1);
    int status = 0;
    victim_check(waitpid(first, &status, 0) == first && WIFEXITED(status) && WEXITSTATUS(status) == 0, "first child status %#x", status);
    victim_check(waitpid(second, &status, 0) == second && WIFEXITED(status) && WEXITSTATUS(status) == 0, "second child status %#x", status);
    victim_check(getpid() == 1, "root is pid %d in its namespace", getpid());
    return victim_finish();
}
