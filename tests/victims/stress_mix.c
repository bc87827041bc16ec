/* The victim of the stress loop (tests/e2e/stress_test.cpp): a tree whose
 * state keeps changing while it is dumped and restored again and again (each
 * restored tree is the one dumped next), and that checks itself after every
 * restore.
 *
 * The root has three threads that never stop talking to its children:
 *   - "pipe": sends numbers to child A through one pipe and reads each answer
 *     (3n+1) from another after a short nap, so an answer usually sits in a
 *     pipe when the tree is frozen;
 *   - "stream": the same with child B over a stream socketpair;
 *   - "datagram": receives numbered datagrams of varying length that child
 *     B's second thread sends over a datagram socketpair, napping between
 *     reads so a few are usually queued.
 * Every side checks that each number is the successor of the previous one
 * and each answer the expected one: a byte lost, duplicated or reordered by a
 * dump or restore is seen. Child A has a child of its own (in poll() loops,
 * checking its parent) and child B is in its own process group. A zombie
 * exited with code 7 stays unreaped until the end.
 *
 * The main thread answers SIGUSR2 with a check round r: the pid and the tids
 * are the same, the three threads and both children made progress, a 1 MiB
 * buffer holds the pattern of round r-1 (then it is rewritten for round r),
 * a journal file sits at offset 16*(r-1) with every earlier record intact
 * (then record r is written), the descriptors are the same kinds at the same
 * numbers as at READY and the memory map is the one of the first check (so
 * nothing accumulates across restores). It logs "CHECK r ..." (or FAIL
 * lines). SIGUSR1 ends it: the threads and children stop, every exit status
 * is checked, then PASS. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "victim.h"

#define STOP UINT64_MAX
#define BUFFER_SIZE (1 << 20)
#define RECORD_SIZE 16

/* victim_check() from several threads. */
static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
#define CHECK(ok, ...)                                                                                                 \
    do {                                                                                                               \
        if (!(ok)) {                                                                                                   \
            pthread_mutex_lock(&check_lock);                                                                           \
            victim_check(0, __VA_ARGS__);                                                                              \
            pthread_mutex_unlock(&check_lock);                                                                         \
        }                                                                                                              \
    } while (0)

static void nap_ms(int milliseconds)
{
    struct timespec nap = { 0, milliseconds * 1000L * 1000L };
    while (nanosleep(&nap, &nap) != 0 && errno == EINTR)
        ;
}

static int write_exactly(int fd, const void *buffer, size_t size)
{
    size_t done = 0;
    while (done < size) {
        ssize_t put = write(fd, (const char *)buffer + done, size - done);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0)
            return 0;
        done += (size_t)put;
    }
    return 1;
}

static uint64_t answer(uint64_t number) { return number * 3 + 1; }

/* ------------------------------------------------------------ children */

/* Reads numbers from `in` (1, 2, 3, ...) and writes their answers to `out`
 * until STOP; returns 1 if every number was the expected one. */
static int echo_numbers(const char *who, int in, int out)
{
    uint64_t expected = 1, number = 0;
    for (;;) {
        if (!victim_read_exactly(in, &number, sizeof(number))) {
            CHECK(0, "%s: read failed after %lu (errno %d)", who, (unsigned long)expected - 1, errno);
            return 0;
        }
        if (number == STOP)
            return 1;
        CHECK(number == expected, "%s: got %lu, expected %lu", who, (unsigned long)number, (unsigned long)expected);
        if (number != expected)
            return 0;
        uint64_t reply = answer(number);
        if (!write_exactly(out, &reply, sizeof(reply))) {
            CHECK(0, "%s: write failed (errno %d)", who, errno);
            return 0;
        }
        ++expected;
    }
}

/* Child A's child: poll() loops until a byte arrives, checking its parent. */
static int run_grandchild(pid_t parent, int stop_fd)
{
    for (;;) {
        struct pollfd wait_for = { .fd = stop_fd, .events = POLLIN };
        int ready = poll(&wait_for, 1, 20);
        if (ready < 0 && errno != EINTR) {
            CHECK(0, "grandchild: poll failed (errno %d)", errno);
            break;
        }
        CHECK(getppid() == parent, "grandchild: parent %d, was %d", getppid(), parent);
        if (ready == 1)
            break;
    }
    return victim_failures() ? 1 : 0;
}

