// Deleted working directories; see deleted_cwd.h.
#include "restore/deleted_cwd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <fmt/format.h>

namespace cryo::restore {

namespace {

// Makes the directory at `path`, or at PATH.cryo-XXXXXX when that is
// taken; returns the name it got.
Result<std::string> make_directory(const std::string& path, const image::DeletedDirectory& saved)
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
    if (::chown(made.c_str(), saved.uid(), saved.gid()) < 0 && ::geteuid() == 0) {
        int error = errno;
        ::rmdir(made.c_str());
        return fail_errno(fmt::format("chown {} to {}:{}", made, saved.uid(), saved.gid()), error);
    }
    if (::chmod(made.c_str(), saved.mode() & 07777) < 0) {
        int error = errno;
        ::rmdir(made.c_str());
        return fail_errno(fmt::format("chmod {} to {:o}", made, saved.mode()), error);
    }
    return made;
}

} // namespace

Result<DeletedDirectories> DeletedDirectories::create(const std::vector<const image::ProcessCore*>& cores)
{
    DeletedDirectories directories;
    for (const auto* core : cores) {
        if (!core->has_deleted_cwd())
            continue;
        const auto& saved = core->deleted_cwd();
        auto key = std::pair(saved.device(), saved.inode());
        if (directories.m_directories.contains(key))
            continue;
        std::string made = TRY_CTX(make_directory(core->cwd(), saved), "pid {}: deleted working directory", core->pid());
        auto opened = open_file(made, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (::rmdir(made.c_str()) < 0 && opened)
            return fail_errno(fmt::format("pid {}: rmdir {}", core->pid(), made));
        directories.m_directories[key] = TRY_CTX(std::move(opened), "pid {}: deleted working directory", core->pid());
    }
    return directories;
}

Result<void> DeletedDirectories::enter(const image::ProcessCore& core) const
{
    if (!core.has_deleted_cwd())
        return {};
    auto found = m_directories.find({ core.deleted_cwd().device(), core.deleted_cwd().inode() });
    if (found == m_directories.end())
        return fail("deleted working directory {} was not made", core.cwd());
    if (::fchdir(found->second.get()) < 0)
        return fail_errno(fmt::format("fchdir to the deleted working directory {}", core.cwd()));
    return {};
}

} // namespace cryo::restore
