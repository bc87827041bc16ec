/* Lives in a UTS namespace of its own with another hostname, which cryo
 * cannot restore yet: the dump must refuse it, naming the namespace, and
 * leave this process running with its hostname. */
#define _GNU_SOURCE
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "victim.h"

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    if (unshare(CLONE_NEWUTS) != 0 || sethostname("cryo-victim", 11) != 0)
        return 2;
    victim_ready();
    victim_wait();
    char name[64] = "";
    gethostname(name, sizeof(name));
    victim_check(strcmp(name, "cryo-victim") == 0, "hostname '%s'", name);
    return victim_finish();
}
