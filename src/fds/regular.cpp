// Regular files: reopened by path with the same access mode and status flags
// (O_APPEND, O_NONBLOCK, ...) and moved to the same offset. The file itself is
// not part of the checkpoint; like CRIU, cryo expects it to be there on
// restore, and records its size and mtime so a changed file can be noticed.
// Files that were deleted while open are not supported yet (their contents
// would have to be saved in the image).
#include <fcntl.h>

#include <charconv>
#include <unistd.h>

#include "fds/file_identity.h"
#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

constexpr std::string_view kDeletedSuffix = " (deleted)";

class RegularFileKind final : public FileKind {
public:
    std::string_view name() const override { return "regular file"; }

    bool recognises(const FdFacts& facts) const override
    {
        return S_ISREG(facts.stat.st_mode) && facts.link.starts_with('/')
            && !facts.link.ends_with(kDeletedSuffix);
    }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        auto* regular = file.mutable_regular();
        regular->set_path(facts.link);
        regular->set_size(static_cast<uint64_t>(facts.stat.st_size));
        regular->set_mtime_ns(facts.stat.st_mtim.tv_sec * 1'000'000'000ll + facts.stat.st_mtim.tv_nsec);
        regular->set_mode(facts.stat.st_mode);
        if ((facts.info.flags & O_ACCMODE) == O_RDONLY && !(facts.info.flags & O_PATH))
            *regular->mutable_identity() = TRY(identify_file(facts.local_fd, facts.link));
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext& context) const override
    {
        // A file of a process of the tree, which does not exist yet: a
        // placeholder holds the number, restore.cpp opens the file later.
        if (proc_path_owner(file.regular().path(), context.tree_ids))
            return open_file("/dev/null", O_RDONLY | O_CLOEXEC);
        auto fd = TRY(open_file(file.regular().path(), reopen_flags(file.flags())));
        if (context.check_files && file.regular().has_identity())
            TRY(check_file_identity(fd.get(), file.regular().path(), file.regular().identity()));
        TRY(restore_position(fd.get(), file));
        return fd;
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_REGULAR; }
};

} // namespace

const FileKind& regular_file_kind()
{
    static const RegularFileKind kind;
    return kind;
}

int reopen_flags(uint32_t dumped_flags)
{
    int flags = static_cast<int>(dumped_flags);
    // O_ASYNC given to open() shows in F_GETFL but signal-driven I/O then
    // never starts, not even after F_SETFL turns it off and on again: it is
    // left out here and set by the process itself (fds/owner.h).
    flags &= ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC | O_ASYNC);
    // A file made by open(O_TMPFILE) keeps that flag (with O_DIRECTORY in
    // it) in F_GETFL; reopening the file itself with it fails (ENOTDIR).
    if ((flags & O_TMPFILE) == O_TMPFILE)
        flags &= ~O_TMPFILE;
    return flags | O_CLOEXEC;
}

Result<UniqueFd> reopen_held(int held, const image::OpenFile& file)
{
    auto fd = TRY(open_file(fmt::format("/proc/self/fd/{}", held), reopen_flags(file.flags())));
    TRY(restore_position(fd.get(), file));
    return fd;
}

std::optional<pid_t> proc_path_owner(const std::string& path, const std::set<pid_t>& tree_ids)
{
    constexpr std::string_view kProc = "/proc/";
    if (!path.starts_with(kProc))
        return std::nullopt;
    size_t end = path.find('/', kProc.size());
    std::string_view digits = std::string_view(path).substr(kProc.size(), end == std::string::npos ? end : end - kProc.size());
    pid_t pid = 0;
    auto [stop, error] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
    if (digits.empty() || error != std::errc() || stop != digits.data() + digits.size() || !tree_ids.contains(pid))
        return std::nullopt;
    return pid;
}

Result<void> restore_position(int fd, const image::OpenFile& file)
{
    if (file.position() == 0)
        return {};
    if (::lseek(fd, static_cast<off_t>(file.position()), SEEK_SET) < 0)
        return fail_errno(fmt::format("lseek to {}", file.position()));
    return {};
}

} // namespace cryo::fds
