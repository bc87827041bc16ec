/* State cryo cannot restore yet, so the dump must refuse it and leave this
 * process running: by default a mount namespace of its own (private
 * mounts: a tmpfs on /mnt that no one else sees); with "clone-files" an fd
 * table shared by two processes neither of which is the other's parent (a
 * child cloned it with CLONE_FILES from a sharing child that exited since,
 * and this process, a sub-reaper, adopted it); with
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
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

static char child_stack[64 * 1024] __attribute__((aligned(16)));
static pid_t root;
static int ends[2];

static int adopted(void *unused)
{
    (void)unused;
    while (getppid() != root)
        usleep(1000);
    victim_wait();
    return 0;
}

/* Clones `adopted` sharing the table, tells the root its pid and exits. */
static int middle(void *unused)
{
    (void)unused;
    pid_t child = clone(adopted, child_stack + sizeof(child_stack), CLONE_FILES | SIGCHLD, NULL);
    return child > 0 && write(ends[1], &child, sizeof(child)) == sizeof(child) ? 0 : 1;
}

static void sharing_parent(void)
{
    pid_t child = clone(middle, child_stack + sizeof(child_stack), CLONE_FILES | SIGCHLD, NULL);
    if (child < 0 || waitpid(child, NULL, 0) != child)
        _exit(2);
    victim_wait();
    _exit(0);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    int clone_files = argc > 2 && strcmp(argv[2], "clone-files") == 0;
    int message_queue = argc > 2 && strcmp(argv[2], "mqueue") == 0;
    pid_t child = -1, adoptee = -1;
    mqd_t queue = (mqd_t)-1;
    if (message_queue) {
        char name[64];
        snprintf(name, sizeof(name), "/cryo-victim-%d", (int)getpid());
        queue = mq_open(name, O_CREAT | O_RDWR | O_CLOEXEC, 0600, NULL);
        mq_unlink(name);
        if (queue == (mqd_t)-1 || mq_send(queue, "m", 1, 0) != 0)
            return 2;
    } else if (clone_files) {
        root = getpid();
        prctl(PR_SET_CHILD_SUBREAPER, 1);
        if (pipe(ends) != 0)
            return 2;
        child = fork();
        if (child == 0)
            sharing_parent();
        if (child < 0 || !victim_read_exactly(ends[0], &adoptee, sizeof(adoptee)))
            return 2;
        /* Adopted once waitpid() knows it as a child. */
        while (waitpid(adoptee, NULL, WNOHANG) < 0)
            usleep(1000);
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
        kill(adoptee, SIGUSR1);
        int status = -1;
        victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                     "child status %#x", status);
        victim_check(waitpid(adoptee, &status, 0) == adoptee && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                     "adopted child status %#x", status);
    } else {
        char mounts[65536];
        victim_read_text("/proc/self/mounts", mounts, sizeof(mounts));
        victim_check(strstr(mounts, "cryo-victim /mnt tmpfs") != NULL, "the tmpfs on /mnt is gone");
    }
    return victim_finish();
}
