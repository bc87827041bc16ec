/* A working directory removed while the process stays in it (zdtm cwd01,
 * cwd02): the root and its child are in the same directory, made with
 * mode 0751 and removed. After restore both are still in one directory
 * (the same inode), which is empty, removed (no links, getcwd() fails)
 * and has its mode, and /proc/self/cwd names the old path, "(deleted)".
 * The root also holds its working directory open (fd 10: the same
 * directory after restore, zdtm cwd02) and another directory removed while
 * open (fd 11, mode 0705: zdtm rmdir_open). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

static char expected_link[4200];

static void check_directory(const char *who)
{
    char buffer[4200];
    victim_check(getcwd(buffer, sizeof(buffer)) == NULL && errno == ENOENT, "%s: getcwd works: %s", who, buffer);
    ssize_t size = readlink("/proc/self/cwd", buffer, sizeof(buffer) - 1);
    buffer[size > 0 ? size : 0] = '\0';
    victim_check(strcmp(buffer, expected_link) == 0, "%s: cwd '%s', expected '%s'", who, buffer, expected_link);
    struct stat status;
    victim_check(stat(".", &status) == 0 && S_ISDIR(status.st_mode) && (status.st_mode & 07777) == 0751
                     && status.st_nlink == 0,
                 "%s: '.' mode %o, %lu links", who, status.st_mode, (unsigned long)status.st_nlink);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    char directory[4200];
    snprintf(directory, sizeof(directory), "%s.gone", argv[1]);
    snprintf(expected_link, sizeof(expected_link), "%s (deleted)", directory);
    if (mkdir(directory, 0700) != 0 || chmod(directory, 0751) != 0 || chdir(directory) != 0)
        return 2;
    char other[4200];
    snprintf(other, sizeof(other), "%s.other", argv[1]);
    if (dup2(open(".", O_RDONLY | O_DIRECTORY), 10) != 10 || mkdir(other, 0705) != 0
        || dup2(open(other, O_RDONLY | O_DIRECTORY), 11) != 11 || rmdir(other) != 0)
        return 2;
    pid_t child = fork();
    if (child == 0) {
        victim_wait();
        check_directory("child");
        _exit(victim_failures() ? 1 : 0);
    }
    if (rmdir(directory) != 0)
        return 2;
    victim_ready();
    victim_wait();

    check_directory("root");
    char path[64];
    struct stat mine, childs;
    snprintf(path, sizeof(path), "/proc/%d/cwd", (int)child);
    victim_check(stat(".", &mine) == 0 && stat(path, &childs) == 0 && mine.st_ino == childs.st_ino
                     && mine.st_dev == childs.st_dev,
                 "the child is not in the root's working directory");
    struct stat held, removed;
    victim_check(fstat(10, &held) == 0 && held.st_ino == mine.st_ino && held.st_dev == mine.st_dev,
                 "fd 10 is not the working directory any more");
    victim_check(fstat(11, &removed) == 0 && S_ISDIR(removed.st_mode) && (removed.st_mode & 07777) == 0705
                     && removed.st_nlink == 0 && removed.st_ino != mine.st_ino,
                 "fd 11: mode %o, %lu links", removed.st_mode, (unsigned long)removed.st_nlink);
    kill(child, SIGUSR1);
    int status = -1;
    waitpid(child, &status, 0);
    victim_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    return victim_finish();
}