static int run_child_a(pid_t root, int to_child, int from_child)
{
    int stop[2];
    if (pipe(stop))
        return 2;
    pid_t self = getpid();
    pid_t grandchild = fork();
    if (grandchild == 0)
        _exit(run_grandchild(self, stop[0]));
    echo_numbers("child A", to_child, from_child);
    CHECK(getppid() == root, "child A: parent %d, was %d", getppid(), root);
    int status = 0;
    CHECK(write(stop[1], "x", 1) == 1, "child A: cannot stop the grandchild");
    CHECK(waitpid(grandchild, &status, 0) == grandchild && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "child A: grandchild status %#x", status);
    return victim_failures() ? 1 : 0;
}

static volatile int sender_stop;

/* Child B's second thread: datagram n holds n and then 8 + n % 200 pattern
 * bytes; one every millisecond, STOP last. */
static void *send_datagrams(void *argument)
{
    int fd = *(int *)argument;
    char datagram[256];
    for (uint64_t number = 1;; ++number) {
        uint64_t sent = sender_stop ? STOP : number;
        size_t length = sizeof(sent) + 8 + sent % 200;
        memcpy(datagram, &sent, sizeof(sent));
        victim_fill(datagram + sizeof(sent), length - sizeof(sent), 0, (int)(sent % 26));
        ssize_t put;
        do
            put = send(fd, datagram, length, 0);
        while (put < 0 && errno == EINTR);
        if (put != (ssize_t)length) {
            CHECK(0, "child B: send of datagram %lu returned %zd (errno %d)", (unsigned long)sent, put, errno);
            break;
        }
        if (sent == STOP)
            break;
        nap_ms(1);
    }
    return NULL;
}

static int run_child_b(pid_t root, int stream, int datagrams)
{
    setpgid(0, 0);
    pthread_t sender;
    if (pthread_create(&sender, NULL, send_datagrams, &datagrams))
        return 2;
    echo_numbers("child B", stream, stream);
    sender_stop = 1;
    pthread_join(sender, NULL);
    CHECK(getppid() == root, "child B: parent %d, was %d", getppid(), root);
    CHECK(getpgid(0) == getpid(), "child B: process group %d, was its own", getpgid(0));
    return victim_failures() ? 1 : 0;
}

/* ------------------------------------------------------------ root threads */

enum { PIPE_THREAD, STREAM_THREAD, DATAGRAM_THREAD, THREADS };
static pid_t thread_tids[THREADS];
static volatile uint64_t progress[THREADS];
static volatile int finishing;

struct talk {
    int index;
    const char *who;
    int out, in;
};

/* Sends 1, 2, 3, ... and checks each answer, napping in between so an
 * answer usually waits in the pipe or socket; STOP once finishing. */
static void *talk_numbers(void *argument)
{
    struct talk *talk = argument;
    thread_tids[talk->index] = gettid();
    for (uint64_t number = 1; !finishing; ++number) {
        uint64_t reply = 0;
        if (!write_exactly(talk->out, &number, sizeof(number))) {
            CHECK(0, "%s thread: write of %lu failed (errno %d)", talk->who, (unsigned long)number, errno);
            return NULL;
        }
        nap_ms(1);
        if (!victim_read_exactly(talk->in, &reply, sizeof(reply)) || reply != answer(number)) {
            CHECK(0, "%s thread: answer to %lu was %lu (errno %d)", talk->who, (unsigned long)number,
                  (unsigned long)reply, errno);
            return NULL;
        }
        progress[talk->index] = number;
    }
    uint64_t stop = STOP;
    CHECK(write_exactly(talk->out, &stop, sizeof(stop)), "%s thread: cannot send STOP", talk->who);
    return NULL;
}

static void *receive_datagrams(void *argument)
{
    int fd = *(int *)argument;
    thread_tids[DATAGRAM_THREAD] = gettid();
    char datagram[512];
    for (uint64_t expected = 1;; ++expected) {
        ssize_t got;
        do
            got = recv(fd, datagram, sizeof(datagram), 0);
        while (got < 0 && errno == EINTR);
        uint64_t number = 0;
        if (got >= (ssize_t)sizeof(number))
            memcpy(&number, datagram, sizeof(number));
        if (number == STOP && got == (ssize_t)(sizeof(number) + 8 + STOP % 200))
            break;
        size_t length = sizeof(number) + 8 + number % 200;
        if (got != (ssize_t)length || number != expected
            || !victim_has_pattern(datagram + sizeof(number), length - sizeof(number), 0, (int)(number % 26))) {
            CHECK(0, "datagram thread: got %zd bytes numbered %lu, expected %zu bytes numbered %lu (errno %d)", got,
                  (unsigned long)number, sizeof(number) + 8 + expected % 200, (unsigned long)expected, errno);
            return NULL;
        }
        progress[DATAGRAM_THREAD] = number;
        if (number % 4 == 0)
            nap_ms(3);
    }
    return NULL;
}

