// inotify instances: every watch with its watch descriptor (wd) and mask.
//
// Dump: /proc/PID/fdinfo/N has one line per watch, "inotify wd:W ino:I
// sdev:D mask:M ignored_mask:0 fhandle-bytes:B fhandle-type:T f_handle:H",
// all numbers in hex. The mask is what the kernel keeps (IN_ONESHOT and
// IN_EXCL_UNLINK included). The watched object is found and given a path
// as fsnotify.h describes; a watch on an object cryo cannot find stops the
// dump with an error naming the wd and the object.
//
// A watch on a deleted file (alive only because something holds it, say
// the program still has it open, as a log file rotated away) keeps the
// name the file had and is marked deleted. Once the whole tree is dumped,
// check_deleted_watches() requires an open file of the tree on that file
// (a ghost file of equal inode and path, ghost.cpp); one held only by a
// mapping, a working directory or another process is refused. Restore puts
// the watch on the deleted file made again for that open file (through
// /proc/self/fd/HOLD, which inotify_add_watch() follows to the unnamed
// inode), so closing or writing it reaches the watch as before.
//
// Restore: inotify_init1() in cryo, and each watch added again with its mask
// on the object found by handle or path (fsnotify.h), under its own wd. The
// kernel hands wds out cyclically (idr_alloc_cyclic(): the lowest free one
// from the last one given plus one, starting at 1), so the watches are added
// by increasing wd, and before each one cryo adds and removes throwaway
// watches (on a memfd of its own, which nothing else can watch) until the
// next wd is the one wanted. Each wd given is checked. Removing a watch
// queues an IN_IGNORED event; the instance is cryo's own until the restore
// is over, so every event in it is read and dropped at the end. An event
// that says a real watch went away meanwhile (its object deleted during the
// restore, a one-shot watch that fired) fails the restore rather than leave
// the program waiting on a watch that is gone. Reaching wd W costs W
// add/remove pairs (a few microseconds each): the dump refuses wds above
// kHighestWd.
//
// Events queued and not read at dump time cannot be read without taking
// them from the program (FIONREAD gives their size, there is no peek), so
// they are lost. The restored instance tells the program so the way the
// kernel does when it drops events: one IN_Q_OVERFLOW event (wd -1) waits
// in it. cryo makes it by filling the queue to its limit
// (max_queued_events) with events of a throwaway watch and reading all but
// that overflow event back out; it costs that throwaway watch one wd, so
// then the next wd the program gets is one higher than it would have been.
// With nothing pending, the next wd is the highest restored wd plus one.
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <set>
#include <vector>

#include <spdlog/spdlog.h>

#include "fds/file_kind.h"
#include "fds/fsnotify.h"

#ifndef IN_MASK_CREATE
#define IN_MASK_CREATE 0x10000000
#endif

