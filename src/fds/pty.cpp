// pseudo-terminal pairs (placeholder until implemented).
#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

class PtyKind final : public FileKind {
public:
    std::string_view name() const override { return "pseudo-terminal"; }
    bool recognises(const FdFacts&) const override { return false; }
    Result<void> dump(const FdFacts&, image::OpenFile&, image::FileTable&) const override
    {
        return fail("pseudo-terminal is not supported yet");
    }
    Result<UniqueFd> open(const image::OpenFile&, OpenContext&) const override
    {
        return fail("pseudo-terminal is not supported yet");
    }
    image::FileKind image_kind() const override { return image::FILE_KIND_PTY; }
};

} // namespace

const FileKind& pty_kind()
{
    static const PtyKind kind;
    return kind;
}

} // namespace cryo::fds
