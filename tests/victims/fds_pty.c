/* A pseudo-terminal pair inside the tree, as a terminal emulator or
 * script(1) has one: the parent holds the master (moved to fd 50, so a
 * slave comes first in the fd table) and two slave open files (read-write,
 * and read-only non-blocking); the slave is in raw-ish mode with unusual
 * control characters and speed, has a window size, exclusive mode, and the
 * master is in packet mode. A child makes a new session whose controlling
 * terminal is the slave (setsid + TIOCSCTTY) and forks a grandchild in a
 * group of its own, which it makes the foreground group; the child also
 * keeps an open file of /dev/tty. Two more pairs, with higher indexes at
 * lower fds: one locked, one whose slave was opened and closed again.
 *
 * After SIGUSR1 the parent checks the pts index and name, termios, window
 * size, modes, the two slave open files, and data through the pair in both
 * directions and in order (nothing is in the buffers at checkpoint time:
 * that data would not be kept); then it releases the child, which checks
 * its session and controlling terminal (/dev/tty opens and is the same pts,
 * the grandchild's group is in the foreground) and releases the
 * grandchild, which checks the same from the foreground. Each waits for the
 * exit status of the one it released.
 *
 * With "outside": the child is a session leader with the slave as its
 * controlling terminal and the grandchild (logged as "HOLDER <pid>") holds
 * the master alone; dumping the grandchild is refused (the session is not
 * in its tree), after which it checks its master still works.
 * With "outer PATH": holds the slave PATH of a pty whose master the test
 * holds (a terminal outside the tree); after SIGUSR1 it reads "ping" from
 * it and answers "pong".
 * With "queued": a pair with the slave in canonical mode with echo, and
 * bytes left unread both ways at checkpoint time: "first line\nsecond"
 * written to the master (a whole line and a partial one in the slave's
 * input queue; their echo waits on the master) and "out\n" written to the
 * slave. After SIGUSR1 it checks they are all there, in the same shape:
 * the whole line is read alone, the partial line only once the master ends
 * it, and the termios is unchanged.
 * With "orphan": holds two open files (fds 10 and 13) of a slave whose
 * master it closed, so the pts node is gone (zdtm pty04), and a live pair
 * (11, 12) made before it, with the lower index: the slave stays hung up
 * (end of file, EIO on write), its two files one tty, the pair works. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "victim.h"

#define MASTER_FD 50
#define LOCKED_FD 45
#define HUNG_UP_FD 40
/* F_GETFL shows O_LARGEFILE, which is 0 in 64-bit user space. */
#define KERNEL_O_LARGEFILE 0100000

static struct termios wanted_termios;
static const struct winsize wanted_size = { .ws_row = 37, .ws_col = 101, .ws_xpixel = 640, .ws_ypixel = 481 };

static void make_termios(struct termios *termios)
{
    cfmakeraw(termios);
    termios->c_lflag &= ~(unsigned)TOSTOP;
    termios->c_iflag |= IUTF8;
    termios->c_cc[VMIN] = 1;
    termios->c_cc[VTIME] = 0;
    termios->c_cc[VINTR] = 0x07;
    termios->c_cc[VERASE] = 0x08;
    termios->c_cc[VKILL] = 0x0b;
    cfsetispeed(termios, B19200);
    cfsetospeed(termios, B19200);
}

/* Reads exactly `size` bytes from `fd` (waiting at most 5 s); in packet
 * mode each read starts with a status byte, which must be TIOCPKT_DATA. */
static int read_exactly(int fd, char *buffer, size_t size, int packet)
{
    size_t got = 0;
    while (got < size) {
        struct pollfd poll_fd = { .fd = fd, .events = POLLIN };
        if (poll(&poll_fd, 1, 5000) != 1)
            return 0;
        char chunk[256];
        ssize_t count = read(fd, chunk, sizeof(chunk));
        if (count <= 0)
            return 0;
        const char *data = chunk;
        if (packet) {
            if (chunk[0] != TIOCPKT_DATA)
                return 0;
            ++data;
            --count;
        }
        if (got + (size_t)count > size)
            return 0;
        memcpy(buffer + got, data, (size_t)count);
        got += (size_t)count;
    }
    return 1;
}

