/* A child with distinct real, effective, saved and filesystem ids (zdtm
 * pid00): uids 1/2/3 (filesystem uid the effective one), gids 5/6/7 with
 * filesystem gid 8, set as root. After restore it checks them itself and
 * reports through a pipe. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    int go[2], result[2];
    if (pipe(go) || pipe(result))
        return 2;
    pid_t child = fork();
    if (child < 0)
        return 2;
    if (child == 0) {
        close(go[1]);
        close(result[0]);
        if (setresgid(5, 6, 7) || setfsgid(8) < 0 || setresuid(1, 2, 3))
            _exit(2);
        char byte = 0;
        if (read(go[0], &byte, 1) != 0)
            _exit(2);
        uid_t ruid = 0, euid = 0, suid = 0;
        gid_t rgid = 0, egid = 0, sgid = 0;
        getresuid(&ruid, &euid, &suid);
        getresgid(&rgid, &egid, &sgid);
        /* setfs[ug]id() return the previous value; -1 changes nothing. */
        int fsuid = setfsuid(-1), fsgid = setfsgid(-1);
        char report[64];
        int length = snprintf(report, sizeof(report), "%d %d %d %d %d %d %d %d", (int)ruid, (int)euid, (int)suid, fsuid,
                              (int)rgid, (int)egid, (int)sgid, fsgid);
        _exit(write(result[1], report, length) == length ? 0 : 1);
    }
    close(go[0]);
    close(result[1]);
    victim_ready();
    victim_wait();
    close(go[1]);
    char report[64] = { 0 };
    ssize_t length = read(result[0], report, sizeof(report) - 1);
    victim_check(length > 0 && strcmp(report, "1 2 3 2 5 6 7 8") == 0,
                 "the child's uids/fsuid and gids/fsgid are '%s', not '1 2 3 2 5 6 7 8'", report);
    int status = 0;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "child status %#x", status);
    return victim_finish();
}
