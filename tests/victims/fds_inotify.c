/* inotify instances, with their watches, in a directory LOG.inotify:
 *
 * Instance A (IN_NONBLOCK, close-on-exec):
 * - watched/  IN_CREATE|IN_DELETE|IN_ONLYDIR (IN_ONLYDIR is not kept)
 * - file      IN_MODIFY
 * - oneshot   IN_CLOSE_WRITE|IN_ONESHOT
 * - then 40 watches added and removed, a watch on "gone" added and removed
 *   (a gap), and high: IN_MODIFY|IN_EXCL_UNLINK, with a wd well above the
 *   others (so the wds are not 1..n);
 * Instance B (blocking, no close-on-exec, dup'ed to a second fd):
 * - watched/  IN_MOVED_TO (one inode watched by two instances);
 * - an IN_MOVED_TO event queued and not read at the checkpoint.
 *
 * After the release: the watch lines of both fdinfo files are as they were
 * (wd, inode, mask, handle; sorted), unless "replaced" is given (the test
 * replaced watched/ by a new directory between dump and restore); flags
 * kept; adding a watch on an already watched path gives its wd back; events
 * come with the right wd, mask and name (create, delete, modify, the
 * one-shot firing once then IN_IGNORED, high); B first gives the pending
 * event (never checkpointed) or IN_Q_OVERFLOW (restored: the pending event
 * is lost and reported so), saying which in the log, then the new rename;
 * a new watch on A gets the wd after high's.
 *
 * With "deleted": also a watch (IN_MODIFY|IN_CLOSE_WRITE) on a file that is
 * open and deleted. After the release its watch has its wd and mask (a new
 * inode: its inode and handle are not compared), nothing is queued (cryo's
 * own opens and closes of the file made no event), a write gives IN_MODIFY
 * and the last close IN_CLOSE_WRITE then IN_IGNORED (the inode is gone).
 * With "deleted_mapped": the same watch on a deleted file that only a
 * mapping holds (the dump refuses it); its munmap gives IN_CLOSE_WRITE then
 * IN_IGNORED. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "victim.h"

static char base[PATH_MAX / 2];

static const char *at(const char *name)
{
    static char paths[8][PATH_MAX];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, PATH_MAX, "%s/%s", base, name);
    return path;
}

static int touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static int append(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t done = write(fd, text, strlen(text));
    close(fd);
    return done == (ssize_t)strlen(text) ? 0 : -1;
}

struct event {
    int wd;
    uint32_t mask;
    char name[NAME_MAX + 1];
};

/* The next event of `fd`, waiting at most `timeout` ms; 0 if none. Events
 * read together are handed out one by one. */
static int next_event(int fd, struct event *event, int timeout)
{
    static char buffer[8192] __attribute__((aligned(8)));
    static ssize_t length, offset;
    static int from = -1;
    if (from != fd || offset >= length) {
        from = fd;
        offset = length = 0;
        struct pollfd ready = { .fd = fd, .events = POLLIN };
        if (poll(&ready, 1, timeout) != 1)
            return 0;
        length = read(fd, buffer, sizeof(buffer));
        if (length <= 0)
            return 0;
    }
    const struct inotify_event *raw = (const struct inotify_event *)(buffer + offset);
    event->wd = raw->wd;
    event->mask = raw->mask;
    snprintf(event->name, sizeof(event->name), "%s", raw->len ? raw->name : "");
    offset += (ssize_t)sizeof(*raw) + raw->len;
    return 1;
}

static void expect_event(int fd, const char *what, int wd, uint32_t mask, const char *name)
{
    struct event event;
    if (!next_event(fd, &event, 1000)) {
        victim_check(0, "%s: no event (expected wd %d mask %#x '%s')", what, wd, mask, name);
        return;
    }
    victim_check(event.wd == wd && event.mask == mask && strcmp(event.name, name) == 0,
                 "%s: event wd %d mask %#x '%s', expected wd %d mask %#x '%s'", what, event.wd, event.mask,
                 event.name, wd, mask, name);
}

/* The line of watch `wd` in `lines` (victim_fdinfo_lines() form, wd in
 * hex), cut out of them into `line`; empty if there is none. */