/* ------------------------------------------------------------ snapshots */

/* The tids of the process, sorted, as text. */
static void list_tids(char *out, size_t size)
{
    out[0] = 0;
    DIR *dir = opendir("/proc/self/task");
    if (!dir)
        return;
    int tids[16], count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) && count < 16)
        if (entry->d_name[0] != '.')
            tids[count++] = atoi(entry->d_name);
    closedir(dir);
    victim_sort_numbers(tids, count);
    for (int i = 0; i < count; ++i) {
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%d ", tids[i]);
    }
}

/* ------------------------------------------------------------ checks */

static volatile sig_atomic_t check_requests;

static void on_usr2(int signal)
{
    (void)signal;
    ++check_requests;
}

struct state {
    pid_t root, child_a, child_b, zombie;
    char *buffer;
    int journal;
    char fds[4096], tids[256];
    char maps[32768];   /* of the first check */
    uint64_t progress_seen[THREADS];
};

static int child_of_root(pid_t child, pid_t root)
{
    char path[64], stat[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", child);
    victim_read_text(path, stat, sizeof(stat));
    const char *end = strrchr(stat, ')');
    int parent = 0;
    return end && sscanf(end + 2, "%*c %d", &parent) == 1 && parent == root;
}

static void check_round(struct state *state, int round)
{
    static char now[32768];
    CHECK(getpid() == state->root, "round %d: pid %d, was %d", round, getpid(), state->root);
    list_tids(now, sizeof(now));
    CHECK(strcmp(now, state->tids) == 0, "round %d: threads %s, were %s", round, now, state->tids);
    victim_list_fds(now, sizeof(now), 1);
    CHECK(strcmp(now, state->fds) == 0, "round %d: descriptors changed at: %.200s (now %.200s)", round,
          victim_first_difference(state->fds, now), victim_first_difference(now, state->fds));
    victim_read_maps(now, sizeof(now));
    if (round == 1)
        memcpy(state->maps, now, sizeof(state->maps));
    CHECK(strcmp(now, state->maps) == 0, "round %d: memory map changed since round 1 at: %.300s (now %.300s)", round,
          victim_first_difference(state->maps, now), victim_first_difference(now, state->maps));

    /* Every thread goes on (given up to 10 s on a busy machine). */
    for (int i = 0; i < 1000; ++i) {
        int moved = 1;
        for (int t = 0; t < THREADS; ++t)
            moved &= progress[t] > state->progress_seen[t];
        if (moved)
            break;
        nap_ms(10);
    }
    static const char *names[THREADS] = { "pipe", "stream", "datagram" };
    for (int t = 0; t < THREADS; ++t) {
        CHECK(progress[t] > state->progress_seen[t], "round %d: the %s thread stopped at %lu", round, names[t],
              (unsigned long)progress[t]);
        state->progress_seen[t] = progress[t];
    }
    CHECK(child_of_root(state->child_a, state->root) && child_of_root(state->child_b, state->root),
          "round %d: a child is gone or has another parent", round);
    siginfo_t exited = { 0 };
    CHECK(waitid(P_PID, (id_t)state->zombie, &exited, WEXITED | WNOWAIT) == 0 && exited.si_status == 7,
          "round %d: zombie %d not there with status 7", round, state->zombie);

    /* Memory of the last round, then this round's. */
    CHECK(victim_has_pattern(state->buffer, BUFFER_SIZE, 0, round - 1), "round %d: buffer lost round %d's pattern",
          round, round - 1);
    victim_fill(state->buffer, BUFFER_SIZE, 0, round);

    /* The journal: every earlier record, the offset, then this record. */
    off_t offset = lseek(state->journal, 0, SEEK_CUR);
    CHECK(offset == (off_t)RECORD_SIZE * (round - 1), "round %d: journal offset %ld", round, (long)offset);
    for (int earlier = 1; earlier < round; ++earlier) {
        char record[32] = "", expected[32];
        snprintf(expected, sizeof(expected), "round %9d\n", earlier);
        if (pread(state->journal, record, RECORD_SIZE, (off_t)RECORD_SIZE * (earlier - 1)) != RECORD_SIZE
            || memcmp(record, expected, RECORD_SIZE) != 0) {
            CHECK(0, "round %d: journal record %d is '%.16s'", round, earlier, record);
            break;
        }
    }
    char record[32];
    snprintf(record, sizeof(record), "round %9d\n", round);
    CHECK(write_exactly(state->journal, record, RECORD_SIZE), "round %d: journal write failed", round);

    victim_say("CHECK %d pipe=%lu stream=%lu datagrams=%lu failures=%d", round, (unsigned long)progress[PIPE_THREAD],
               (unsigned long)progress[STREAM_THREAD], (unsigned long)progress[DATAGRAM_THREAD], victim_failures());
}

static void wait_child(pid_t child, int code, const char *who)
{
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == code,
          "%s: status %#x, expected exit %d", who, status, code);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    static struct state state;
    state.root = getpid();
    int to_a[2], from_a[2], stream[2], datagrams[2];
    if (pipe(to_a) || pipe(from_a) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, stream)
        || socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, datagrams))
        return 2;

    state.zombie = fork();
    if (state.zombie == 0)
        _exit(7);
    state.child_a = fork();
    if (state.child_a == 0) {
        close(to_a[1]);
        close(from_a[0]);
        close(stream[0]);
        close(stream[1]);
        close(datagrams[0]);
        close(datagrams[1]);
        _exit(run_child_a(state.root, to_a[0], from_a[1]));
    }
    state.child_b = fork();
    if (state.child_b == 0) {
        close(to_a[0]);
        close(to_a[1]);
        close(from_a[0]);
        close(from_a[1]);
        close(stream[0]);
        close(datagrams[0]);
        _exit(run_child_b(state.root, stream[1], datagrams[1]));
    }
    close(to_a[0]);
    close(from_a[1]);
    close(stream[1]);
    close(datagrams[1]);

    char path[4200];
    snprintf(path, sizeof(path), "%s.journal", argv[1]);
    state.journal = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    state.buffer = malloc(BUFFER_SIZE);
    if (state.journal < 0 || !state.buffer)
        return 2;
    victim_fill(state.buffer, BUFFER_SIZE, 0, 0);

    /* Only the main thread takes SIGUSR1 and SIGUSR2. */
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_usr2;
    sigaction(SIGUSR2, &action, NULL);
    sigset_t signals, old;
    sigemptyset(&signals);
    sigaddset(&signals, SIGUSR1);
    sigaddset(&signals, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &signals, &old);
    struct talk pipe_talk = { PIPE_THREAD, "pipe", to_a[1], from_a[0] };
    struct talk stream_talk = { STREAM_THREAD, "stream", stream[0], stream[0] };
    pthread_t threads[THREADS];
    if (pthread_create(&threads[PIPE_THREAD], NULL, talk_numbers, &pipe_talk)
        || pthread_create(&threads[STREAM_THREAD], NULL, talk_numbers, &stream_talk)
        || pthread_create(&threads[DATAGRAM_THREAD], NULL, receive_datagrams, &datagrams[0]))
        return 2;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    while (!thread_tids[PIPE_THREAD] || !thread_tids[STREAM_THREAD] || !thread_tids[DATAGRAM_THREAD]
           || !progress[PIPE_THREAD] || !progress[STREAM_THREAD] || !progress[DATAGRAM_THREAD])
        nap_ms(1);
    siginfo_t exited;
    if (waitid(P_PID, (id_t)state.zombie, &exited, WEXITED | WNOWAIT))
        return 2;
    victim_list_fds(state.fds, sizeof(state.fds), 1);
    list_tids(state.tids, sizeof(state.tids));
    victim_say("PIDS %d %d %d %d %d %d %d", state.root, thread_tids[0], thread_tids[1], thread_tids[2], state.zombie,
               state.child_a, state.child_b);
    victim_ready();

    int rounds = 0;
    while (!victim_released()) {
        if (rounds < check_requests)
            check_round(&state, ++rounds);
        else
            nap_ms(5);
    }

    finishing = 1;
    for (int t = 0; t < THREADS; ++t)
        pthread_join(threads[t], NULL);
    wait_child(state.child_a, 0, "child A");
    wait_child(state.child_b, 0, "child B");
    wait_child(state.zombie, 7, "zombie");
    victim_say("ROUNDS %d", rounds);
    return victim_finish();
}
