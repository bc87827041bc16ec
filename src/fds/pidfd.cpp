// pidfds (placeholder until implemented).
#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

class PidFdKind final : public FileKind {
public:
    std::string_view name() const override { return "pidfd"; }
    bool recognises(const FdFacts&) const override { return false; }
    Result<void> dump(const FdFacts&, image::OpenFile&, image::FileTable&) const override
    {
        return fail("pidfd is not supported yet");
    }
    Result<UniqueFd> open(const image::OpenFile&, OpenContext&) const override
    {
        return fail("pidfd is not supported yet");
    }
    image::FileKind image_kind() const override { return image::FILE_KIND_PIDFD; }
};

} // namespace

const FileKind& pidfd_kind()
{
    static const PidFdKind kind;
    return kind;
}

} // namespace cryo::fds
