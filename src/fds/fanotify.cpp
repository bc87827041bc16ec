// fanotify instances (placeholder until implemented).
#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

class FanotifyKind final : public FileKind {
public:
    std::string_view name() const override { return "fanotify"; }
    bool recognises(const FdFacts&) const override { return false; }
    Result<void> dump(const FdFacts&, image::OpenFile&, image::FileTable&) const override
    {
        return fail("fanotify is not supported yet");
    }
    Result<UniqueFd> open(const image::OpenFile&, OpenContext&) const override
    {
        return fail("fanotify is not supported yet");
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
