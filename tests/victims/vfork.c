/* A child of the victim waits in vfork() for its own child, which shares
 * its memory until it exits (zdtm vfork00): ptrace cannot stop a parent in
 * vfork(), so the dump must refuse at once instead of waiting. After
 * SIGUSR1 the victim closes the pipe the vforked grandchild waits on; the
 * grandchild exits, the child returns from vfork() and exits too. */
#define _GNU_SOURCE
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    int release[2], ready[2];
    if (pipe(release) || pipe(ready))
        return 2;
    pid_t child = fork();
    if (child < 0)
        return 2;
    if (child == 0) {
        close(release[1]);
        close(ready[0]);
        pid_t grandchild = vfork();
        if (grandchild == 0) {
            /* Shares the child's memory: only plain system calls here. */
            char byte = 'r';
            if (write(ready[1], &byte, 1) != 1 || read(release[0], &byte, 1) != 0)
                _exit(1);
            _exit(0);
        }
        int status = 0;
        _exit(grandchild > 0 && waitpid(grandchild, &status, 0) == grandchild && WIFEXITED(status)
                      && WEXITSTATUS(status) == 0
                  ? 0
                  : 1);
    }
    close(release[0]);
    close(ready[1]);
    char byte = 0;
    if (read(ready[0], &byte, 1) != 1)
        return 2;
    victim_ready();
    victim_wait();
    close(release[1]);
    int status = 0;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "the child in vfork() status %#x", status);
    return victim_finish();
}
