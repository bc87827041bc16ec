/* System V shared memory attached in the tree (zdtm shm, shm-mp). Segment
 * A (three pages) is attached read-write by the root and, through fork,
 * by its child; the root makes its middle page read-only and unmaps its
 * last page. Segment B (5000 bytes: not a whole number of pages, zdtm
 * shm-unaligned) is attached read-only by the root only.
 * By default both live in cryo's IPC namespace and are marked removed
 * (IPC_RMID) while attached, so nothing is left behind however the test
 * ends; with "ns" the root first takes an IPC namespace of its own, and B
 * is not removed (it has a key); with "keep", B is in cryo's namespace,
 * keyed and not removed, so the restore finds it still there and attaches
 * it again (the victim removes it when it ends). After restore: same ids, contents,
 * protections and holes, attach counts, removed marks, and the child's
 * writes into A are seen by the root. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

#define B_KEY 0x43525934
#define B_SIZE 5000

/* The permissions column of /proc/self/maps for the VMA at `address`. */
static void protection_at(const void *address, char *out)
{
    char maps[65536], prefix[32];
    victim_read_text("/proc/self/maps", maps, sizeof(maps));
    snprintf(prefix, sizeof(prefix), "%lx-", (unsigned long)address);
    strcpy(out, "none");
    for (char *line = maps; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            char *space = strchr(line, ' ');
            if (space)
                sscanf(space + 1, "%4s", out);
            return;
        }
}

static void check_segment(const char *name, int id, size_t size, int removed, unsigned long attached)
{
    struct shmid_ds status;
    int ok = shmctl(id, IPC_STAT, &status) == 0;
    victim_check(ok && status.shm_segsz == size && !!(status.shm_perm.mode & SHM_DEST) == removed
                     && status.shm_nattch == attached,
                 "segment %s (id %d): %s, size %zu, mode %o, %lu attached; expected size %zu, %s, %lu attached", name, id,
                 ok ? "found" : strerror(errno), ok ? (size_t)status.shm_segsz : 0, ok ? status.shm_perm.mode : 0,
                 ok ? (unsigned long)status.shm_nattch : 0, size, removed ? "removed" : "not removed", attached);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    int own_namespace = argc > 2 && strcmp(argv[2], "ns") == 0;
    int keep = own_namespace || (argc > 2 && strcmp(argv[2], "keep") == 0);
    if (own_namespace && unshare(CLONE_NEWIPC) != 0)
        return 2;
    key_t b_key = own_namespace ? B_KEY : keep ? (key_t)(B_KEY + (getpid() << 8)) : IPC_PRIVATE;
    int a = shmget(IPC_PRIVATE, 3 * 4096, IPC_CREAT | 0600);
    int b = shmget(b_key, B_SIZE, IPC_CREAT | IPC_EXCL | 0640);
    if (a < 0 || b < 0)
        return 2;
    char *memory_a = shmat(a, NULL, 0);
    char *writer_b = shmat(b, NULL, 0);
    if (memory_a == (void *)-1 || writer_b == (void *)-1)
        return 2;
    victim_fill(memory_a, 3 * 4096, 0, 21);
    victim_fill(writer_b, B_SIZE, 0, 22);
    shmdt(writer_b);
    char *memory_b = shmat(b, NULL, SHM_RDONLY);
    if (memory_b == (void *)-1 || shmctl(a, IPC_RMID, NULL) != 0 || (!keep && shmctl(b, IPC_RMID, NULL) != 0))
        return 2;

    int ready[2];
    if (pipe(ready) != 0)
        return 2;
    pid_t child = fork();
    if (child == 0) {
        /* Only the whole of A is inherited: the root splits it afterwards. */
        close(ready[0]);
        if (write(ready[1], "c", 1) != 1)
            _exit(2);
        victim_wait();
        victim_check(victim_has_pattern(memory_a, 4096, 0, 21), "child: segment A's first page");
        memory_a[0] = 'C';
        _exit(victim_failures() ? 1 : 0);
    }
    char byte;
    if (read(ready[0], &byte, 1) != 1)
        return 2;
    shmdt(memory_a);   /* the child's attachment stays */
    memory_a = shmat(a, NULL, 0);
    if (memory_a == (void *)-1 || mprotect(memory_a + 4096, 4096, PROT_READ) != 0 || munmap(memory_a + 2 * 4096, 4096) != 0)
        return 2;
    victim_ready();
    victim_wait();

    /* The kernel counts VMAs: the root's two pieces of A and the child's
     * whole A; B in the root and, inherited, in the child. */
    check_segment("A", a, 3 * 4096, 1, 3);
    check_segment("B", b, B_SIZE, !keep, 2);
    if (keep)
        victim_check(shmget(b_key, 0, 0) == b, "key %#x: id %d, expected %d", b_key, shmget(b_key, 0, 0), b);
    victim_check(victim_has_pattern(memory_a, 2 * 4096, 0, 21), "segment A's content");
    victim_check(victim_has_pattern(memory_b, B_SIZE, 0, 22), "segment B's content");
    char protection[8];
    protection_at(memory_a, protection);
    victim_check(strcmp(protection, "rw-s") == 0, "A's first page: %s", protection);
    protection_at(memory_a + 4096, protection);
    victim_check(strcmp(protection, "r--s") == 0, "A's middle page: %s", protection);
    victim_check(msync(memory_a + 2 * 4096, 4096, MS_ASYNC) != 0 && errno == ENOMEM, "A's last page is mapped again");
    protection_at(memory_b, protection);
    victim_check(strcmp(protection, "r--s") == 0, "B: %s", protection);

    kill(child, SIGUSR1);
    int status = -1;
    waitpid(child, &status, 0);
    victim_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    victim_check(memory_a[0] == 'C', "the child's write into A is not seen: not one segment");
    if (keep)
        shmctl(b, IPC_RMID, NULL);
    return victim_finish();
}
