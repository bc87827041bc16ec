/* A child sub-reaper: the root sets PR_SET_CHILD_SUBREAPER, its child forks
 * a grandchild and exits; the orphaned grandchild is re-parented to the
 * root, and must still be its child after restore. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t root = getpid();
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    int ends[2];
    if (pipe(ends) != 0)
        return 2;
    pid_t middle = fork();
    if (middle == 0) {
        pid_t orphan = fork();
        if (orphan == 0) {
            close(ends[0]);
            close(ends[1]);
            while (getppid() != root)
                usleep(1000);
            victim_wait();
            victim_check(getppid() == root, "orphan's parent %d, expected the sub-reaper %d", getppid(), root);
            _exit(victim_failures() ? 1 : 0);
        }
        if (write(ends[1], &orphan, sizeof(orphan)) != sizeof(orphan))
            _exit(2);
        _exit(0);
    }
    close(ends[1]);
    pid_t orphan = 0;
    if (read(ends[0], &orphan, sizeof(orphan)) != sizeof(orphan))
        return 2;
    close(ends[0]);
    waitpid(middle, NULL, 0);
    victim_ready();
    victim_wait();
    int subreaper = 0;
    prctl(PR_GET_CHILD_SUBREAPER, &subreaper);
    victim_check(subreaper == 1, "no longer a child sub-reaper");
    kill(orphan, SIGUSR1);
    int status = 0;
    victim_check(waitpid(orphan, &status, 0) == orphan && WIFEXITED(status) && WEXITSTATUS(status) == 0, "orphan status %#x", status);
    victim_check(getpid() == root, "pid changed");
    return victim_finish();
}
