/* Holds a unix socket pair at fds 10 and 11, which cryo cannot checkpoint
 * yet: the dump must fail naming the fd and leave this process running
 * untouched, with the data queued in the socket intact. */
#include <sys/socket.h>
#include <unistd.h>

#include "victim.h"

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t pid = getpid();
    int ends[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, ends) != 0)
        return 2;
    dup2(ends[0], 10);
    dup2(ends[1], 11);
    close(ends[0]);
    close(ends[1]);
    if (write(11, "x", 1) != 1)
        return 2;
    victim_ready();
    victim_wait();
    char byte = 0;
    victim_check(read(10, &byte, 1) == 1 && byte == 'x', "socket data lost");
    victim_check(getpid() == pid, "pid changed");
    return victim_finish();
}
