/* seccomp: two stacked filters (getppid fails with EPERM, umask with
 * EACCES) under no_new_privs. After restore both filters still act, in the
 * same order, and /proc reports mode 2 with two filters. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "victim.h"

static int deny(int number, int error)
{
    struct sock_filter program[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)number, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)error),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog filter = { .len = sizeof(program) / sizeof(program[0]), .filter = program };
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter);
}

static int status_value(const char *key)
{
    FILE *status = fopen("/proc/self/status", "r");
    char line[256];
    int value = -1;
    size_t length = strlen(key);
    while (status && fgets(line, sizeof(line), status))
        if (strncmp(line, key, length) == 0 && line[length] == ':')
            sscanf(line + length + 1, "%d", &value);
    if (status)
        fclose(status);
    return value;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || deny(SYS_getppid, EPERM) || deny(SYS_umask, EACCES))
        return 2;
    victim_ready();
    victim_wait();
    errno = 0;
    long parent = syscall(SYS_getppid);
    victim_check(parent == -1 && errno == EPERM, "getppid gave %ld errno %d", parent, errno);
    errno = 0;
    long mask = syscall(SYS_umask, 022);
    victim_check(mask == -1 && errno == EACCES, "umask gave %ld errno %d", mask, errno);
    victim_check(status_value("Seccomp") == 2 && status_value("Seccomp_filters") == 2, "seccomp mode %d filters %d",
                 status_value("Seccomp"), status_value("Seccomp_filters"));
    victim_check(status_value("NoNewPrivs") == 1, "no_new_privs lost");
    return victim_finish();
}
