// FIXME: placeholder while this kind is being written; it recognises no
// descriptor, so such fds are still refused as "not supported yet".
#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

class GhostFileKind final : public FileKind {
public:
    std::string_view name() const override { return "deleted file"; }
    bool recognises(const FdFacts&) const override { return false; }
    Result<void> dump(const FdFacts&, image::OpenFile&, image::FileTable&) const override
    {
        return fail("not supported yet: deleted file");
    }
    Result<UniqueFd> open(const image::OpenFile&, OpenContext&) const override
    {
        return fail("not supported yet: deleted file");
    }
    image::FileKind image_kind() const override { return image::FILE_KIND_GHOST; }
};

} // namespace

const FileKind& ghost_file_kind()
{
    static const GhostFileKind kind;
    return kind;
}

} // namespace cryo::fds
