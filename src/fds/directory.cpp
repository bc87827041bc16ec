// Directories held open (for openat(), fchdir() or getdents): reopened by
// path with O_DIRECTORY and moved to the same position.
#include <fcntl.h>

#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

class DirectoryKind final : public FileKind {
public:
    std::string_view name() const override { return "directory"; }

    bool recognises(const FdFacts& facts) const override
    {
        return S_ISDIR(facts.stat.st_mode) && facts.link.starts_with('/')
            && !facts.link.ends_with(" (deleted)");
    }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        file.mutable_regular()->set_path(facts.link);
        file.mutable_regular()->set_mode(facts.stat.st_mode);
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext&) const override
    {
        auto fd = TRY(open_file(file.regular().path(), reopen_flags(file.flags()) | O_DIRECTORY));
        TRY(restore_position(fd.get(), file));
        return fd;
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_DIRECTORY; }
};

} // namespace

const FileKind& directory_kind()
{
    static const DirectoryKind kind;
    return kind;
}

} // namespace cryo::fds
