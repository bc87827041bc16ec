/* seccomp_strict: a child in seccomp strict mode (SECCOMP_MODE_STRICT: read,
 * write, _exit and sigreturn only), blocked in read() on a pipe; the dump
 * and restore inject calls into it that strict mode would answer with
 * SIGKILL. After the release the root checks that /proc says mode 1 for
 * the child, sends it a byte that it sends back plus one (it lives and
 * reads and writes), then asks it to call getppid(), which strict mode must
 * answer with SIGKILL (the mode holds, not only its report). */
#define _GNU_SOURCE
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

/* The child's loop: only read, write and exit, as strict mode allows. */
static void serve(int commands, int replies)
{
    for (;;) {
        char command = 0;
        if (read(commands, &command, 1) != 1)
            syscall(SYS_exit, 2);
        if (command == 'x') {
            syscall(SYS_getppid);   /* strict mode kills the thread here */
            command = 'S';
            (void)!write(replies, &command, 1);
            syscall(SYS_exit, 3);
        }
        command++;
        if (write(replies, &command, 1) != 1)
            syscall(SYS_exit, 4);
    }
}

static int seccomp_mode(pid_t pid)
{
    char path[64], text[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    victim_read_text(path, text, sizeof(text));
    const char *line = strstr(text, "\nSeccomp:");
    int mode = -1;
    if (line)
        sscanf(line + strlen("\nSeccomp:"), "%d", &mode);
    return mode;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    int commands[2], replies[2];
    if (pipe(commands) || pipe(replies))
        return 2;
    pid_t child = fork();
    if (child < 0)
        return 2;
    if (child == 0) {
        close(commands[1]);
        close(replies[0]);
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) != 0)
            _exit(2);
        char ready = 'R';
        if (write(replies[1], &ready, 1) != 1)
            syscall(SYS_exit, 2);
        serve(commands[0], replies[1]);
    }
    close(commands[0]);
    close(replies[1]);
    char reply = 0;
    if (read(replies[0], &reply, 1) != 1 || reply != 'R')
        return 2;
    victim_ready();
    victim_wait();

    victim_check(seccomp_mode(child) == SECCOMP_MODE_STRICT, "child's seccomp mode is %d, expected %d",
                 seccomp_mode(child), SECCOMP_MODE_STRICT);
    char command = 'e';
    reply = 0;
    victim_check(write(commands[1], &command, 1) == 1 && read(replies[0], &reply, 1) == 1 && reply == 'f',
                 "child answered '%c' to 'e', expected 'f'", reply);
    command = 'x';
    victim_check(write(commands[1], &command, 1) == 1, "write to the child");
    int status = 0;
    victim_check(waitpid(child, &status, 0) == child && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                 "child was not killed by getppid() in strict mode (status %#x)", status);
    return victim_finish();
}
