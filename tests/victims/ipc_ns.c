/* UTS and IPC namespaces (zdtm uts*, ipc_ns). The root leaves cryo's
 * namespaces for new UTS and IPC ones: a hostname and domain name, System V
 * shared memory segments (one keyed, one IPC_PRIVATE, with holes), a
 * semaphore set, message queues with messages of several types, and a
 * sysctl of the namespace. Child `sharer` stays in both; child `own_uts`
 * takes a UTS namespace of its own (another hostname) and keeps the IPC
 * one; its child `returner` goes back into the root's UTS namespace by
 * setns(), so it shares it with a process that is not its parent. After
 * restore every process checks which namespaces it shares with the root
 * and what is in them; the root checks every object's id, owner, mode and
 * content. The root also sets its audit login uid (zdtm loginuid), which
 * must come back too. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

#define SHM_KEY 0x43525931
#define SEM_KEY 0x43525932
#define MSG_KEY 0x43525933
#define SHM_SIZE (3 * 4096 + 100)

union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
};

struct message {
    long type;
    char text[64];
};

static const struct {
    long type;
    const char *text;
} messages[] = { { 1, "first" }, { 7, "second, of type 7" }, { 1, "third" } };

static int shm_id, private_shm_id, sem_id, msg_id, private_msg_id;

static ino_t namespace_inode(pid_t pid, const char *kind)
{
    char path[64];
    struct stat status;
    snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, kind);
    return stat(path, &status) == 0 ? status.st_ino : 0;
}

static void check_hostname(const char *who, const char *wanted)
{
    char name[65] = "";
    gethostname(name, sizeof(name));
    victim_check(strcmp(name, wanted) == 0, "%s: hostname '%s', expected '%s'", who, name, wanted);
}

/* Which namespaces `who` shares with the root. */
static void check_shared(const char *who, pid_t root, int same_uts)
{
    pid_t me = getpid();
    victim_check(namespace_inode(me, "ipc") == namespace_inode(root, "ipc"), "%s: not in the root's IPC namespace", who);
    victim_check((namespace_inode(me, "uts") == namespace_inode(root, "uts")) == same_uts,
                 "%s: %s the root's UTS namespace", who, same_uts ? "not in" : "in");
}

static int set_up_objects(void)
{
    shm_id = shmget(SHM_KEY, SHM_SIZE, IPC_CREAT | IPC_EXCL | 0640);
    private_shm_id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    if (shm_id < 0 || private_shm_id < 0)
        return -1;
    char *memory = shmat(shm_id, NULL, 0);
    char *private_memory = shmat(private_shm_id, NULL, 0);
    if (memory == (void *)-1 || private_memory == (void *)-1)
        return -1;
    victim_fill(memory, 2 * 4096, 0, 11);   /* the third page stays zero */
    victim_fill(memory + 3 * 4096, 100, 3 * 4096, 11);
    victim_fill(private_memory, 4096, 0, 12);
    shmdt(memory);
    shmdt(private_memory);

    sem_id = semget(SEM_KEY, 3, IPC_CREAT | IPC_EXCL | 0604);
    unsigned short values[3] = { 5, 0, 32767 };
    if (sem_id < 0 || semctl(sem_id, 0, SETALL, (union semun) { .array = values }) != 0)
        return -1;

    msg_id = msgget(MSG_KEY, IPC_CREAT | IPC_EXCL | 0620);
    private_msg_id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    if (msg_id < 0 || private_msg_id < 0)
        return -1;
    for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); ++i) {
        struct message message = { .type = messages[i].type };
        strcpy(message.text, messages[i].text);
        if (msgsnd(msg_id, &message, strlen(message.text) + 1, 0) != 0)
            return -1;
    }
    struct message private_message = { .type = 3, .text = "private" };
    if (msgsnd(private_msg_id, &private_message, 8, 0) != 0)
        return -1;
    struct msqid_ds queue;
    if (msgctl(msg_id, IPC_STAT, &queue) != 0)
        return -1;
    queue.msg_qbytes = 4000;
    if (msgctl(msg_id, IPC_SET, &queue) != 0)
        return -1;
    int sysctl = open("/proc/sys/kernel/msgmnb", O_WRONLY);
    if (sysctl < 0 || write(sysctl, "12345", 5) != 5)
        return -1;
    close(sysctl);
    /* The id the next semaphore set will get (zdtm ipc_ns checks it). */
    sysctl = open("/proc/sys/kernel/sem_next_id", O_WRONLY);
    if (sysctl < 0 || write(sysctl, "777", 3) != 3)
        return -1;
    close(sysctl);
    return 0;
}