static int same_termios(const struct termios *a, const struct termios *b)
{
    return a->c_iflag == b->c_iflag && a->c_oflag == b->c_oflag && a->c_cflag == b->c_cflag && a->c_lflag == b->c_lflag
        && memcmp(a->c_cc, b->c_cc, sizeof(a->c_cc)) == 0 && cfgetispeed(a) == cfgetispeed(b)
        && cfgetospeed(a) == cfgetospeed(b);
}

/* The controlling terminal as the process sees it: /dev/tty opens, is the
 * pts of `slave_rdev`, and `foreground` is its foreground group. */
static void check_controlling_terminal(const char *who, dev_t slave_rdev, pid_t session, pid_t foreground)
{
    int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    victim_check(tty >= 0, "%s: open /dev/tty: %s", who, strerror(errno));
    if (tty < 0)
        return;
    unsigned int device = 0;
    victim_check(ioctl(tty, TIOCGDEV, &device) == 0 && major(device) == major(slave_rdev)
                     && minor(device) == minor(slave_rdev),
                 "%s: /dev/tty is %u:%u, not the pts %u:%u", who, major(device), minor(device), major(slave_rdev),
                 minor(slave_rdev));
    victim_check(tcgetpgrp(tty) == foreground, "%s: foreground group %d, expected %d", who, (int)tcgetpgrp(tty),
                 (int)foreground);
    victim_check(tcgetsid(tty) == session, "%s: the terminal's session %d, expected %d", who, (int)tcgetsid(tty),
                 (int)session);
    victim_check(getsid(0) == session, "%s: session %d, expected %d", who, (int)getsid(0), (int)session);
    close(tty);
}

static int grandchild_main(int slave, int ready)
{
    /* The child makes this group the foreground one. */
    for (int i = 0; i < 500 && tcgetpgrp(slave) != getpgrp(); ++i)
        usleep(10000);
    if (tcgetpgrp(slave) != getpgrp() || write(ready, "g", 1) != 1)
        _exit(2);
    close(ready);
    struct stat st;
    fstat(slave, &st);
    victim_wait();
    victim_check(getpgrp() == getpid(), "grandchild: group %d", (int)getpgrp());
    check_controlling_terminal("grandchild", st.st_rdev, getppid(), getpid());
    _exit(victim_failures() ? 1 : 0);
}

static int child_main(int slave, int ready)
{
    if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0 || tcsetpgrp(slave, getpid()) < 0)
        _exit(2);
    pid_t grandchild = fork();
    if (grandchild == 0) {
        setpgid(0, 0);
        grandchild_main(slave, ready);
    }
    if (grandchild < 0 || setpgid(grandchild, grandchild) < 0 || tcsetpgrp(slave, grandchild) < 0)
        _exit(2);
    /* An open file of /dev/tty is one of the slave. */
    int own_tty = open("/dev/tty", O_RDWR | O_NOCTTY);
    if (own_tty < 0 || write(ready, "c", 1) != 1)
        _exit(2);
    close(ready);
    struct stat st;
    fstat(slave, &st);
    victim_wait();
    check_controlling_terminal("child", st.st_rdev, getpid(), grandchild);
    unsigned int device = 0;
    victim_check(ioctl(own_tty, TIOCGDEV, &device) == 0 && major(device) == major(st.st_rdev)
                     && minor(device) == minor(st.st_rdev),
                 "child: the /dev/tty opened before is %u:%u", major(device), minor(device));
    victim_check(tcgetpgrp(own_tty) == grandchild, "child: foreground group through the old /dev/tty: %d",
                 (int)tcgetpgrp(own_tty));
    kill(grandchild, SIGUSR1);
    int status = 0;
    victim_check(waitpid(grandchild, &status, 0) == grandchild && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "child: grandchild status %#x", status);
    _exit(victim_failures() ? 1 : 0);
}

