/* fanotify groups, with marks of every type.
 *
 * Group A (FAN_CLASS_NOTIF | FAN_NONBLOCK | FAN_CLOEXEC, events opened
 * O_RDONLY | O_LARGEFILE), in a directory LOG.fanotify:
 * - inode mark on file: FAN_MODIFY | FAN_CLOSE_WRITE;
 * - inode mark on dir/: FAN_MODIFY | FAN_EVENT_ON_CHILD;
 * - inode mark on dir/quiet: ignored mask FAN_MODIFY, surviving modify;
 * - evictable inode mark (FAN_MARK_EVICTABLE) on evictable: FAN_CLOSE_WRITE
 *   (kept open, so the inode stays and the mark with it);
 * - mount mark on /dev/shm: FAN_CLOSE_WRITE.
 * Group B (FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME, blocking, no
 * close-on-exec):
 * - filesystem mark on /dev/shm: FAN_CREATE;
 * - inode mark on /dev/shm/cryo-fanotify-PID/ignored/ with an ignore mask
 *   (FAN_MARK_IGNORE, surviving modify): FAN_CREATE | FAN_ONDIR.
 *
 * After the release: both fdinfo files show the same flags and marks
 * (sorted lines); flags and close-on-exec kept; A reports modify and
 * close-write on file, modify of dir/child, close-write of evictable and of
 * a file in /dev/shm, all from this pid with an event fd on the right inode,
 * and nothing for dir/quiet; B reports the creation of a file in
 * /dev/shm/cryo-fanotify-PID by name (two: "closed" from the checks of A,
 * then "y") and not that of one in ignored/.
 * Events of other processes (the /dev/shm marks see the whole tmpfs) are
 * skipped.
 *
 * With "deleted": also an inode mark on a file that is open and deleted
 * (the dump refuses it; the victim runs on). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "victim.h"

#ifndef FAN_MARK_EVICTABLE
#define FAN_MARK_EVICTABLE 0x00000200
#endif
#ifndef FAN_MARK_IGNORE
#define FAN_MARK_IGNORE 0x00000400
#endif

static char base[PATH_MAX / 2], shm[128];

static const char *at(const char *dir, const char *name)
{
    static char paths[8][PATH_MAX];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, PATH_MAX, "%s/%s", dir, name);
    return path;
}

static int append(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    ssize_t done = write(fd, text, strlen(text));
    close(fd);
    return done == (ssize_t)strlen(text) ? 0 : -1;
}

static ino_t inode_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* Group A's events from this process, until none comes for 300 ms: the
 * union of the masks per inode of the event fd. */
struct seen {
    ino_t inode;
    unsigned long long mask;
};

static int gather(int fd, struct seen *seen, int most)
{
    int count = 0;
    char buffer[8192] __attribute__((aligned(8)));
    struct pollfd ready = { .fd = fd, .events = POLLIN };
    while (poll(&ready, 1, 300) == 1) {
        ssize_t length = read(fd, buffer, sizeof(buffer));
        if (length <= 0)
            break;
        for (struct fanotify_event_metadata *event = (void *)buffer; FAN_EVENT_OK(event, length);
             event = FAN_EVENT_NEXT(event, length)) {
            struct stat st;
            int known = event->fd >= 0 && fstat(event->fd, &st) == 0;
            if (event->fd >= 0)
                close(event->fd);
            if (!known || event->pid != getpid())
                continue;
            int i = 0;
            while (i < count && seen[i].inode != st.st_ino)
                ++i;
            if (i == count) {
                if (count == most)
                    continue;
                seen[count].inode = st.st_ino;
                seen[count++].mask = 0;
            }
            seen[i].mask |= event->mask;
        }
    }
    return count;
}

static unsigned long long mask_for(const struct seen *seen, int count, ino_t inode)
{
    for (int i = 0; i < count; ++i)
        if (seen[i].inode == inode)
            return seen[i].mask;
    return 0;
}

/* Names of group B's FAN_CREATE events from this process, until none comes
 * for 300 ms, joined with '/' (e.g. "/y/"). */
