/* The baseline of bench/page_server.sh: a plain TCP copy of N MiB from
 * memory into a file on the other side, without cryo.
 *
 *   cryo-bench-tcpcopy receive ADDR PORT FILE
 *       Accepts one connection, writes everything it receives to FILE
 *       (created 0600, truncated) in 8 MiB read()/write() steps,
 *       fdatasync()s it, then answers one byte and exits.
 *
 *   cryo-bench-tcpcopy send ADDR PORT MIB
 *       Fills MIB MiB of fresh memory with a xorshift stream (untimed),
 *       connects, sends it in 8 MiB write()s, shuts its side down and waits
 *       for the receiver's byte. Prints the timed milliseconds (connect to
 *       answer), which is what a page-server dump of the same bytes does
 *       at the least: send them, have them written and synced.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STEP (8u << 20)

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static struct sockaddr_in address_of(const char *host, const char *port)
{
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) {
        fprintf(stderr, "tcpcopy: %s is not an IPv4 address\n", host);
        exit(2);
    }
    return address;
}

static double now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1e3 + now.tv_nsec / 1e6;
}

static int receive(const char *host, const char *port, const char *path)
{
    struct sockaddr_in address = address_of(host, port);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof(address)) < 0 || listen(listener, 1) < 0)
        die("listen");
    printf("listening\n");
    fflush(stdout);
    int peer = accept(listener, NULL, NULL);
    int file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char *buffer = malloc(STEP);
    if (peer < 0 || file < 0 || !buffer)
        die("accept/open");
    for (;;) {
        ssize_t got = read(peer, buffer, STEP);
        if (got < 0)
            die("read");
        if (got == 0)
            break;
        for (ssize_t done = 0; done < got;) {
            ssize_t put = write(file, buffer + done, (size_t)(got - done));
            if (put < 0)
                die("write");
            done += put;
        }
    }
    if (fdatasync(file) < 0 || write(peer, "k", 1) != 1)
        die("fdatasync/answer");
    return 0;
}

static int send_bytes(const char *host, const char *port, const char *mib_text)
{
    size_t size = (size_t)atol(mib_text) << 20;
    uint64_t *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED)
        die("mmap");
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < size / 8; ++i) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        memory[i] = state;
    }
    struct sockaddr_in address = address_of(host, port);
    double start = now_ms();
    int peer = socket(AF_INET, SOCK_STREAM, 0);
    if (peer < 0 || connect(peer, (struct sockaddr *)&address, sizeof(address)) < 0)
        die("connect");
    const char *bytes = (const char *)memory;
    for (size_t done = 0; done < size;) {
        size_t step = size - done < STEP ? size - done : STEP;
        ssize_t put = write(peer, bytes + done, step);
        if (put < 0)
            die("write");
        done += (size_t)put;
    }
    shutdown(peer, SHUT_WR);
    char answer;
    if (read(peer, &answer, 1) != 1)
        die("no answer from the receiver");
    printf("%.0f\n", now_ms() - start);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "receive") == 0)
        return receive(argv[2], argv[3], argv[4]);
    if (argc == 5 && strcmp(argv[1], "send") == 0)
        return send_bytes(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: cryo-bench-tcpcopy receive ADDR PORT FILE | send ADDR PORT MIB\n");
    return 2;
}
