// Ghost files: regular files that were deleted while open. Their content
// goes into the image as extents (SEEK_DATA/SEEK_HOLE), so a sparse file
// costs only its data; more data than --ghost-limit (64 MiB by default) is
// refused with a clear error. On restore the file is created again in the directory it was
// in (so on the same filesystem), at its old name if that is free or under
// a temporary one, filled, unlinked at once and held open by cryo; each
// open file of it is then a new open file description made by reopening
// /proc/self/fd/HOLD with the dumped flags, so it comes back open, deleted
// and sparse, at its offset.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

constexpr std::string_view kDeletedSuffix = " (deleted)";

class GhostFileKind final : public FileKind {
public:
    std::string_view name() const override { return "deleted file"; }

    bool recognises(const FdFacts& facts) const override
    {
        return S_ISREG(facts.stat.st_mode) && facts.link.starts_with('/') && facts.link.ends_with(kDeletedSuffix)
            && !facts.link.starts_with("/memfd:");
    }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        auto* ghost = file.mutable_ghost();
        ghost->set_path(facts.link.substr(0, facts.link.size() - kDeletedSuffix.size()));
        ghost->set_size(static_cast<uint64_t>(facts.stat.st_size));
        ghost->set_mode(facts.stat.st_mode & 07777);
        ghost->set_inode(facts.stat.st_ino);
        auto readable = TRY(readable_copy(facts));
        for (auto& [offset, data] : TRY(read_extents(readable.get(), ghost->size(), facts.ghost_limit, ghost->path()))) {
            auto* extent = ghost->add_extents();
            extent->set_offset(offset);
            extent->set_data(std::move(data));
        }
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext& context) const override
    {
        const auto& ghost = file.ghost();
        std::string key = fmt::format("ghost:{}:{}", ghost.inode(), ghost.path());
        if (!context.shared.contains(key))
            context.shared.emplace(key, TRY(create_ghost(ghost)));
        return reopen_held(context.shared.at(key).get(), file);
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_GHOST; }

private:
    static Result<UniqueFd> create_ghost(const image::GhostFile& ghost)
    {
        std::string path = ghost.path();
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST) {
            path = ghost.path() + ".cryo-ghost-XXXXXX";
            fd = ::mkostemp(path.data(), O_CLOEXEC);
        }
        if (fd < 0)
            return fail_errno(fmt::format("create the deleted file {} again", ghost.path()));
        UniqueFd hold(fd);
        ::unlink(path.c_str());
        if (::ftruncate(fd, static_cast<off_t>(ghost.size())) < 0)
            return fail_errno(fmt::format("ftruncate {}", path));
        TRY(write_extents(fd, ghost.extents(), ghost.path()));
        ::fchmod(fd, ghost.mode());
        return hold;
    }
};

} // namespace

const FileKind& ghost_file_kind()
{
    static const GhostFileKind kind;
    return kind;
}

} // namespace cryo::fds
