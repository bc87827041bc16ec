/* A process in a chroot jail whose working directory is a subdirectory of
 * the jail. After restore the root and the working directory are the same
 * directories (same inodes), paths resolve inside the jail, and the log
 * opened before the chroot still works. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "victim.h"

static int same_inode(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    char jail[4200], sub[4300];
    snprintf(jail, sizeof(jail), "%s.jail", argv[1]);
    snprintf(sub, sizeof(sub), "%s/sub", jail);
    if (mkdir(jail, 0755) != 0 || mkdir(sub, 0755) != 0 || chdir(sub) != 0 || chroot(jail) != 0)
        return 2;
    struct stat cwd_before, root_before;
    if (stat(".", &cwd_before) != 0 || stat("/", &root_before) != 0)
        return 2;

    victim_ready();
    victim_wait();

    struct stat cwd_after, root_after, sub_after;
    victim_check(stat(".", &cwd_after) == 0 && same_inode(&cwd_before, &cwd_after), "working directory changed");
    victim_check(stat("/", &root_after) == 0 && same_inode(&root_before, &root_after), "root directory changed");
    victim_check(stat("/sub", &sub_after) == 0 && same_inode(&sub_after, &cwd_after), "/sub is not the working directory");
    char cwd[256] = "";
    victim_check(getcwd(cwd, sizeof(cwd)) && strcmp(cwd, "/sub") == 0, "getcwd '%s'", cwd);
    return victim_finish();
}
