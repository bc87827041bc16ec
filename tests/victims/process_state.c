/* Per-process settings that zdtm-style tests check one by one: working
 * directory, umask, personality, resource limits (soft lowered, hard
 * lowered), nice value, scheduling policy, process name, parent-death
 * signal (of a child: the root's parent is cryo after a detached restore),
 * dumpable, transparent huge pages disabled, timer slack,
 * no_new_privs without seccomp, child sub-reaper, oom_score_adj (raised,
 * which needs no privilege), a file of /proc/CHILD/ held open (zdtm
 * child_opened_proc). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

static int oom_score_adj(void)
{
    char text[16] = "";
    int fd = open("/proc/self/oom_score_adj", O_RDONLY);
    if (fd < 0 || read(fd, text, sizeof(text) - 1) <= 0)
        return -2000;
    close(fd);
    return atoi(text);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    char directory[4200];
    snprintf(directory, sizeof(directory), "%s.cwd", argv[1]);
    if (mkdir(directory, 0700) != 0 || chdir(directory) != 0)
        return 2;
    char cwd_before[4200];
    if (!getcwd(cwd_before, sizeof(cwd_before)))
        return 2;
    umask(0027);
    personality(PER_LINUX | ADDR_NO_RANDOMIZE);
    struct rlimit files = { .rlim_cur = 200, .rlim_max = 4000 };
    struct rlimit core = { .rlim_cur = 0, .rlim_max = 1 << 20 };
    struct rlimit stack;
    getrlimit(RLIMIT_STACK, &stack);
    stack.rlim_cur = 4 << 20;
    if (setrlimit(RLIMIT_NOFILE, &files) != 0 || setrlimit(RLIMIT_CORE, &core) != 0 || setrlimit(RLIMIT_STACK, &stack) != 0)
        return 2;
    setpriority(PRIO_PROCESS, 0, 7);
    struct sched_param param = { .sched_priority = 0 };
    if (sched_setscheduler(0, SCHED_BATCH, &param) != 0)
        return 2;
    prctl(PR_SET_NAME, "zdtm-state");
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    prctl(PR_SET_TIMERSLACK, 123456);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    /* Before the dumpable flag is cleared, which gives /proc/self to root. */
    int oom = open("/proc/self/oom_score_adj", O_WRONLY);
    if (oom < 0 || write(oom, "417", 3) != 3)
        return 2;
    close(oom);
    prctl(PR_SET_DUMPABLE, 0);

    pid_t child = fork();
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGUSR2);
        victim_wait();
        int signal = 0;
        prctl(PR_GET_PDEATHSIG, &signal);
        victim_check(signal == SIGUSR2, "child: parent-death signal %d", signal);
        _exit(victim_failures() ? 1 : 0);
    }
    usleep(20000);
    char child_stat[64];
    snprintf(child_stat, sizeof(child_stat), "/proc/%d/stat", (int)child);
    int stat_fd = open(child_stat, O_RDONLY);
    if (stat_fd < 0)
        return 2;

    victim_ready();
    victim_wait();
    char stat_text[64] = "", stat_prefix[32];
    snprintf(stat_prefix, sizeof(stat_prefix), "%d (", (int)child);
    victim_check(pread(stat_fd, stat_text, sizeof(stat_text) - 1, 0) > 0 && strncmp(stat_text, stat_prefix, strlen(stat_prefix)) == 0,
                 "%s reads '%.20s'", child_stat, stat_text);
    kill(child, SIGUSR1);
    int status = -1;
    waitpid(child, &status, 0);
    victim_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);

    char cwd_after[4200];
    victim_check(getcwd(cwd_after, sizeof(cwd_after)) && strcmp(cwd_before, cwd_after) == 0, "cwd %s, was %s", cwd_after,
                 cwd_before);
    mode_t mask = umask(0);
    victim_check(mask == 0027, "umask %03o", mask);
    int persona = personality(0xffffffff);
    victim_check(persona == (PER_LINUX | ADDR_NO_RANDOMIZE), "personality %#x", persona);
    struct rlimit now;
    getrlimit(RLIMIT_NOFILE, &now);
    victim_check(now.rlim_cur == 200 && now.rlim_max == 4000, "RLIMIT_NOFILE %ld/%ld", (long)now.rlim_cur, (long)now.rlim_max);
    getrlimit(RLIMIT_CORE, &now);
    victim_check(now.rlim_cur == 0 && now.rlim_max == 1 << 20, "RLIMIT_CORE %ld/%ld", (long)now.rlim_cur, (long)now.rlim_max);
    getrlimit(RLIMIT_STACK, &now);
    victim_check(now.rlim_cur == 4 << 20 && now.rlim_max == stack.rlim_max, "RLIMIT_STACK %ld", (long)now.rlim_cur);
    errno = 0;
    int nice_value = getpriority(PRIO_PROCESS, 0);
    victim_check(nice_value == 7, "nice %d", nice_value);
    victim_check(sched_getscheduler(0) == SCHED_BATCH, "scheduling policy %d", sched_getscheduler(0));
    char name[17] = "";
    prctl(PR_GET_NAME, name);
    victim_check(strcmp(name, "zdtm-state") == 0, "name '%s'", name);
    victim_check(prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1, "THP disable lost");
    victim_check(prctl(PR_GET_TIMERSLACK) == 123456, "timer slack %d", prctl(PR_GET_TIMERSLACK));
    victim_check(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs lost");
    int subreaper = 0;
    prctl(PR_GET_CHILD_SUBREAPER, &subreaper);
    victim_check(subreaper == 1, "child sub-reaper lost");
    victim_check(prctl(PR_GET_DUMPABLE) == 0, "dumpable %d", prctl(PR_GET_DUMPABLE));
    victim_check(oom_score_adj() == 417, "oom_score_adj %d", oom_score_adj());
    if (chdir("/") == 0)
        rmdir(directory);
    return victim_finish();
}