static void check_objects(void)
{
    victim_check(shmget(SHM_KEY, 0, 0) == shm_id, "shm key %#x: id %d, was %d", SHM_KEY, shmget(SHM_KEY, 0, 0), shm_id);
    struct shmid_ds segment;
    victim_check(shmctl(shm_id, IPC_STAT, &segment) == 0 && segment.shm_segsz == SHM_SIZE
                     && (segment.shm_perm.mode & 0777) == 0640 && segment.shm_nattch == 0,
                 "shm %d: size %zu mode %o attached %lu", shm_id, (size_t)segment.shm_segsz, segment.shm_perm.mode,
                 (unsigned long)segment.shm_nattch);
    char *memory = shmat(shm_id, NULL, SHM_RDONLY);
    victim_check(memory != (void *)-1, "shmat %d", shm_id);
    if (memory != (void *)-1) {
        victim_check(victim_has_pattern(memory, 2 * 4096, 0, 11), "shm %d: first pages", shm_id);
        victim_check(victim_all_zero(memory + 2 * 4096, 4096), "shm %d: the zero page", shm_id);
        victim_check(victim_has_pattern(memory + 3 * 4096, 100, 3 * 4096, 11), "shm %d: last bytes", shm_id);
        shmdt(memory);
    }
    char *private_memory = shmat(private_shm_id, NULL, SHM_RDONLY);
    victim_check(private_memory != (void *)-1 && victim_has_pattern(private_memory, 4096, 0, 12),
                 "private shm %d lost or changed", private_shm_id);

    unsigned short values[3] = { 0 };
    victim_check(semget(SEM_KEY, 0, 0) == sem_id, "sem key %#x: id %d, was %d", SEM_KEY, semget(SEM_KEY, 0, 0), sem_id);
    victim_check(semctl(sem_id, 0, GETALL, (union semun) { .array = values }) == 0 && values[0] == 5 && values[1] == 0
                     && values[2] == 32767,
                 "semaphores %u %u %u", values[0], values[1], values[2]);
    struct semid_ds set;
    victim_check(semctl(sem_id, 0, IPC_STAT, (union semun) { .buf = &set }) == 0 && (set.sem_perm.mode & 0777) == 0604,
                 "sem %d: mode %o", sem_id, set.sem_perm.mode);

    victim_check(msgget(MSG_KEY, 0) == msg_id, "msg key %#x: id %d, was %d", MSG_KEY, msgget(MSG_KEY, 0), msg_id);
    struct msqid_ds queue;
    victim_check(msgctl(msg_id, IPC_STAT, &queue) == 0 && queue.msg_qbytes == 4000 && queue.msg_qnum == 3
                     && (queue.msg_perm.mode & 0777) == 0620,
                 "msg %d: limit %lu, %lu messages, mode %o", msg_id, (unsigned long)queue.msg_qbytes,
                 (unsigned long)queue.msg_qnum, queue.msg_perm.mode);
    for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); ++i) {
        struct message message = { 0 };
        ssize_t size = msgrcv(msg_id, &message, sizeof(message.text), 0, IPC_NOWAIT);
        victim_check(size == (ssize_t)strlen(messages[i].text) + 1 && message.type == messages[i].type
                         && strcmp(message.text, messages[i].text) == 0,
                     "message %zu: type %ld '%s', expected %ld '%s'", i, message.type, message.text, messages[i].type,
                     messages[i].text);
    }
    struct message private_message = { 0 };
    victim_check(msgrcv(private_msg_id, &private_message, sizeof(private_message.text), 0, IPC_NOWAIT) == 8
                     && private_message.type == 3 && strcmp(private_message.text, "private") == 0,
                 "private message queue %d", private_msg_id);

    char text[64];
    victim_read_text("/proc/sys/kernel/msgmnb", text, sizeof(text));
    victim_check(strcmp(text, "12345\n") == 0, "kernel.msgmnb '%s'", text);
    victim_read_text("/proc/sys/kernel/sem_next_id", text, sizeof(text));
    victim_check(strcmp(text, "777\n") == 0, "kernel.sem_next_id '%s'", text);
    victim_read_text("/proc/sys/kernel/shm_next_id", text, sizeof(text));
    victim_check(strcmp(text, "-1\n") == 0, "kernel.shm_next_id '%s'", text);
}