static int outside_case(void)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
        return 2;
    int index = -1;
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    int ready[2];
    if (slave < 0 || ioctl(master, TIOCGPTN, &index) < 0 || pipe2(ready, O_CLOEXEC) < 0)
        return 2;
    pid_t child = fork();
    if (child == 0) {
        close(ready[0]);
        /* The holder's exit closes the master: a hang-up for this session. */
        signal(SIGHUP, SIG_IGN);
        if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
            _exit(2);
        pid_t holder = fork();
        if (holder == 0) {
            close(ready[1]);
            victim_wait();
            int now = -1;
            victim_check(ioctl(master, TIOCGPTN, &now) == 0 && now == index, "holder: pts index %d, expected %d", now,
                         index);
            victim_check(write(master, "x", 1) == 1, "holder: write to the master: %s", strerror(errno));
            _exit(victim_failures() ? 1 : 0);
        }
        close(master);
        if (holder < 0 || write(ready[1], &holder, sizeof(holder)) != sizeof(holder))
            _exit(2);
        victim_wait();
        kill(holder, SIGUSR1);
        int status = 0;
        victim_check(waitpid(holder, &status, 0) == holder && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                     "child: holder status %#x", status);
        _exit(victim_failures() ? 1 : 0);
    }
    close(ready[1]);
    close(master);
    close(slave);
    pid_t holder = -1;
    if (child < 0 || read(ready[0], &holder, sizeof(holder)) != sizeof(holder))
        return 2;
    victim_say("HOLDER %d", (int)holder);
    victim_ready();
    victim_wait();
    kill(child, SIGUSR1);
    int status = 0;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "child status %#x", status);
    return victim_finish();
}

/* A new pty master moved to descriptor `at`, its index in `index`. */
static int master_at(int at, int *index)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || ioctl(master, TIOCGPTN, index) < 0)
        return -1;
    int moved = fcntl(master, F_DUPFD, at);
    close(master);
    return moved == at ? moved : -1;
}

static int outer_case(const char *path)
{
    int tty = open(path, O_RDWR | O_NOCTTY);
    struct stat before, after;
    if (tty < 0 || fstat(tty, &before) < 0)
        return 2;
    victim_ready();
    victim_wait();
    victim_check(fstat(tty, &after) == 0 && after.st_rdev == before.st_rdev, "%s: another device now", path);
    char got[8] = "";
    victim_check(read_exactly(tty, got, 4, 0) && memcmp(got, "ping", 4) == 0, "read '%s' from %s", got, path);
    victim_check(write(tty, "pong", 4) == 4, "write to %s: %s", path, strerror(errno));
    return victim_finish();
}

/* Waits (up to 5 s) until `count` bytes are readable on `fd`: written
 * bytes reach the other end's queue asynchronously. */
static int wait_queued(int fd, int count)
{
    for (int tries = 0; tries < 5000; ++tries) {
        int queued = -1;
        if (ioctl(fd, FIONREAD, &queued) < 0)
            return 0;
        if (queued == count)
            return 1;
        usleep(1000);
    }
    return 0;
}