static void created_names(int fd, char *out, size_t size)
{
    char buffer[8192] __attribute__((aligned(8)));
    struct pollfd ready = { .fd = fd, .events = POLLIN };
    snprintf(out, size, "/");
    while (poll(&ready, 1, 300) == 1) {
        ssize_t length = read(fd, buffer, sizeof(buffer));
        if (length <= 0)
            break;
        for (struct fanotify_event_metadata *event = (void *)buffer; FAN_EVENT_OK(event, length);
             event = FAN_EVENT_NEXT(event, length)) {
            if (event->pid != getpid() || !(event->mask & FAN_CREATE) || event->event_len <= event->metadata_len)
                continue;
            struct fanotify_event_info_fid *info = (void *)((char *)event + event->metadata_len);
            if (info->hdr.info_type != FAN_EVENT_INFO_TYPE_DFID_NAME)
                continue;
            struct file_handle *handle = (struct file_handle *)info->handle;
            const char *name = (const char *)handle->f_handle + handle->handle_bytes;
            strncat(out, name, size - strlen(out) - 2);
            strncat(out, "/", size - strlen(out) - 1);
        }
    }
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    snprintf(base, sizeof(base), "%s.fanotify", argv[1]);
    snprintf(shm, sizeof(shm), "/dev/shm/cryo-fanotify-%d", getpid());
    if (mkdir(base, 0755) || mkdir(at(base, "dir"), 0755) || append(at(base, "file"), "")
        || append(at(base, "dir/quiet"), "") || append(at(base, "dir/child"), "") || append(at(base, "evictable"), "")
        || mkdir(shm, 0755) || mkdir(at(shm, "ignored"), 0755))
        return 2;
    int keep = open(at(base, "evictable"), O_RDONLY | O_CLOEXEC);

    int a = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE);
    int b = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME, O_RDONLY);
    if (keep < 0 || a < 0 || b < 0)
        return 2;
    struct {
        int group;
        unsigned flags;
        unsigned long long mask;
        const char *path;
    } marks[] = {
        { a, FAN_MARK_ADD, FAN_MODIFY | FAN_CLOSE_WRITE, at(base, "file") },
        { a, FAN_MARK_ADD, FAN_MODIFY | FAN_EVENT_ON_CHILD, at(base, "dir") },
        { a, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_MODIFY, at(base, "dir/quiet") },
        { a, FAN_MARK_ADD | FAN_MARK_EVICTABLE, FAN_CLOSE_WRITE, at(base, "evictable") },
        { a, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_CLOSE_WRITE, "/dev/shm" },
        { b, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_CREATE, "/dev/shm" },
        { b, FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_IGNORED_SURV_MODIFY, FAN_CREATE | FAN_ONDIR, at(shm, "ignored") },
    };
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); ++i)
        if (fanotify_mark(marks[i].group, marks[i].flags, marks[i].mask, AT_FDCWD, marks[i].path)) {
            victim_say("fanotify_mark %zu on %s: %s", i, marks[i].path, strerror(errno));
            return 2;
        }

    if (argc > 2 && strcmp(argv[2], "deleted") == 0) {
        int deleted = open(at(base, "deleted"), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (deleted < 0 || fanotify_mark(a, FAN_MARK_ADD, FAN_MODIFY, AT_FDCWD, at(base, "deleted"))
            || unlink(at(base, "deleted")))
            return 2;
    }

    char a_lines[4096], b_lines[4096], after[4096];
    victim_fdinfo_lines(a, "fanotify", a_lines, sizeof(a_lines));
    victim_fdinfo_lines(b, "fanotify", b_lines, sizeof(b_lines));

    victim_ready();
    victim_wait();

    victim_fdinfo_lines(a, "fanotify", after, sizeof(after));
    victim_check(strcmp(a_lines, after) == 0, "A's marks changed:\n%s-- now:\n%s", a_lines, after);
    victim_fdinfo_lines(b, "fanotify", after, sizeof(after));
    victim_check(strcmp(b_lines, after) == 0, "B's marks changed:\n%s-- now:\n%s", b_lines, after);
    int flags = fcntl(a, F_GETFL);
    victim_check(flags >= 0 && (flags & O_NONBLOCK), "A lost O_NONBLOCK (flags %#o)", flags);
    flags = fcntl(b, F_GETFL);
    victim_check(flags >= 0 && !(flags & O_NONBLOCK), "B got O_NONBLOCK (flags %#o)", flags);
    victim_check(fcntl(a, F_GETFD) == FD_CLOEXEC, "A lost close-on-exec");
    victim_check(fcntl(b, F_GETFD) == 0, "B got close-on-exec");

    victim_check(append(at(base, "dir/quiet"), "q") == 0, "write dir/quiet");
    victim_check(append(at(base, "file"), "f") == 0, "write file");
    victim_check(append(at(base, "dir/child"), "c") == 0, "write dir/child");
    victim_check(append(at(base, "evictable"), "e") == 0, "write evictable");
    victim_check(append(at(shm, "closed"), "s") == 0, "write a file in /dev/shm");
    struct seen seen[32];
    int count = gather(a, seen, 32);
    unsigned long long mask = mask_for(seen, count, inode_of(at(base, "file")));
    victim_check(mask == (FAN_MODIFY | FAN_CLOSE_WRITE), "A: file: mask %#llx", mask);
    mask = mask_for(seen, count, inode_of(at(base, "dir/child")));
    victim_check(mask == FAN_MODIFY, "A: dir/child: mask %#llx", mask);
    mask = mask_for(seen, count, inode_of(at(base, "dir/quiet")));
    victim_check(mask == 0, "A: dir/quiet (ignored): mask %#llx", mask);
    mask = mask_for(seen, count, inode_of(at(base, "evictable")));
    victim_check(mask == FAN_CLOSE_WRITE, "A: evictable: mask %#llx", mask);
    mask = mask_for(seen, count, inode_of(at(shm, "closed")));
    victim_check(mask == FAN_CLOSE_WRITE, "A: /dev/shm file: mask %#llx", mask);

    victim_check(append(at(shm, "ignored/x"), "") == 0, "create a file in ignored/");
    victim_check(append(at(shm, "y"), "") == 0, "create a file in /dev/shm");
    char names[1024];
    created_names(b, names, sizeof(names));
    victim_check(strcmp(names, "/closed/y/") == 0, "B: created names %s, expected /closed/y/", names);

    unlink(at(shm, "ignored/x"));
    unlink(at(shm, "y"));
    unlink(at(shm, "closed"));
    rmdir(at(shm, "ignored"));
    rmdir(shm);
    return victim_finish();
}
