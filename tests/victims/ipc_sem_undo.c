/* A semaphore taken with SEM_UNDO (a lock the process holds). By default
 * in cryo's IPC namespace, where the dump must refuse it (killing the
 * process would release the lock); the set is removed at once, so nothing
 * is left behind, and the undo list stays. With "ns" in an IPC namespace
 * of its own: after restore the semaphore is still taken (0), not released
 * by the kill of the original. */
#define _GNU_SOURCE
#include <sched.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <unistd.h>

#include "victim.h"

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    int own_namespace = argc > 2 && strcmp(argv[2], "ns") == 0;
    if (own_namespace && unshare(CLONE_NEWIPC) != 0)
        return 2;
    int id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    struct sembuf release = { .sem_num = 0, .sem_op = 1 }, take = { .sem_num = 0, .sem_op = -1, .sem_flg = SEM_UNDO };
    if (id < 0 || semop(id, &release, 1) != 0 || semop(id, &take, 1) != 0)
        return 2;
    if (!own_namespace && semctl(id, 0, IPC_RMID) != 0)
        return 2;
    victim_ready();
    victim_wait();
    if (own_namespace) {
        int value = semctl(id, 0, GETVAL);
        victim_check(value == 0, "the semaphore taken with SEM_UNDO reads %d", value);
    }
    return victim_finish();
}
