/* A process tree: a child that leads its own session with a grandchild, a
 * child in its own process group, a child in a process group whose leader
 * has exited (restore needs a helper process for it), a zombie that exited
 * with code 7, and
 * MAP_SHARED|MAP_ANONYMOUS memory written by the root after restore and
 * read by a child. Every process checks its own parent, session and group;
 * the root reaps all and reports. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

static void check_identity(const char *who, pid_t ppid, pid_t sid, pid_t pgid)
{
    victim_check(getppid() == ppid && getsid(0) == sid && getpgid(0) == pgid,
                 "%s: parent %d session %d group %d, expected %d %d %d", who, getppid(), getsid(0), getpgid(0), ppid, sid, pgid);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t root = getpid(), root_sid = getsid(0), root_pgid = getpgid(0);
    volatile int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    shared[1] = 7;
    /* A shared file mapping: written by the root after restore, read by a child. */
    char path[4200];
    snprintf(path, sizeof(path), "%s.shared", argv[1]);
    int file = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (file < 0 || ftruncate(file, 4096) != 0)
        return 2;
    volatile int *file_shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, file, 0);
    close(file);

    pid_t zombie = fork();
    if (zombie == 0)
        _exit(7);

    pid_t leader = fork();
    if (leader == 0) {
        setsid();
        pid_t me = getpid();
        pid_t grandchild = fork();
        if (grandchild == 0) {
            victim_wait();
            check_identity("grandchild", me, me, me);
            _exit(victim_failures() ? 1 : 0);
        }
        victim_wait();
        kill(grandchild, SIGUSR1);
        int status = 0;
        victim_check(waitpid(grandchild, &status, 0) == grandchild && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                     "grandchild status %#x", status);
        check_identity("session leader", root, me, me);
        _exit(victim_failures() ? 1 : 0);
    }

    pid_t grouped = fork();
    if (grouped == 0) {
        setpgid(0, 0);
        victim_wait();
        check_identity("group leader", root, root_sid, getpid());
        for (int i = 0; i < 500 && shared[0] != 42; ++i)
            usleep(10000);
        victim_check(shared[0] == 42 && shared[1] == 7, "shared memory not shared: %d %d", shared[0], shared[1]);
        for (int i = 0; i < 500 && file_shared[0] != 43; ++i)
            usleep(10000);
        victim_check(file_shared[0] == 43, "shared file mapping not shared: %d", file_shared[0]);
        _exit(victim_failures() ? 1 : 0);
    }

    /* A group whose leader exits: `member` stays in it. */
    int ends[2];
    if (pipe(ends) != 0)
        return 2;
    pid_t gone = fork();
    if (gone == 0) {
        char byte;
        setpgid(0, 0);
        close(ends[1]);
        if (read(ends[0], &byte, 1) < 0)
            _exit(1);
        _exit(0);
    }
    setpgid(gone, gone);
    pid_t member = fork();
    if (member == 0) {
        close(ends[0]);
        close(ends[1]);
        setpgid(0, gone);
        victim_wait();
        check_identity("member of a leaderless group", root, root_sid, gone);
        _exit(victim_failures() ? 1 : 0);
    }
    setpgid(member, gone);
    close(ends[0]);
    close(ends[1]);   /* lets `gone` exit */
    waitpid(gone, NULL, 0);

    /* Let the children settle (setsid, setpgid, the zombie's exit). */
    for (int i = 0; i < 100; ++i) {
        if (getpgid(grouped) == grouped && getsid(leader) == leader)
            break;
        usleep(10000);
    }
    usleep(100000);
    victim_ready();
    victim_wait();

    file_shared[0] = 43;
    shared[0] = 42;
    check_identity("root", getppid(), root_sid, root_pgid);
    victim_check(getpid() == root, "pid %d, was %d", getpid(), root);
    kill(leader, SIGUSR1);
    kill(grouped, SIGUSR1);
    kill(member, SIGUSR1);
    int status = 0;
    victim_check(waitpid(zombie, &status, 0) == zombie && WIFEXITED(status) && WEXITSTATUS(status) == 7,
                 "zombie status %#x", status);
    victim_check(waitpid(leader, &status, 0) == leader && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "session leader status %#x", status);
    victim_check(waitpid(grouped, &status, 0) == grouped && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "group leader status %#x", status);
    victim_check(waitpid(member, &status, 0) == member && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "leaderless group member status %#x", status);
    unlink(path);
    return victim_finish();
}