static int queued_case(void)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
        return 2;
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    struct termios termios;
    if (slave < 0 || tcgetattr(slave, &termios) < 0)
        return 2;
    termios.c_lflag |= ICANON | ECHO;
    termios.c_oflag |= OPOST | ONLCR;
    if (tcsetattr(slave, TCSANOW, &termios) < 0 || tcgetattr(slave, &termios) < 0)
        return 2;
    static const char echo[] = "first line\r\nsecond";
    static const char output[] = "first line\r\nsecondout\r\n";
    if (write(master, "first line\nsecond", 17) != 17 || !wait_queued(slave, 11)
        || !wait_queued(master, (int)strlen(echo)) || write(slave, "out\n", 4) != 4
        || !wait_queued(master, (int)strlen(output)))
        return 2;
    victim_ready();
    victim_wait();

    int queued = -1;
    victim_check(ioctl(slave, FIONREAD, &queued) == 0 && queued == 11, "slave: %d bytes readable, expected 11", queued);
    queued = -1;
    victim_check(ioctl(master, FIONREAD, &queued) == 0 && queued == (int)strlen(output),
                 "master: %d bytes readable, expected %d", queued, (int)strlen(output));
    char got[64] = "";
    victim_check(read(master, got, sizeof(got)) == (ssize_t)strlen(output) && memcmp(got, output, strlen(output)) == 0,
                 "master read '%s'", got);
    memset(got, 0, sizeof(got));
    victim_check(read(slave, got, sizeof(got)) == 11 && memcmp(got, "first line\n", 11) == 0, "slave read '%s'", got);
    /* The partial line is not readable until the master ends it. */
    fcntl(slave, F_SETFL, O_RDWR | O_NONBLOCK);
    victim_check(read(slave, got, sizeof(got)) < 0 && errno == EAGAIN, "the partial line was readable");
    fcntl(slave, F_SETFL, O_RDWR);
    victim_check(write(master, " half\n", 6) == 6, "write to the master: %s", strerror(errno));
    memset(got, 0, sizeof(got));
    victim_check(read(slave, got, sizeof(got)) == 12 && memcmp(got, "second half\n", 12) == 0, "slave read '%s'", got);
    memset(got, 0, sizeof(got));
    victim_check(read_exactly(master, got, 7, 0) && memcmp(got, " half\r\n", 7) == 0, "echo '%s'", got);
    struct termios now;
    victim_check(tcgetattr(slave, &now) == 0 && same_termios(&now, &termios), "termios iflag %#x oflag %#x lflag %#x",
                 now.c_iflag, now.c_oflag, now.c_lflag);
    return victim_finish();
}

static void check_hung_up(int fd)
{
    char byte;
    struct stat st;
    victim_check(fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) >= 136 && major(st.st_rdev) <= 143,
                 "fd %d: not a pty slave any more", fd);
    victim_check(read(fd, &byte, 1) == 0, "fd %d: a hung-up slave reads something", fd);
    errno = 0;
    victim_check(write(fd, "x", 1) < 0 && errno == EIO, "fd %d: a hung-up slave takes writes (errno %d)", fd, errno);
}