static void cut_watch(char *lines, int wd, char *line, size_t size)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "inotify wd:%x ", wd);
    line[0] = '\0';
    for (char *start = lines; *start;) {
        char *end = strchr(start, '\n');
        size_t length = end ? (size_t)(end - start) + 1 : strlen(start);
        if (strncmp(start, prefix, strlen(prefix)) == 0) {
            snprintf(line, size, "%.*s", (int)length, start);
            memmove(start, start + length, strlen(start + length) + 1);
            return;
        }
        start += length;
    }
}

/* The "mask:" of a watch line, or -1. */
static long watch_mask(const char *line)
{
    const char *mask = strstr(line, " mask:");
    return mask ? strtol(mask + strlen(" mask:"), NULL, 16) : -1;
}

static void expect_no_event(int fd, const char *what)
{
    struct event event;
    if (next_event(fd, &event, 200))
        victim_check(0, "%s: unexpected event wd %d mask %#x '%s'", what, event.wd, event.mask, event.name);
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    const char *mode = argc > 2 ? argv[2] : "";
    int replaced = strcmp(mode, "replaced") == 0;
    int deleted_mode = strcmp(mode, "deleted") == 0;
    int mapped_mode = strcmp(mode, "deleted_mapped") == 0;
    snprintf(base, sizeof(base), "%s.inotify", argv[1]);
    if (mkdir(base, 0755) || mkdir(at("watched"), 0755) || touch(at("file")) || touch(at("oneshot"))
        || touch(at("high")) || touch(at("gone")) || touch(at("spare")) || touch(at("moving")))
        return 2;

    int a = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int b = inotify_init1(0);
    if (a < 0 || b < 0)
        return 2;
    int wd_dir = inotify_add_watch(a, at("watched"), IN_CREATE | IN_DELETE | IN_ONLYDIR);
    int wd_file = inotify_add_watch(a, at("file"), IN_MODIFY);
    int wd_oneshot = inotify_add_watch(a, at("oneshot"), IN_CLOSE_WRITE | IN_ONESHOT);
    for (int i = 0; i < 40; ++i) {
        int wd = inotify_add_watch(a, at("spare"), IN_ATTRIB);
        if (wd < 0 || inotify_rm_watch(a, wd) < 0)
            return 2;
    }
    int wd_gone = inotify_add_watch(a, at("gone"), IN_ATTRIB);
    if (wd_gone < 0 || inotify_rm_watch(a, wd_gone) < 0)
        return 2;
    int wd_high = inotify_add_watch(a, at("high"), IN_MODIFY | IN_EXCL_UNLINK);
    if (wd_dir < 0 || wd_file < 0 || wd_oneshot < 0 || wd_high < 40)
        return 2;
    /* Drop the IN_IGNORED events of the removals. */
    struct event event;
    while (next_event(a, &event, 0))
        ;

    int b_wd = inotify_add_watch(b, at("watched"), IN_MOVED_TO);
    int b_dup = dup(b);
    if (b_wd < 0 || b_dup < 0)
        return 2;
    if (rename(at("moving"), at("watched/moved")))
        return 2;

    int deleted = -1, deleted_wd = -1;
    void *mapping = MAP_FAILED;
    if (deleted_mode || mapped_mode) {
        deleted = open(at("deleted"), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (deleted < 0)
            return 2;
        /* Sized, mapped and closed before the watch exists: no event. */
        if (mapped_mode) {
            if (ftruncate(deleted, 4096))
                return 2;
            mapping = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, deleted, 0);
            close(deleted);
            deleted = -1;
            if (mapping == MAP_FAILED)
                return 2;
        }
        deleted_wd = inotify_add_watch(a, at("deleted"), IN_MODIFY | IN_CLOSE_WRITE);
        if (deleted_wd < 0 || unlink(at("deleted")))
            return 2;
        /* IN_ATTRIB of the unlink is not in the mask: nothing queued. */
    }

    char a_lines[8192], b_lines[8192], after[8192], deleted_line[512], deleted_after[512];
    victim_fdinfo_lines(a, "inotify", a_lines, sizeof(a_lines));
    victim_fdinfo_lines(b, "inotify", b_lines, sizeof(b_lines));
    cut_watch(a_lines, deleted_wd, deleted_line, sizeof(deleted_line));

    victim_ready();
    victim_wait();

    if (!replaced) {
        victim_fdinfo_lines(a, "inotify", after, sizeof(after));
        cut_watch(after, deleted_wd, deleted_after, sizeof(deleted_after));
        victim_check(strcmp(a_lines, after) == 0, "A's watches changed:\n%s-- now:\n%s", a_lines, after);
        victim_check(!deleted_mode || (deleted_after[0] && watch_mask(deleted_after) == watch_mask(deleted_line)),
                     "the deleted file's watch changed: '%s', now '%s'", deleted_line, deleted_after);
        victim_fdinfo_lines(b, "inotify", after, sizeof(after));
        victim_check(strcmp(b_lines, after) == 0, "B's watches changed:\n%s-- now:\n%s", b_lines, after);
    }
    int flags = fcntl(a, F_GETFL);
    victim_check(flags >= 0 && (flags & O_NONBLOCK), "A lost O_NONBLOCK (flags %#o)", flags);
    flags = fcntl(b, F_GETFL);
    victim_check(flags >= 0 && !(flags & O_NONBLOCK), "B got O_NONBLOCK (flags %#o)", flags);
    victim_check(fcntl(a, F_GETFD) == FD_CLOEXEC, "A lost close-on-exec");
    victim_check(fcntl(b, F_GETFD) == 0, "B got close-on-exec");

    /* Nothing queued on A: a read fails at once. */
    char scratch[256];
    errno = 0;
    victim_check(read(a, scratch, sizeof(scratch)) < 0 && errno == EAGAIN, "A: read did not fail with EAGAIN: %s",
                 strerror(errno));

    /* The same path again gives the same wd (IN_MASK_ADD keeps the mask). */
    int again = inotify_add_watch(a, at("watched"), IN_CREATE | IN_MASK_ADD);
    victim_check(again == wd_dir, "watched/ added again: wd %d, expected %d", again, wd_dir);
    again = inotify_add_watch(a, at("file"), IN_MODIFY);
    victim_check(again == wd_file, "file added again: wd %d, expected %d", again, wd_file);

    victim_check(touch(at("watched/new")) == 0, "create watched/new");
    expect_event(a, "create", wd_dir, IN_CREATE, "new");
    victim_check(unlink(at("watched/new")) == 0, "unlink watched/new");
    expect_event(a, "delete", wd_dir, IN_DELETE, "new");
    victim_check(append(at("file"), "x") == 0, "write file");
    expect_event(a, "modify", wd_file, IN_MODIFY, "");
    victim_check(append(at("oneshot"), "x") == 0, "write oneshot");
    expect_event(a, "one-shot", wd_oneshot, IN_CLOSE_WRITE, "");
    expect_event(a, "one-shot removed", wd_oneshot, IN_IGNORED, "");
    victim_check(append(at("oneshot"), "y") == 0, "write oneshot again");
    victim_check(append(at("high"), "x") == 0, "write high");
    expect_event(a, "high", wd_high, IN_MODIFY, "");
    if (deleted_mode) {
        victim_check(write(deleted, "x", 1) == 1, "write the deleted file");
        expect_event(a, "deleted", deleted_wd, IN_MODIFY, "");
    }
    expect_no_event(a, "A after the checks");

    int next = inotify_add_watch(a, at("spare"), IN_ATTRIB);
    int expected_next = (deleted_wd > 0 ? deleted_wd : wd_high) + 1;
    victim_check(next == expected_next, "a new watch got wd %d, expected %d", next, expected_next);
    if (deleted_mode || mapped_mode) {
        if (mapped_mode)
            munmap(mapping, 4096);
        else
            close(deleted);
        expect_event(a, "deleted file closed", deleted_wd, IN_CLOSE_WRITE, "");
        expect_event(a, "deleted file gone", deleted_wd, IN_IGNORED, "");
        expect_no_event(a, "A after the deleted file is gone");
    }

    /* B: the pending event or the overflow that replaces it, then a new one
     * (read through the dup'ed descriptor). */
    if (!next_event(b, &event, 1000)) {
        victim_check(0, "B: nothing pending");
    } else if (event.wd == b_wd && event.mask == IN_MOVED_TO && strcmp(event.name, "moved") == 0) {
        victim_say("B: pending event kept");
    } else if (event.wd == -1 && event.mask == IN_Q_OVERFLOW) {
        victim_say("B: pending event lost, IN_Q_OVERFLOW");
    } else {
        victim_check(0, "B: first event wd %d mask %#x '%s'", event.wd, event.mask, event.name);
    }
    victim_check(touch(at("moving2")) == 0 && rename(at("moving2"), at("watched/moved2")) == 0, "rename moving2");
    expect_event(b_dup, "B rename", b_wd, IN_MOVED_TO, "moved2");
    expect_no_event(b, "B after the checks");
    return victim_finish();
}