namespace cryo::fds {

namespace {

// Highest wd the dump accepts (see the top of the file): about half a
// minute of add/remove pairs on restore.
constexpr int64_t kHighestWd = 1 << 22;
// Throwaway watches added and removed between two reads of the queue.
constexpr int kDrainEvery = 256;

// The throwaway object: a memfd of cryo's own, reopened through
// /proc/self/fd (a memfd's own open file makes no inotify events, one
// opened by path does).
struct Throwaway {
    UniqueFd memfd;
    UniqueFd file;
    std::string path;
};

Result<Throwaway> make_throwaway()
{
    int memfd = ::memfd_create("cryo-inotify-placeholder", MFD_CLOEXEC);
    if (memfd < 0)
        return fail_errno("memfd_create for the throwaway watches");
    Throwaway throwaway { .memfd = UniqueFd(memfd) };
    throwaway.path = fsnotify::proc_fd_path(memfd);
    throwaway.file = TRY(open_file(throwaway.path, O_RDWR | O_CLOEXEC));
    return throwaway;
}

// inotify_add_watch() says ENOSPC when the user has as many watches as
// fs.inotify.max_user_watches allows.
std::string limit_hint()
{
    return errno == ENOSPC ? " (ENOSPC: the limit fs.inotify.max_user_watches is reached)" : "";
}

// Reads (and drops) every event queued in `fd`, which is non-blocking. A
// real watch that went away meanwhile is an error.
Result<void> drain(int fd, const std::set<int>& real)
{
    alignas(inotify_event) char buffer[64 * 1024];
    for (;;) {
        ssize_t length = ::read(fd, buffer, sizeof(buffer));
        if (length < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return {};
            return fail_errno("read of the new inotify instance's own events");
        }
        for (ssize_t at = 0; at + static_cast<ssize_t>(sizeof(inotify_event)) <= length;) {
            const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
            if ((event->mask & IN_IGNORED) && real.contains(event->wd))
                return fail("watch wd {} went away during the restore (its object was deleted or moved to another "
                            "filesystem, or it was a one-shot watch and fired): restore again",
                            event->wd);
            if (event->mask & IN_Q_OVERFLOW)
                spdlog::debug("inotify: the new instance's own queue overflowed while watches were added");
            at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
        }
    }
}

// Adds and removes throwaway watches until the next wd would be `wanted`.
Result<void> advance_to(int fd, const Throwaway& throwaway, int& next, int wanted, const std::set<int>& real)
{
    int cycles = 0;
    while (next < wanted) {
        int wd = ::inotify_add_watch(fd, throwaway.path.c_str(), IN_MODIFY);
        if (wd < 0)
            return fail_errno(fmt::format("inotify_add_watch of a throwaway watch (to reach wd {}){}", wanted,
                                          limit_hint()));
        if (wd != next)
            return fail("a throwaway watch got wd {} where the kernel should have given {} (to reach wd {}): this "
                        "kernel does not hand out watch descriptors the way cryo expects",
                        wd, next, wanted);
        if (::inotify_rm_watch(fd, wd) < 0)
            return fail_errno(fmt::format("inotify_rm_watch of throwaway wd {}", wd));
        ++next;
        if (++cycles % kDrainEvery == 0)
            TRY(drain(fd, real));
    }
    return {};
}

Result<uint64_t> max_queued_events()
{
    auto text = TRY(read_text_file("/proc/sys/fs/inotify/max_queued_events"));
    uint64_t value = 0;
    auto trimmed = std::string_view(text).substr(0, text.find('\n'));
    auto [end, error] = std::from_chars(trimmed.data(), trimmed.data() + trimmed.size(), value);
    if (error != std::errc() || end != trimmed.data() + trimmed.size())
        return fail("/proc/sys/fs/inotify/max_queued_events: '{}' is not a number", trimmed);
    return value;
}

// Leaves one IN_Q_OVERFLOW event in the (otherwise empty) queue of `fd`:
// see the top of the file. `limit` is the instance's max_queued_events.
Result<void> queue_overflow_event(int fd, uint64_t limit, const Throwaway& throwaway, const std::set<int>& real)
{
    int wd = ::inotify_add_watch(fd, throwaway.path.c_str(), IN_MODIFY | IN_ACCESS);
    if (wd < 0)
        return fail_errno("inotify_add_watch of the throwaway watch for the overflow event");
    // Alternate modify and access, so that no event merges with the one
    // before it, until one more than the queue holds.
    char byte = 'x';
    for (uint64_t i = 0; i <= limit + 1; ++i) {
        ssize_t done = (i % 2 == 0) ? ::pwrite(throwaway.file.get(), &byte, 1, 0) : ::pread(throwaway.file.get(), &byte, 1, 0);
        if (done < 0)
            return fail_errno("write/read of the throwaway file for the overflow event");
    }
    // The queue is full: this removal's IN_IGNORED is dropped.
    if (::inotify_rm_watch(fd, wd) < 0)
        return fail_errno("inotify_rm_watch of the throwaway watch for the overflow event");
    int queued = 0;
    if (::ioctl(fd, FIONREAD, &queued) < 0)
        return fail_errno("FIONREAD on the new inotify instance");
    const int overflow_size = static_cast<int>(sizeof(inotify_event));
    if (queued < overflow_size)
        return fail("the new inotify instance's queue holds {} bytes after {} events, no overflow event", queued, limit + 2);
    // Everything but the last event, the overflow (nothing can come after
    // it while the queue is full).
    std::vector<char> buffer(static_cast<size_t>(queued - overflow_size));
    if (!buffer.empty()) {
        ssize_t length = ::read(fd, buffer.data(), buffer.size());
        if (length != static_cast<ssize_t>(buffer.size()))
            return fail_errno(fmt::format("read of {} bytes of the new inotify instance's own events (got {})",
                                          buffer.size(), length));
        for (size_t at = 0; at + sizeof(inotify_event) <= buffer.size();) {
            const auto* event = reinterpret_cast<const inotify_event*>(buffer.data() + at);
            if ((event->mask & IN_IGNORED) && real.contains(event->wd))
                return fail("watch wd {} went away during the restore: restore again", event->wd);
            at += sizeof(inotify_event) + event->len;
        }
    }
    if (::ioctl(fd, FIONREAD, &queued) < 0 || queued != overflow_size)
        return fail("the new inotify instance's queue holds {} bytes, not the one overflow event", queued);
    return {};
}

// The deleted file an open file of the tree holds, made again (ghost.cpp).
Result<int> hold_watched_deleted_file(const image::WatchedObject& object, OpenContext& context)
{
    const auto* file = find_deleted_file(*context.table, object.inode(), object.path());
    if (!file)
        return fail("{}, and no open file of the checkpoint holds it", fsnotify::deleted_error(object));
    return hold_deleted_file(file->ghost(), context);
}

class InotifyKind final : public FileKind {
public:
    std::string_view name() const override { return "inotify"; }

