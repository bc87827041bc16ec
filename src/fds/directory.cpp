// Directories held open (for openat(), fchdir() or getdents): reopened by
// path with O_DIRECTORY and moved to the same position.
//
// A directory removed while open (/proc/PID/fd/N reads "PATH (deleted)",
// zdtm rmdir_open) is empty and nameless: restore makes an empty directory
// with its mode and owner at its old path (or beside it when that is
// taken), holds it open and removes it again, then opens the held one with
// the dumped flags. A working directory removed too (restore/deleted_cwd.h)
// of the same device and inode is the same new directory (zdtm cwd02).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

constexpr std::string_view kDeletedSuffix = " (deleted)";

class DirectoryKind final : public FileKind {
public:
    std::string_view name() const override { return "directory"; }

    bool recognises(const FdFacts& facts) const override
    {
        return S_ISDIR(facts.stat.st_mode) && facts.link.starts_with('/');
    }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        auto& directory = *file.mutable_regular();
        directory.set_path(facts.link);
        directory.set_mode(facts.stat.st_mode);
        if (facts.link.ends_with(kDeletedSuffix) && facts.stat.st_nlink == 0) {
            directory.set_path(facts.link.substr(0, facts.link.size() - kDeletedSuffix.size()));
            directory.set_deleted(true);
            directory.set_device(facts.stat.st_dev);
            directory.set_inode(facts.stat.st_ino);
            directory.set_uid(facts.stat.st_uid);
            directory.set_gid(facts.stat.st_gid);
        }
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext& context) const override
    {
        const auto& directory = file.regular();
        if (!directory.deleted()) {
            auto fd = TRY(open_file(directory.path(), reopen_flags(file.flags()) | O_DIRECTORY));
            TRY(restore_position(fd.get(), file));
            return fd;
        }
        std::string key = deleted_directory_key(directory.device(), directory.inode());
        if (!context.shared.contains(key))
            context.shared.emplace(key, TRY(make_deleted_directory(directory.path(), directory.mode(), directory.uid(),
                                                                   directory.gid())));
        return reopen_held(context.shared.at(key).get(), file);
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_DIRECTORY; }
};

// Makes the directory at `path`, or at PATH.cryo-XXXXXX when that is
// taken; returns the name it got.
Result<std::string> make_directory(const std::string& path, uint32_t mode, uint32_t uid, uint32_t gid)
{
    std::string made = path;
    if (::mkdir(path.c_str(), 0700) < 0) {
        if (errno != EEXIST)
            return fail_errno(fmt::format("mkdir {}", path));
        std::string pattern = path + ".cryo-XXXXXX";
        if (::mkdtemp(pattern.data()) == nullptr)
            return fail_errno(fmt::format("mkdtemp {}", pattern));
        made = pattern;
    }
    if (::chown(made.c_str(), uid, gid) < 0 && ::geteuid() == 0) {
        int error = errno;
        ::rmdir(made.c_str());
        return fail_errno(fmt::format("chown {} to {}:{}", made, uid, gid), error);
    }
    if (::chmod(made.c_str(), mode & 07777) < 0) {
        int error = errno;
        ::rmdir(made.c_str());
        return fail_errno(fmt::format("chmod {} to {:o}", made, mode), error);
    }
    return made;
}

} // namespace

std::string deleted_directory_key(uint64_t device, uint64_t inode)
{
    return fmt::format("deleted-directory:{}:{}", device, inode);
}

Result<UniqueFd> make_deleted_directory(const std::string& path, uint32_t mode, uint32_t uid, uint32_t gid)
{
    std::string made = TRY(make_directory(path, mode, uid, gid));
    auto opened = open_file(made, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (::rmdir(made.c_str()) < 0 && opened)
        return fail_errno(fmt::format("rmdir {}", made));
    return opened;
}

const FileKind& directory_kind()
{
    static const DirectoryKind kind;
    return kind;
}

} // namespace cryo::fds
