/* A victim for the inspection commands (cryo mem, decode/encode).
 *
 * It plants a known secret in heap memory so that it straddles a page
 * boundary (the first 8 bytes at the end of one page, the rest on the next)
 * and logs its address as "SECRET 0x...". The secret is built at run time
 * from shifted bytes, so the heap holds its only copy; `cryo mem --search`
 * must find it there. It also keeps LOG.original open read-write at offset
 * 3; after the release it logs what the descriptor reads ("DATA ...") so a
 * test that edited the file's path in the decoded JSON (to LOG.edited) sees
 * the edit took effect. Checks: same pid, secret intact, offset kept. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "victim.h"

/* "CRYO-SECRET-7d1e9b4c", each byte minus one. */
static const char kShifted[] = "BQXN,RDBQDS,6c0d8a3b";

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t pid = getpid();
    size_t length = strlen(kShifted);

    char *heap = malloc(4 * 4096);
    memset(heap, 0x11, 4 * 4096);
    char *secret = (char *)(((uintptr_t)heap + 4096) & ~(uintptr_t)4095) - 8;
    for (size_t i = 0; i < length; ++i)
        secret[i] = (char)(kShifted[i] + 1);

    char original[4200];
    snprintf(original, sizeof(original), "%s.original", argv[1]);
    int fd = open(original, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "original\n", 9) != 9 || lseek(fd, 3, SEEK_SET) != 3)
        return 2;

    victim_say("SECRET %#lx", (unsigned long)(uintptr_t)secret);
    victim_ready();
    victim_wait();

    victim_check(getpid() == pid, "pid %d, was %d", getpid(), pid);
    int intact = 1;
    for (size_t i = 0; i < length; ++i)
        intact &= secret[i] == (char)(kShifted[i] + 1);
    victim_check(intact, "the secret changed");
    victim_check(lseek(fd, 0, SEEK_CUR) == 3, "offset %ld, was 3", (long)lseek(fd, 0, SEEK_CUR));
    char data[64] = "";
    ssize_t got = pread(fd, data, sizeof(data) - 1, 0);
    victim_check(got > 0, "cannot read the file");
    if (got > 0) {
        data[strcspn(data, "\n")] = 0;
        victim_say("DATA %s", data);
    }
    close(fd);
    unlink(original);
    free(heap);
    return victim_finish();
}
