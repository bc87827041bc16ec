// Deleted working directories; see deleted_cwd.h.
#include "restore/deleted_cwd.h"

#include "fds/file_kind.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <fmt/format.h>

namespace cryo::restore {

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
        directories.m_directories[key] = TRY_CTX(
            fds::make_deleted_directory(core->cwd(), saved.mode(), saved.uid(), saved.gid()),
            "pid {}: deleted working directory", core->pid());
    }
    return directories;
}

std::map<std::string, int> DeletedDirectories::held() const
{
    std::map<std::string, int> held;
    for (const auto& [key, fd] : m_directories)
        held[fds::deleted_directory_key(key.first, key.second)] = fd.get();
    return held;
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
