/* A process in a job-control stop when it is dumped (zdtm stopped,
 * stoppedNN).
 *
 * "self": two threads count in memory; the harness stops the process with
 * SIGSTOP after READY, dumps and restores it, checks it is stopped, sends
 * SIGCONT, then SIGUSR1. The victim checks its SIGCONT handler ran, both
 * threads count again, its memory is intact and no signal is left pending.
 *
 * "child": the victim's child, in a process group of its own, is stopped by
 * the victim with SIGTSTP before READY. On release the victim checks the
 * child is still stopped (/proc/CHILD/status), continues it and tells it to
 * check itself through a pipe; the child exits with its failure count. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

#define PATTERN_SIZE (256 * 1024)
static volatile sig_atomic_t continued;
static volatile unsigned long counter;
static char *pattern;

static void on_sigcont(int signal)
{
    (void)signal;
    continued++;
}

static void *count(void *argument)
{
    (void)argument;
    for (;;) {
        counter++;
        usleep(100);
    }
    return NULL;
}

static void check_nothing_pending(const char *who)
{
    sigset_t pending;
    sigpending(&pending);
    for (int signal = 1; signal < NSIG; ++signal)
        victim_check(!sigismember(&pending, signal), "%s: signal %d is pending", who, signal);
}

static void check_memory_and_signals(const char *who)
{
    victim_check(victim_has_pattern(pattern, PATTERN_SIZE, 0, 7), "%s: memory pattern changed", who);
    victim_check(continued >= 1, "%s: the SIGCONT handler did not run", who);
    check_nothing_pending(who);
}

static void install_sigcont_handler(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_sigcont;
    sigaction(SIGCONT, &action, NULL);
}

static int run_self(void)
{
    pthread_t thread;
    pthread_create(&thread, NULL, count, NULL);
    victim_ready();
    victim_wait();
    unsigned long before = counter;
    usleep(50 * 1000);
    victim_check(counter > before, "the counting thread does not run after SIGCONT");
    check_memory_and_signals("self");
    return victim_finish();
}

static void child_main(int go)
{
    char byte;
    ssize_t got;
    /* SIGCONT's handler interrupts the read (no SA_RESTART). */
    while ((got = read(go, &byte, 1)) < 0) { }
    victim_check(got == 1, "child: reading the go-ahead failed");
    check_memory_and_signals("child");
    _exit(victim_failures());
}

static int run_child(void)
{
    int go[2];
    if (pipe(go) < 0)
        return 2;
    pid_t child = fork();
    if (child == 0) {
        close(go[1]);
        setpgid(0, 0);
        child_main(go[0]);
    }
    close(go[0]);
    setpgid(child, child);
    int status = 0;
    kill(child, SIGTSTP);
    if (waitpid(child, &status, WUNTRACED) != child || !WIFSTOPPED(status) || WSTOPSIG(status) != SIGTSTP) {
        victim_say("FAIL: the child did not stop on SIGTSTP (status %#x)\n", status);
        return 1;
    }
    victim_say("CHILD %d\n", child);
    victim_ready();
    victim_wait();

    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", child);
    FILE *file = fopen(path, "r");
    char line[256];
    int stopped = 0;
    while (file && fgets(line, sizeof(line), file))
        if (strncmp(line, "State:", 6) == 0)
            stopped = strstr(line, "T (stopped)") != NULL;
    if (file)
        fclose(file);
    victim_check(stopped, "the child %d is not stopped after restore", child);
    kill(child, SIGCONT);
    if (write(go[1], "g", 1) != 1)
        victim_check(0, "writing the go-ahead failed");
    while (waitpid(child, &status, 0) < 0) { }
    victim_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed %d checks (status %#x)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1, status);
    return victim_finish();
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    install_sigcont_handler();
    pattern = malloc(PATTERN_SIZE);
    victim_fill(pattern, PATTERN_SIZE, 0, 7);
    if (argc > 2 && strcmp(argv[2], "child") == 0)
        return run_child();
    return run_self();
}
