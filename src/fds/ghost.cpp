// Ghost files: regular files that were deleted while open. The kernel keeps
// the inode for as long as a descriptor holds it, and /proc/PID/fd/N reads
// "/the/old/path (deleted)"; the content exists nowhere else, so it goes
// into the image.
//
// Dump: the content is read as extents (SEEK_DATA/SEEK_HOLE) from a new
// read-only open of /proc/PID/fd/N (so a write-only fd works and the
// program's offset stays where it is); a sparse file costs only its data.
// More data than --ghost-limit (64 MiB by default) is refused with an error
// naming the file, and so is more than the image's budget for all memfds and
// deleted files together, since files.img must stay under the reader's
// 256 MiB. Several open files of one deleted file (the same inode and path)
// keep the data once, in the first. A deleted file that still has another
// name (a hard link) is refused: restoring a copy would quietly split it
// (one whose other name is in the same directory is no ghost: fd_table.cpp
// takes it for a file of that name).
//
// Restore: the file is created again in the directory it was in (so on the
// same filesystem, and its /proc link reads as before), at its old name if
// that is free or else under a unique name next to it, unlinked at once (so
// a failed restore leaves nothing behind) and held open by cryo (O_PATH, so
// that letting go of it makes no close event); ftruncate
// gives it its size with holes, then the extents are written and its
// access and modification times set as they were. Each open
// file of it is a new open file description made by reopening
// /proc/self/fd/HOLD with the dumped flags, at its offset, so it comes back
// open, deleted and sparse.
//
// An inotify watch on a deleted file (inotify.cpp) is put on the same
// held file, made on first use by whichever comes first.
//
// Mappings of a deleted file use the same functions (fds/unlinked_file.h):
// one that is open too is found among the open files on restore, one that is
// only mapped keeps its content in a page file (mem/unlinked_files.h).
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <tuple>

#include "fds/file_kind.h"
#include "fds/unlinked_file.h"

namespace cryo::fds {

namespace {

constexpr std::string_view kDeletedSuffix = " (deleted)";
constexpr std::string_view kTemporarySuffix = ".cryo-ghost-XXXXXX";
// The first open file of the deleted file `inode` at `path` other than
// `except`: the one that carries its data.
const image::OpenFile* first_open_file(const image::FileTable& table, uint64_t inode, const std::string& path,
                                       uint32_t except = 0)
{
    for (const auto& file : table.files())
        if (file.id() != except && file.has_ghost() && file.ghost().inode() == inode && file.ghost().path() == path)
            return &file;
    return nullptr;
}

// A unique name next to `path`: "PATH.cryo-ghost-XXXXXX", or
// "DIR/.cryo-ghost-XXXXXX" when the name would get too long.
Result<std::pair<UniqueFd, std::string>> create_unique(const std::string& path)
{
    size_t slash = path.rfind('/');
    std::string name = path.substr(0, slash + 1) + ".cryo-ghost-XXXXXX";
    if (path.size() - slash - 1 + kTemporarySuffix.size() <= NAME_MAX)
        name = path + std::string(kTemporarySuffix);
    int fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd < 0)
        return fail_errno(fmt::format("create a file next to {}", path));
    return std::pair(UniqueFd(fd), name);
}

class GhostFileKind final : public FileKind {
public:
    std::string_view name() const override { return "deleted file"; }

    bool recognises(const FdFacts& facts) const override
    {
        // memfd_secret(2) files look deleted too ("/secretmem (deleted)"),
        // and are a kind of their own (secret_memory.cpp).
        return S_ISREG(facts.stat.st_mode) && facts.link.starts_with('/') && facts.link.ends_with(kDeletedSuffix)
            && !facts.link.starts_with("/memfd:") && !is_secret_memory(facts.local_fd, facts.link);
    }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable& table) const override
    {
        std::string path = facts.ghost_path_of_inode.empty()
            ? facts.link.substr(0, facts.link.size() - kDeletedSuffix.size())
            : facts.ghost_path_of_inode;
        auto* ghost = file.mutable_ghost();
        *ghost = TRY(describe_deleted_file(facts.stat, path));
        if (first_open_file(table, ghost->inode(), path, file.id()))
            return {};   // its data is in that open file already

        TRY(save_file_data(facts, ghost->size(), facts.ghost_limit, "deleted file " + path, table,
                           *ghost->mutable_extents()));
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext& context) const override
    {
        return reopen_held(TRY(hold_deleted_file(file.ghost(), context)), file);
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_GHOST; }
};

} // namespace

