// inotify instances (placeholder until implemented).
#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

class InotifyKind final : public FileKind {
public:
    std::string_view name() const override { return "inotify"; }
    bool recognises(const FdFacts&) const override { return false; }
    Result<void> dump(const FdFacts&, image::OpenFile&, image::FileTable&) const override
    {
        return fail("inotify is not supported yet");
    }
    Result<UniqueFd> open(const image::OpenFile&, OpenContext&) const override
    {
        return fail("inotify is not supported yet");
    }
    image::FileKind image_kind() const override { return image::FILE_KIND_INOTIFY; }
};

} // namespace

const FileKind& inotify_kind()
{
    static const InotifyKind kind;
    return kind;
}

} // namespace cryo::fds
