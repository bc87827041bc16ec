/* A semaphore taken with SEM_UNDO (a lock the process holds). By default
 * in cryo's IPC namespace: the kernel applies the undo entry when the dump
 * kills the process, so the restored process finds its lock released (1),
 * as documented, and the dump says so; the victim removes the set when it
 * ends. With "ns" in an IPC namespace of its own, whose values were saved
 * before the kill: the semaphore is still taken (0) after restore. */
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
    victim_ready();
    victim_wait();
    int value = semctl(id, 0, GETVAL);
    int expected = own_namespace ? 0 : 1;
    victim_check(value == expected, "the semaphore taken with SEM_UNDO reads %d, expected %d", value, expected);
    if (!own_namespace)
        semctl(id, 0, IPC_RMID);
    return victim_finish();
}