const image::OpenFile* find_deleted_file(const image::FileTable& table, uint64_t inode, const std::string& path)
{
    return first_open_file(table, inode, path);
}

// The hold is an O_PATH descriptor: closing it at the end of the restore
// makes no close event for the inotify watches on the file (an O_RDWR one
// would queue IN_CLOSE_WRITE), and reopening /proc/self/fd/HOLD works the
// same.
Result<int> hold_deleted_file(const image::GhostFile& ghost, OpenContext& context)
{
    std::string key = fmt::format("ghost:{}:{}", ghost.inode(), ghost.path());
    if (auto held = context.shared.find(key); held != context.shared.end())
        return held->second.get();
    const auto* first = first_open_file(*context.table, ghost.inode(), ghost.path());
    const auto& saved = first ? first->ghost() : ghost;
    auto write_content = [&saved](int fd) { return write_extents(fd, saved.extents(), saved.path()); };
    auto created = TRY(create_deleted_file(saved, write_content));
    int path_only = ::open(fmt::format("/proc/self/fd/{}", created.get()).c_str(), O_PATH | O_CLOEXEC);
    if (path_only < 0)
        return fail_errno(fmt::format("reopen the deleted file {} with O_PATH", ghost.path()));
    return context.shared.emplace(key, UniqueFd(path_only)).first->second.get();
}

Result<image::GhostFile> describe_deleted_file(const struct stat& stat, const std::string& path)
{
    if (stat.st_nlink > 0)
        return fail("not supported yet: {} was deleted but its inode still has {} other link(s)", path, stat.st_nlink);
    image::GhostFile ghost;
    ghost.set_path(path);
    ghost.set_size(static_cast<uint64_t>(stat.st_size));
    ghost.set_mode(stat.st_mode & 07777);
    ghost.set_inode(stat.st_ino);
    ghost.set_uid(stat.st_uid);
    ghost.set_gid(stat.st_gid);
    auto nanoseconds = [](const timespec& time) { return static_cast<int64_t>(time.tv_sec) * 1'000'000'000 + time.tv_nsec; };
    ghost.set_atime_ns(nanoseconds(stat.st_atim));
    ghost.set_mtime_ns(nanoseconds(stat.st_mtim));
    return ghost;
}

Result<UniqueFd> create_deleted_file(const image::GhostFile& ghost, const ContentWriter& write_content)
{
    const std::string& path = ghost.path();
    std::string created = path;
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST)
        return fail_errno(fmt::format("create the deleted file {} again", path));
    UniqueFd hold(fd);
    if (fd < 0)
        std::tie(hold, created) = TRY(create_unique(path));
    if (::unlink(created.c_str()) < 0)
        return fail_errno(fmt::format("unlink {}", created));
    if (::ftruncate(hold.get(), static_cast<off_t>(ghost.size())) < 0)
        return fail_errno(fmt::format("ftruncate the deleted file {} to {}", path, ghost.size()));
    TRY(write_content(hold.get()));
    // The times after the content (writing it set them) and while cryo
    // still owns the file (setting them needs the owner or CAP_FOWNER).
    if (ghost.has_atime_ns() && ghost.has_mtime_ns()) {
        auto timespec_of = [](int64_t ns) { return timespec { ns / 1'000'000'000, ns % 1'000'000'000 }; };
        timespec times[2] = { timespec_of(ghost.atime_ns()), timespec_of(ghost.mtime_ns()) };
        if (::futimens(hold.get(), times) < 0)
            return fail_errno(fmt::format("set the times of the deleted file {}", path));
    }
    // Owner before mode: a change of owner clears the set-user-ID bits. Only
    // when it differs, so a restore without CAP_CHOWN of its own files works.
    struct stat created_stat {};
    if (::fstat(hold.get(), &created_stat) < 0)
        return fail_errno(fmt::format("fstat the deleted file {}", path));
    bool other_owner = ghost.has_uid() && ghost.has_gid()
        && (created_stat.st_uid != ghost.uid() || created_stat.st_gid != ghost.gid());
    if (other_owner && ::fchown(hold.get(), ghost.uid(), ghost.gid()) < 0)
        return fail_errno(fmt::format("fchown the deleted file {} to {}:{}", path, ghost.uid(), ghost.gid()));
    if (::fchmod(hold.get(), ghost.mode()) < 0)
        return fail_errno(fmt::format("fchmod the deleted file {} to {:o}", path, ghost.mode()));
    return hold;
}

const FileKind& ghost_file_kind()
{
    static const GhostFileKind kind;
    return kind;
}

} // namespace cryo::fds