static void wait_child(pid_t child, const char *who)
{
    int status = -1;
    kill(child, SIGUSR1);
    waitpid(child, &status, 0);
    victim_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s status %#x", who, status);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    if (unshare(CLONE_NEWUTS | CLONE_NEWIPC) != 0 || sethostname("cryo-ipc", 8) != 0
        || setdomainname("cryo-domain", 11) != 0 || set_up_objects() != 0) {
        perror("set up");
        return 2;
    }
    pid_t root = getpid();
    /* No audit in the kernel: no loginuid file, nothing to check. */
    int loginuid = open("/proc/self/loginuid", O_WRONLY);
    int has_loginuid = loginuid >= 0;
    if (has_loginuid && (write(loginuid, "4321", 4) != 4 || close(loginuid) != 0))
        return 2;
    int ready[2];
    if (pipe(ready) != 0)
        return 2;

    pid_t sharer = fork();
    if (sharer == 0) {
        close(ready[0]);
        close(ready[1]);
        victim_wait();
        check_hostname("sharer", "cryo-ipc");
        check_shared("sharer", root, 1);
        _exit(victim_failures() ? 1 : 0);
    }
    pid_t own_uts = fork();
    if (own_uts == 0) {
        if (unshare(CLONE_NEWUTS) != 0 || sethostname("cryo-child", 10) != 0)
            _exit(2);
        pid_t returner = fork();
        if (returner == 0) {
            char path[64];
            snprintf(path, sizeof(path), "/proc/%d/ns/uts", (int)root);
            int uts = open(path, O_RDONLY);
            if (uts < 0 || setns(uts, CLONE_NEWUTS) != 0)
                _exit(2);
            close(uts);
            if (write(ready[1], "r", 1) != 1)
                _exit(2);
            victim_wait();
            check_hostname("returner", "cryo-ipc");
            check_shared("returner", root, 1);
            _exit(victim_failures() ? 1 : 0);
        }
        if (write(ready[1], "o", 1) != 1)
            _exit(2);
        victim_wait();
        check_hostname("own_uts", "cryo-child");
        check_shared("own_uts", root, 0);
        wait_child(returner, "returner");
        _exit(victim_failures() ? 1 : 0);
    }
    char byte;
    for (int i = 0; i < 2; ++i)
        if (read(ready[0], &byte, 1) != 1)
            return 2;
    close(ready[0]);
    close(ready[1]);
    victim_ready();
    victim_wait();

    check_hostname("root", "cryo-ipc");
    char domain[65] = "";
    getdomainname(domain, sizeof(domain));
    victim_check(strcmp(domain, "cryo-domain") == 0, "domain name '%s'", domain);
    /* Not the namespaces of the machine's init. */
    ino_t init_ipc = namespace_inode(1, "ipc");
    victim_check(init_ipc == 0 || init_ipc != namespace_inode(root, "ipc"), "the root is in init's IPC namespace");
    check_objects();
    if (has_loginuid) {
        char text[32];
        victim_read_text("/proc/self/loginuid", text, sizeof(text));
        victim_check(strcmp(text, "4321") == 0, "login uid '%s', expected 4321", text);
    }
    wait_child(sharer, "sharer");
    wait_child(own_uts, "own_uts");
    return victim_finish();
}