static int orphan_case(void)
{
    int live = posix_openpt(O_RDWR | O_NOCTTY);
    if (live < 0 || grantpt(live) < 0 || unlockpt(live) < 0 || dup2(live, 11) != 11)
        return 2;
    int live_slave = open(ptsname(live), O_RDWR | O_NOCTTY);
    if (live_slave < 0 || dup2(live_slave, 12) != 12)
        return 2;
    close(live);
    close(live_slave);
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
        return 2;
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    int again = open(ptsname(master), O_RDWR | O_NOCTTY);
    if (slave < 0 || again < 0 || dup2(slave, 10) != 10 || dup2(again, 13) != 13)
        return 2;
    close(slave);
    close(again);
    close(master);
    victim_ready();
    victim_wait();
    check_hung_up(10);
    check_hung_up(13);
    struct stat first, second;
    victim_check(fstat(10, &first) == 0 && fstat(13, &second) == 0 && first.st_rdev == second.st_rdev,
                 "the two files of the hung-up slave are not one tty any more");
    char line[16] = "";
    victim_check(write(11, "ping\n", 5) == 5 && read(12, line, sizeof(line)) == 5 && memcmp(line, "ping\n", 5) == 0,
                 "the live pair does not carry a line ('%s')", line);
    return victim_finish();
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    if (argc > 2 && strcmp(argv[2], "outside") == 0)
        return outside_case();
    if (argc > 3 && strcmp(argv[2], "outer") == 0)
        return outer_case(argv[3]);
    if (argc > 2 && strcmp(argv[2], "queued") == 0)
        return queued_case();
    if (argc > 2 && strcmp(argv[2], "orphan") == 0)
        return orphan_case();
    if (argc > 2)
        return 2;

    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
        return 2;
    char name[64];
    int index = -1;
    if (ptsname_r(master, name, sizeof(name)) != 0 || ioctl(master, TIOCGPTN, &index) < 0)
        return 2;
    int slave = open(name, O_RDWR | O_NOCTTY);
    int reader = open(name, O_RDONLY | O_NOCTTY | O_NONBLOCK);
    if (slave < 0 || reader < 0)
        return 2;
    /* The master after the slaves in the fd table: restore meets a slave
     * of the pair first. */
    int moved = fcntl(master, F_DUPFD, MASTER_FD);
    if (moved != MASTER_FD)
        return 2;
    close(master);
    master = moved;

    if (tcgetattr(slave, &wanted_termios) < 0)
        return 2;
    make_termios(&wanted_termios);
    int one = 1;
    /* Packet mode last: termios changes are reported to a packet-mode
     * reader, and nothing may wait in the buffers at checkpoint time. */
    if (tcsetattr(slave, TCSANOW, &wanted_termios) < 0 || ioctl(master, TIOCSWINSZ, &wanted_size) < 0
        || ioctl(slave, TIOCEXCL) < 0 || ioctl(master, TIOCPKT, &one) < 0)
        return 2;
    struct stat slave_stat;
    fstat(slave, &slave_stat);

    /* Two more pairs, with higher indexes but lower fds, so restore wants
     * the highest index first: one still locked (never unlocked), one whose
     * slave was opened and closed again (the master sees a hang-up). */
    int locked_index = -1, hung_up_index = -1;
    int locked = master_at(LOCKED_FD, &locked_index);
    int hung_up = master_at(HUNG_UP_FD, &hung_up_index);
    if (locked < 0 || hung_up < 0 || unlockpt(hung_up) < 0)
        return 2;
    int closed_slave = open(ptsname(hung_up), O_RDWR | O_NOCTTY);
    if (closed_slave < 0)
        return 2;
    close(closed_slave);

    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0)
        return 2;
    pid_t child = fork();
    if (child == 0) {
        close(master);
        close(locked);
        close(hung_up);
        close(reader);
        close(ready[0]);
        child_main(slave, ready[1]);
    }
    close(ready[1]);
    char byte;
    if (child < 0 || read(ready[0], &byte, 1) != 1 || read(ready[0], &byte, 1) != 1)
        return 2;
    close(ready[0]);
    victim_ready();
    victim_wait();

    /* The same pair. */
    char name_now[64] = "";
    int index_now = -1;
    victim_check(ptsname_r(master, name_now, sizeof(name_now)) == 0 && strcmp(name, name_now) == 0,
                 "ptsname '%s', expected '%s'", name_now, name);
    victim_check(ioctl(master, TIOCGPTN, &index_now) == 0 && index_now == index, "pts index %d, expected %d",
                 index_now, index);
    struct stat st;
    victim_check(fstat(slave, &st) == 0 && st.st_rdev == slave_stat.st_rdev, "slave device %u:%u, expected %u:%u",
                 major(st.st_rdev), minor(st.st_rdev), major(slave_stat.st_rdev), minor(slave_stat.st_rdev));
    victim_check(stat(name, &st) == 0 && st.st_rdev == slave_stat.st_rdev, "%s is missing or another device", name);
    victim_check(fstat(reader, &st) == 0 && st.st_rdev == slave_stat.st_rdev, "second slave file: another device");
    victim_check((fcntl(reader, F_GETFL) & ~KERNEL_O_LARGEFILE) == (O_RDONLY | O_NONBLOCK), "second slave file flags %#o",
                 fcntl(reader, F_GETFL));
    victim_check((fcntl(slave, F_GETFL) & ~KERNEL_O_LARGEFILE) == O_RDWR, "slave flags %#o", fcntl(slave, F_GETFL));
    victim_check((fcntl(master, F_GETFL) & ~KERNEL_O_LARGEFILE) == O_RDWR, "master flags %#o", fcntl(master, F_GETFL));

    /* Its settings. */
    struct termios termios;
    victim_check(tcgetattr(slave, &termios) == 0 && same_termios(&termios, &wanted_termios),
                 "termios iflag %#x oflag %#x cflag %#x lflag %#x speed %u", termios.c_iflag, termios.c_oflag,
                 termios.c_cflag, termios.c_lflag, (unsigned)cfgetospeed(&termios));
    struct winsize size;
    victim_check(ioctl(slave, TIOCGWINSZ, &size) == 0 && memcmp(&size, &wanted_size, sizeof(size)) == 0,
                 "window size %ux%u (%ux%u pixels)", size.ws_row, size.ws_col, size.ws_xpixel, size.ws_ypixel);
    int value = -1;
    victim_check(ioctl(master, TIOCGPKT, &value) == 0 && value == 1, "packet mode %d", value);
    value = -1;
    victim_check(ioctl(master, TIOCGPTLCK, &value) == 0 && value == 0, "pty lock %d", value);
    value = -1;
    victim_check(ioctl(slave, TIOCGEXCL, &value) == 0 && value == 1, "exclusive mode %d", value);
    char nothing;
    victim_check(read(reader, &nothing, 1) < 0 && errno == EAGAIN, "data waiting on the slave: %s", strerror(errno));

    /* Data through the pair, both ways, in order. */
    static const char *to_slave[] = { "one ", "two\r\n", "three\x01\x7f" };
    char expected[64] = "", got[64];
    for (int i = 0; i < 3; ++i) {
        victim_check(write(master, to_slave[i], strlen(to_slave[i])) == (ssize_t)strlen(to_slave[i]),
                     "write to the master: %s", strerror(errno));
        strcat(expected, to_slave[i]);
    }
    memset(got, 0, sizeof(got));
    victim_check(read_exactly(slave, got, strlen(expected), 0) && memcmp(got, expected, strlen(expected)) == 0,
                 "master to slave: got '%s'", got);
    static const char *to_master[] = { "alpha ", "beta\n", "gamma" };
    expected[0] = 0;
    for (int i = 0; i < 3; ++i) {
        victim_check(write(slave, to_master[i], strlen(to_master[i])) == (ssize_t)strlen(to_master[i]),
                     "write to the slave: %s", strerror(errno));
        strcat(expected, to_master[i]);
    }
    memset(got, 0, sizeof(got));
    victim_check(read_exactly(master, got, strlen(expected), 1) && memcmp(got, expected, strlen(expected)) == 0,
                 "slave to master: got '%s'", got);

    /* The locked pair and the one whose slave was closed. */
    value = -1;
    victim_check(ioctl(locked, TIOCGPTN, &value) == 0 && value == locked_index, "locked pair: index %d, expected %d",
                 value, locked_index);
    value = -1;
    victim_check(ioctl(locked, TIOCGPTLCK, &value) == 0 && value == 1, "locked pair: lock %d", value);
    char locked_name[64] = "";
    ptsname_r(locked, locked_name, sizeof(locked_name));
    int opened = open(locked_name, O_RDWR | O_NOCTTY);
    victim_check(opened < 0 && errno == EIO, "locked pair: %s opened (%s)", locked_name, strerror(errno));
    value = -1;
    victim_check(ioctl(hung_up, TIOCGPTN, &value) == 0 && value == hung_up_index, "hung-up pair: index %d, expected %d",
                 value, hung_up_index);
    struct pollfd hang_up = { .fd = hung_up, .events = POLLIN };
    victim_check(poll(&hang_up, 1, 0) == 1 && (hang_up.revents & POLLHUP), "hung-up pair: poll %#x", hang_up.revents);
    victim_check(read(hung_up, &nothing, 1) < 0 && errno == EIO, "hung-up pair: read gives %s", strerror(errno));

    /* The session. */
    kill(child, SIGUSR1);
    int status = 0;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                 "child status %#x", status);
    return victim_finish();
}
