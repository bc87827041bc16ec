// fanotify instances: the group's flags and every mark.
//
// Dump: /proc/PID/fdinfo/N has "fanotify flags:F event-flags:E" (the
// fanotify_init() flags and event_f_flags, in hex) and one line per mark:
//   fanotify ino:I sdev:D mflags:F mask:M ignored_mask:G fhandle-bytes:...   an inode
//   fanotify mnt_id:N mflags:F mask:M ignored_mask:G                          a mount
//   fanotify sdev:D mflags:F mask:M ignored_mask:G                            a filesystem
// mflags holds FAN_MARK_IGNORED_SURV_MODIFY, FAN_MARK_EVICTABLE and
// FAN_MARK_IGNORE. The object of an inode mark is found and given a path as
// fsnotify.h describes (a deleted one, or one found nowhere, stops the
// dump); a mount mark keeps the mount point of the marked mount (it must be
// the mount visible there, not one hidden under another), a filesystem mark
// the device and a mount point of it. Other marks (mount namespace marks)
// stop the dump.
//
// Restore: fanotify_init() in cryo with the same flags and event_f_flags
// (O_NONBLOCK then set as the open file had it, close-on-exec per
// descriptor), then
// fanotify_mark() for each mark: the ignore mask first (with
// FAN_MARK_IGNORE or FAN_MARK_IGNORED_MASK as the mark had, and
// FAN_MARK_IGNORED_SURV_MODIFY), then the mask, both with
// FAN_MARK_EVICTABLE if the mark was evictable. An inode is found by handle
// or path (fsnotify.h), a mount by its mount point (a mount must be there),
// a filesystem by a mount of its device, else by its recorded mount point.
//
// Not kept: events queued and not read at dump time (lost: nothing reads
// them without taking them from the program; the dump says how many bytes);
// permission events the program had not answered (the kernel allows them
// when the original instance is closed by the dump, and an answer written
// after the restore is refused by the new instance as unknown). The new
// group is made by cryo, as root: a group that an unprivileged program
// made comes back with a privileged group's behaviour (event pids of other
// processes shown).
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "fds/file_kind.h"
#include "fds/fsnotify.h"

#ifndef FAN_MARK_EVICTABLE
#define FAN_MARK_EVICTABLE 0x00000200
#endif
#ifndef FAN_MARK_IGNORE
#define FAN_MARK_IGNORE 0x00000400
#endif

namespace cryo::fds {

namespace {

std::string describe(const image::FanotifyMark& mark)
{
    switch (mark.type()) {
    case image::FANOTIFY_MARK_INODE:
        return "inode mark on " + fsnotify::describe(mark.object());
    case image::FANOTIFY_MARK_MOUNT:
        return fmt::format("mount mark on the mount at '{}'", mark.mount_point());
    case image::FANOTIFY_MARK_FILESYSTEM:
        return fmt::format("filesystem mark on device {}:{} (mounted at '{}')", mark.object().dev_major(),
                           mark.object().dev_minor(), mark.object().path());
    default:
        return "mark of an unknown type";
    }
}

Result<void> dump_mount_mark(const fsnotify::Fields& fields, image::FanotifyMark& mark)
{
    int id = static_cast<int>(TRY(fsnotify::hex_field(fields, "mnt_id")));
    mark.set_mount_id(id);
    auto mounts = TRY(fsnotify::read_mounts());
    auto found = std::ranges::find(mounts, id, &fsnotify::Mount::id);
    if (found == mounts.end())
        return fail("mount mark on mount {}, which cryo does not see in /proc/self/mountinfo", id);
    // Restore marks the mount it finds at that path: the topmost one.
    int top = id;
    for (const auto& mount : mounts)
        if (mount.mount_point == found->mount_point)
            top = mount.id;
    if (top != id)
        return fail("mount mark on mount {} at '{}', which another mount hides", id, found->mount_point);
    mark.set_mount_point(found->mount_point);
    return {};
}

Result<void> dump_filesystem_mark(const fsnotify::Fields& fields, image::FanotifyMark& mark)
{
    auto device = fsnotify::kernel_device(TRY(fsnotify::hex_field(fields, "sdev")));
    auto mounts = fsnotify::mounts_of(TRY(fsnotify::read_mounts()), device);
    if (mounts.empty())
        return fail("filesystem mark on device {}:{}, which has no mount cryo can see", device.major, device.minor);
    auto* object = mark.mutable_object();
    object->set_dev_major(device.major);
    object->set_dev_minor(device.minor);
    object->set_path(mounts.front().mount_point);
    object->set_file_type(S_IFDIR);
    return {};
}

// Where fanotify_mark() is pointed at for `mark`: a path, held open as
// `held` for inode marks.
Result<std::string> mark_target(const image::FanotifyMark& mark, UniqueFd& held)
{
    switch (mark.type()) {
    case image::FANOTIFY_MARK_INODE:
        held = TRY(fsnotify::reopen_object(mark.object()));
        return fsnotify::proc_fd_path(held.get());
    case image::FANOTIFY_MARK_MOUNT: {
        auto mounts = TRY(fsnotify::read_mounts());
        if (std::ranges::find(mounts, mark.mount_point(), &fsnotify::Mount::mount_point) == mounts.end())
            return fail("nothing is mounted at '{}' any more", mark.mount_point());
        return mark.mount_point();
    }
    case image::FANOTIFY_MARK_FILESYSTEM: {
        fsnotify::Device device { mark.object().dev_major(), mark.object().dev_minor() };
        auto all = TRY(fsnotify::read_mounts());
        auto mounts = fsnotify::mounts_of(all, device);
        if (!mounts.empty())
            return mounts.front().mount_point;
        if (std::ranges::find(all, mark.object().path(), &fsnotify::Mount::mount_point) == all.end())
            return fail("device {}:{} is not mounted and nothing is mounted at '{}' any more", device.major,
                        device.minor, mark.object().path());
        return mark.object().path();
    }
    default:
        return fail("unknown mark type {}", static_cast<int>(mark.type()));
    }
}

Result<void> add_mark(int fd, const image::FanotifyMark& mark)
{
    UniqueFd held;
    auto path = TRY(mark_target(mark, held));
    unsigned type = mark.type() == image::FANOTIFY_MARK_MOUNT      ? FAN_MARK_MOUNT
        : mark.type() == image::FANOTIFY_MARK_FILESYSTEM ? FAN_MARK_FILESYSTEM
                                                                   : FAN_MARK_INODE;
    unsigned common = FAN_MARK_ADD | type | (mark.mflags() & FAN_MARK_EVICTABLE);
    if (mark.ignored_mask() != 0) {
        unsigned flags = common | (mark.mflags() & FAN_MARK_IGNORED_SURV_MODIFY)
            | ((mark.mflags() & FAN_MARK_IGNORE) ? FAN_MARK_IGNORE : FAN_MARK_IGNORED_MASK);
        if (::fanotify_mark(fd, flags, mark.ignored_mask(), AT_FDCWD, path.c_str()) < 0)
            return fail_errno(fmt::format("fanotify_mark({:#x}, ignored mask {:#x}) on {}", flags, mark.ignored_mask(), path));
    }
    if (mark.mask() != 0) {
        if (::fanotify_mark(fd, common, mark.mask(), AT_FDCWD, path.c_str()) < 0)
            return fail_errno(fmt::format("fanotify_mark({:#x}, mask {:#x}) on {}", common, mark.mask(), path));
    }
    if (mark.mask() == 0 && mark.ignored_mask() == 0)
        spdlog::debug("fanotify: {} has no mask left, not added again", describe(mark));
    return {};
}

class FanotifyKind final : public FileKind {
public:
    std::string_view name() const override { return "fanotify"; }

