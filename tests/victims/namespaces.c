/* State cryo cannot restore yet, so the dump must refuse it and leave this
 * process running: by default a mount namespace of its own (private
 * mounts: a tmpfs on /mnt that no one else sees); with "clone-files" a child made by clone(CLONE_FILES), sharing
 * the fd table with this process (a descriptor it opens is ours too), that
 * has a child of its own (restoring a table shared so is not supported yet); with
 * "mqueue" a POSIX message queue descriptor (its name unlinked at once, so
 * nothing is left behind) holding one message. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

static char child_stack[64 * 1024] __attribute__((aligned(16)));

static int sharing_child(void *unused)
{
    (void)unused;
    pid_t grandchild = fork();
    if (grandchild == 0) {
        victim_wait();
        _exit(0);
    }
    victim_wait();
    kill(grandchild, SIGUSR1);
    waitpid(grandchild, NULL, 0);
    /* The parent sees this descriptor: one table. */
    int fd = open("/dev/null", O_RDONLY);
    return fd >= 0 && dup2(fd, 77) == 77 ? 0 : 1;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    int clone_files = argc > 2 && strcmp(argv[2], "clone-files") == 0;
    int message_queue = argc > 2 && strcmp(argv[2], "mqueue") == 0;
    pid_t child = -1;
    mqd_t queue = (mqd_t)-1;
    if (message_queue) {
        char name[64];
        snprintf(name, sizeof(name), "/cryo-victim-%d", (int)getpid());
        queue = mq_open(name, O_CREAT | O_RDWR | O_CLOEXEC, 0600, NULL);
        mq_unlink(name);
        if (queue == (mqd_t)-1 || mq_send(queue, "m", 1, 0) != 0)
            return 2;
    } else if (clone_files) {
        child = clone(sharing_child, child_stack + sizeof(child_stack), CLONE_FILES | SIGCHLD, NULL);
        if (child < 0)
            return 2;
    } else if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0
               || mount("cryo-victim", "/mnt", "tmpfs", 0, NULL) != 0) {
        return 2;
    }
    victim_ready();
    victim_wait();
    if (message_queue) {
        char message[8192];
        victim_check(mq_receive(queue, message, sizeof(message), NULL) == 1 && message[0] == 'm', "message lost");
    } else if (clone_files) {
        kill(child, SIGUSR1);
        int status = -1;
        waitpid(child, &status, 0);
        victim_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
        victim_check(fcntl(77, F_GETFD) >= 0, "fd 77 the child opened is not in the shared table");
    } else {
        char mounts[65536];
        victim_read_text("/proc/self/mounts", mounts, sizeof(mounts));
        victim_check(strstr(mounts, "cryo-victim /mnt tmpfs") != NULL, "the tmpfs on /mnt is gone");
    }
    return victim_finish();
}
