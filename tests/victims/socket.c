/* Holds an IPv4 UDP-Lite socket at fd 10, which cryo cannot checkpoint: the
 * dump must fail naming the fd and leave this process running untouched,
 * with a datagram it sent to itself still queued. */
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "victim.h"

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t pid = getpid();
    int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
    if (fd < 0 || dup2(fd, 10) != 10)
        return 2;
    close(fd);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t length = sizeof(address);
    if (bind(10, (struct sockaddr *)&address, sizeof(address)) || getsockname(10, (struct sockaddr *)&address, &length))
        return 2;
    if (sendto(10, "x", 1, 0, (struct sockaddr *)&address, sizeof(address)) != 1)
        return 2;
    victim_ready();
    victim_wait();
    char byte = 0;
    victim_check(recv(10, &byte, 1, MSG_DONTWAIT) == 1 && byte == 'x', "queued datagram lost");
    victim_check(getpid() == pid, "pid changed");
    return victim_finish();
}
