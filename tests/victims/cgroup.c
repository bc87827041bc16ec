/* A process in a cgroup v2 cgroup the test made (zdtm cgroupNN): after
 * restore its threads are in the same cgroup, "0::PATH" in
 * /proc/self/cgroup and /proc/thread-self/cgroup, PATH given as argument. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "victim.h"

static void check_cgroup(const char *file, const char *expected)
{
    FILE *stream = fopen(file, "r");
    char line[512];
    int found = 0;
    while (stream && fgets(line, sizeof(line), stream)) {
        if (strncmp(line, "0::", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = '\0';
        found = 1;
        victim_check(strcmp(line + 3, expected) == 0, "%s: cgroup %s, expected %s", file, line + 3, expected);
    }
    if (stream)
        fclose(stream);
    victim_check(found, "%s: no cgroup v2 line", file);
}

static const char *expected;

static void *worker(void *argument)
{
    (void)argument;
    victim_wait();
    check_cgroup("/proc/thread-self/cgroup", expected);
    return NULL;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    expected = argc > 2 ? argv[2] : "/";
    pthread_t thread;
    pthread_create(&thread, NULL, worker, NULL);
    victim_ready();
    victim_wait();
    check_cgroup("/proc/self/cgroup", expected);
    pthread_join(thread, NULL);
    return victim_finish();
}