    bool recognises(const FdFacts& facts) const override { return facts.link == "anon_inode:[fanotify]"; }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        auto* fanotify = file.mutable_fanotify();
        bool have_flags = false;
        for (const auto& [key, value] : facts.info.lines) {
            if (!key.starts_with("fanotify"))
                continue;
            auto fields = TRY(fsnotify::parse_fields(key, value));
            if (fields.contains("flags")) {
                fanotify->set_init_flags(static_cast<uint32_t>(TRY(fsnotify::hex_field(fields, "flags"))));
                fanotify->set_event_flags(static_cast<uint32_t>(TRY(fsnotify::hex_field(fields, "event-flags"))));
                have_flags = true;
                continue;
            }
            auto* mark = fanotify->add_marks();
            mark->set_mflags(static_cast<uint32_t>(TRY(fsnotify::hex_field(fields, "mflags"))));
            mark->set_mask(static_cast<uint32_t>(TRY(fsnotify::hex_field(fields, "mask"))));
            mark->set_ignored_mask(static_cast<uint32_t>(TRY(fsnotify::hex_field(fields, "ignored_mask"))));
            if (fields.contains("ino")) {
                mark->set_type(image::FANOTIFY_MARK_INODE);
                TRY_CTX(fsnotify::locate_object(facts, fields, *mark->mutable_object()), "inode mark");
                if (mark->object().deleted())
                    return fail("inode mark: {}, and cryo cannot mark it again after a restore",
                                fsnotify::deleted_error(mark->object()));
            } else if (fields.contains("mnt_id")) {
                mark->set_type(image::FANOTIFY_MARK_MOUNT);
                TRY(dump_mount_mark(fields, *mark));
            } else if (fields.contains("sdev")) {
                mark->set_type(image::FANOTIFY_MARK_FILESYSTEM);
                TRY(dump_filesystem_mark(fields, *mark));
            } else {
                return fail("not supported yet: fanotify mark '{}: {}'", key, value);
            }
        }
        if (!have_flags)
            return fail("fdinfo has no 'fanotify flags' line");

        int pending = 0;
        if (::ioctl(facts.local_fd, FIONREAD, &pending) < 0)
            return fail_errno("FIONREAD");
        if (pending > 0) {
            fanotify->set_pending_bytes(static_cast<uint64_t>(pending));
            spdlog::warn("pid {}: fd {}: {} bytes of fanotify events not read yet are lost", facts.pid, facts.fd, pending);
        }
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext&) const override
    {
        const auto& fanotify = file.fanotify();
        // The group keeps its init flags as given (fdinfo shows them), so
        // FAN_CLOEXEC and FAN_NONBLOCK are passed as they were; what counts
        // is set on the descriptor and open file afterwards.
        unsigned flags = fanotify.init_flags();
        int fd = ::fanotify_init(flags, fanotify.event_flags());
        if (fd < 0)
            return fail_errno(fmt::format("fanotify_init(flags {:#x}, event flags {:#x})", flags, fanotify.event_flags()));
        UniqueFd owned(fd);
        int status = ::fcntl(fd, F_GETFL);
        if (::fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || status < 0
            || ::fcntl(fd, F_SETFL, (status & ~O_NONBLOCK) | (file.flags() & O_NONBLOCK)) < 0)
            return fail_errno("fcntl of the new fanotify group");
        for (const auto& mark : fanotify.marks())
            TRY_CTX(add_mark(fd, mark), "{}", describe(mark));
        return owned;
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_FANOTIFY; }
};

} // namespace

const FileKind& fanotify_kind()
{
    static const FanotifyKind kind;
    return kind;
}

} // namespace cryo::fds
