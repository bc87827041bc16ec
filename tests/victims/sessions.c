/* Processes in a session that is neither their own nor their parent's
 * (zdtm session00). The root is a child sub-reaper and leads a session.
 * - "born": a child forks a grandchild, then calls setsid(): the grandchild
 *   stays in the root's session, under a parent that leads another one.
 * - "double": the same two levels down: a child forks, calls setsid(); its
 *   child forks a grandchild, then calls setsid() too.
 * - "orphan": a child calls setsid(), forks a grandchild and exits: the
 *   grandchild, adopted by the root, is in (and in the group of) a session
 *   whose leader is gone; it has a child of its own in that session.
 * - "orphans": the same with two grandchildren of one gone session.
 * Restore needs the order of creation for the first two and a helper
 * process for the other two. With "outside", only this: a grandchild whose
 * parent exits goes to the harness, outside the tree, and stays in the
 * root's session (zdtm session00 in the host flavour): no restore can give
 * the root its pid back while it lives. Every process checks its parent, session and
 * group itself after restore; parents reap their children and pass on
 * their status. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

#define MAX_PROCESSES 16

static int report[2];   /* pids of the processes to release, to the root */

static void announce(void)
{
    pid_t me = getpid();
    if (write(report[1], &me, sizeof(me)) != sizeof(me))
        _exit(2);
}

static void check_identity(const char *who, pid_t ppid, pid_t sid, pid_t pgid)
{
    victim_check(getppid() == ppid && getsid(0) == sid && getpgid(0) == pgid,
                 "%s: parent %d session %d group %d, expected %d %d %d", who, getppid(), getsid(0), getpgid(0), ppid, sid,
                 pgid);
}

static void reap(pid_t child, const char *who)
{
    int status = -1;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "%s: status %#x", who, status);
}

/* Waits for the release, checks, reaps `child` (if any) and exits. */
static __attribute__((noreturn)) void live(const char *who, pid_t ppid, pid_t sid, pid_t pgid, pid_t child)
{
    announce();
    victim_wait();
    check_identity(who, ppid, sid, pgid);
    if (child > 0)
        reap(child, who);
    _exit(victim_failures() ? 1 : 0);
}

/* A child that forks `levels` times down, each parent calling setsid()
 * after the fork; the last one stays in the session of `sid`. */
static __attribute__((noreturn)) void born_before_setsid(int levels, pid_t sid, pid_t pgid)
{
    pid_t parent = getppid();
    pid_t child = fork();
    if (child < 0)
        _exit(2);
    if (child == 0) {
        if (levels > 1)
            born_before_setsid(levels - 1, sid, pgid);
        live("born grandchild", getppid(), sid, pgid, 0);
    }
    setsid();
    live("setsid after fork", parent, getpid(), getpid(), child);
}

/* A child that leads a new session, forks `count` children in it and
 * exits; the children are adopted by the root. */
static __attribute__((noreturn)) void orphans_of_gone_session(int count, pid_t root)
{
    setsid();
    pid_t session = getpid();
    for (int i = 0; i < count; ++i) {
        pid_t child = fork();
        if (child < 0)
            _exit(2);
        if (child != 0)
            continue;
        while (getppid() != root)
            usleep(1000);
        pid_t grandchild = fork();
        if (grandchild == 0)
            live("child of the orphan", getppid(), session, session, 0);
        live("orphan", root, session, session, grandchild);
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    pid_t root = getpid();
    if (argc > 2 && strcmp(argv[2], "outside") == 0) {
        setsid();
        pid_t middle = fork();
        if (middle == 0) {
            if (fork() == 0) {
                victim_wait();
                _exit(0);
            }
            _exit(0);
        }
        reap(middle, "middle");
        victim_ready();
        victim_wait();
        return victim_finish();
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    setsid();   /* fails if the root leads a group already: it leads its session then, or not; both work */
    pid_t sid = getsid(0), pgid = getpgid(0);
    if (pipe(report) != 0)
        return 2;
    /* Processes in the tree once every orphan was adopted: each announces
     * itself. */
    int expected = 0;
    pid_t children[4];
    int count = 0;
    children[count] = fork();
    if (children[count] == 0)
        born_before_setsid(1, sid, pgid);
    count++, expected += 2;
    children[count] = fork();
    if (children[count] == 0)
        born_before_setsid(2, sid, pgid);
    count++, expected += 3;
    pid_t gone = fork();
    if (gone == 0)
        orphans_of_gone_session(1, root);
    expected += 2;
    pid_t gone_two = fork();
    if (gone_two == 0)
        orphans_of_gone_session(2, root);
    expected += 4;
    reap(gone, "session leader that exits");
    reap(gone_two, "session leader that exits");
    pid_t pids[MAX_PROCESSES];
    for (int i = 0; i < expected; ++i)
        if (!victim_read_exactly(report[0], &pids[i], sizeof(pids[i])))
            return 2;
    victim_ready();
    victim_wait();
    check_identity("root", getppid(), sid, pgid);
    for (int i = 0; i < expected; ++i)
        kill(pids[i], SIGUSR1);
    for (int i = 0; i < count; ++i)
        reap(children[i], "child");
    /* The adopted orphans, now children of the root. */
    int status = 0;
    pid_t adopted;
    int orphans = 0;
    while ((adopted = waitpid(-1, &status, 0)) > 0) {
        victim_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "orphan %d: status %#x", adopted, status);
        orphans++;
    }
    victim_check(orphans == 3, "%d orphans reaped, expected 3", orphans);
    return victim_finish();
}