    bool recognises(const FdFacts& facts) const override { return facts.link == "anon_inode:inotify"; }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        auto* inotify = file.mutable_inotify();
        for (const auto& [key, value] : facts.info.lines) {
            if (!key.starts_with("inotify"))
                continue;
            auto fields = TRY(fsnotify::parse_fields(key, value));
            int64_t wd = static_cast<int64_t>(TRY(fsnotify::hex_field(fields, "wd")));
            if (wd <= 0 || wd > INT32_MAX)
                return fail("fdinfo shows an inotify watch with wd {}", wd);
            if (wd > kHighestWd)
                return fail("watch wd {} is too high: cryo gives a watch its wd again by adding and removing that "
                            "many watches, and stops at {}",
                            wd, kHighestWd);
            auto* watch = inotify->add_watches();
            watch->set_wd(static_cast<int32_t>(wd));
            watch->set_mask(static_cast<uint32_t>(TRY(fsnotify::hex_field(fields, "mask"))));
            TRY_CTX(fsnotify::locate_object(facts, fields, *watch->mutable_object()), "watch wd {}", wd);
        }
        std::ranges::sort(*inotify->mutable_watches(), {}, &image::InotifyWatch::wd);

        int pending = 0;
        if (::ioctl(facts.local_fd, FIONREAD, &pending) < 0)
            return fail_errno("FIONREAD");
        if (pending > 0) {
            inotify->set_pending_bytes(static_cast<uint64_t>(pending));
            spdlog::warn("pid {}: fd {}: {} bytes of inotify events not read yet are lost (the restored instance "
                         "reports them with one IN_Q_OVERFLOW event)",
                         facts.pid, facts.fd, pending);
        }
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext& context) const override
    {
        const auto& inotify = file.inotify();
        std::vector<const image::InotifyWatch*> watches;
        for (const auto& watch : inotify.watches())
            watches.push_back(&watch);
        std::ranges::sort(watches, {}, &image::InotifyWatch::wd);
        std::set<int> real;
        for (const auto* watch : watches)
            if (watch->wd() <= 0 || !real.insert(watch->wd()).second)
                return fail("watch wd {} is not valid or appears twice", watch->wd());

        uint64_t limit = inotify.pending_bytes() > 0 ? TRY(max_queued_events()) : 0;
        int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (fd < 0)
            return fail_errno("inotify_init1");
        UniqueFd owned(fd);
        auto throwaway = TRY(make_throwaway());

        int next = 1;
        for (const auto* pointer : watches) {
            const auto& watch = *pointer;
            // One object open at a time: a program may watch more objects
            // than cryo may have descriptors.
            UniqueFd reopened;
            int object = -1;
            if (watch.object().deleted()) {
                object = TRY_CTX(hold_watched_deleted_file(watch.object(), context), "watch wd {}", watch.wd());
            } else {
                reopened = TRY_CTX(fsnotify::reopen_object(watch.object()), "watch wd {}", watch.wd());
                object = reopened.get();
            }
            TRY(advance_to(fd, throwaway, next, watch.wd(), real));
            auto path = fsnotify::proc_fd_path(object);
            int wd = ::inotify_add_watch(fd, path.c_str(), watch.mask() | IN_MASK_CREATE);
            if (wd < 0 && errno == EEXIST)
                return fail("watch wd {}: {} is already watched by an earlier watch of this instance (two watched "
                            "paths lead to one object now)",
                            watch.wd(), fsnotify::describe(watch.object()));
            if (wd < 0)
                return fail_errno(fmt::format("watch wd {}: inotify_add_watch(mask {:#x}) on {}{}", watch.wd(),
                                              watch.mask(), fsnotify::describe(watch.object()), limit_hint()));
            if (wd != watch.wd())
                return fail("watch wd {} on {}: the kernel gave wd {} instead", watch.wd(),
                            fsnotify::describe(watch.object()), wd);
            next = wd + 1;
        }
        TRY(drain(fd, real));
        if (inotify.pending_bytes() > 0) {
            if (limit > (1u << 20)) {
                spdlog::warn("inotify: max_queued_events is {}, too many events to make for the overflow event; "
                             "the {} bytes of events lost at dump time are not reported",
                             limit, inotify.pending_bytes());
            } else {
                TRY(queue_overflow_event(fd, limit, throwaway, real));
            }
        }
        int flags = ::fcntl(fd, F_GETFL);
        if (flags < 0 || ::fcntl(fd, F_SETFL, (flags & ~O_NONBLOCK) | (file.flags() & O_NONBLOCK)) < 0)
            return fail_errno("fcntl(F_SETFL) of the new inotify instance");
        return owned;
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_INOTIFY; }
};

} // namespace

Result<void> check_deleted_watches(const image::FileTable& files, const std::vector<const image::FdTable*>& tables)
{
    for (const auto& file : files.files()) {
        if (!file.has_inotify())
            continue;
        for (const auto& watch : file.inotify().watches()) {
            const auto& object = watch.object();
            if (object.deleted() && !find_deleted_file(files, object.inode(), object.path()))
                return fail("{}inotify watch wd {}: {}, and no open file of the dumped tree holds it: cryo can watch "
                            "a deleted file again only through an open file of it",
                            where_open(file.id(), tables), watch.wd(), fsnotify::deleted_error(object));
        }
    }
    return {};
}

const FileKind& inotify_kind()
{
    static const InotifyKind kind;
    return kind;
}

} // namespace cryo::fds
