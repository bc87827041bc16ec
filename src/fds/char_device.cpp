// Character devices that hold no state of their own worth saving: /dev/null,
// /dev/zero, /dev/full, the random devices and terminals. They are reopened
// by path; a terminal is opened with O_NOCTTY so that opening it never makes
// it the restored session's controlling terminal by accident. The device
// numbers are kept so restore can refuse a path that now names another
// device. Pseudo-terminals are not theirs when their master is open in the
// tree (/dev/ptmx itself, and a /dev/pts/N whose master a process of the
// tree holds): those are pairs, see pty.cpp. A /dev/pts/N whose master is
// outside (the terminal the tree was started on) stays a terminal here, and
// `restore --shell-job` replaces it with cryo's own.
#include <fcntl.h>
#include <sys/sysmacros.h>

#include "fds/file_kind.h"
#include "fds/pty.h"

namespace cryo::fds {

namespace {

class CharDeviceKind final : public FileKind {
public:
    std::string_view name() const override { return "character device"; }

    bool recognises(const FdFacts& facts) const override
    {
        return S_ISCHR(facts.stat.st_mode) && facts.link.starts_with("/dev/") && !is_pty_master(facts.stat)
            && !pty_slave_with_master_in_tree(facts) && !orphan_pty_slave(facts);
    }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        // A device node removed since it was opened: nothing can open it
        // again (a pty slave whose master was closed is the pty kind's).
        if (facts.link.ends_with(" (deleted)"))
            return fail("not supported: device {} was removed", facts.link);
        auto* device = file.mutable_char_device();
        device->set_path(facts.link);
        device->set_rdev_major(major(facts.stat.st_rdev));
        device->set_rdev_minor(minor(facts.stat.st_rdev));
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext&) const override
    {
        const auto& device = file.char_device();
        auto fd = TRY(open_file(device.path(), reopen_flags(file.flags()) | O_NOCTTY));
        struct stat st {};
        if (::fstat(fd.get(), &st) < 0)
            return fail_errno(fmt::format("fstat {}", device.path()));
        if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != device.rdev_major()
            || minor(st.st_rdev) != device.rdev_minor())
            return fail("{} is no longer character device {}:{}", device.path(),
                        device.rdev_major(), device.rdev_minor());
        TRY(restore_position(fd.get(), file));
        return fd;
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_CHAR_DEVICE; }
};

} // namespace

const FileKind& char_device_kind()
{
    static const CharDeviceKind kind;
    return kind;
}

} // namespace cryo::fds
