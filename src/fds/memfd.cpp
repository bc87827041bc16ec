// FIXME: placeholder while this kind is being written; it recognises no
// descriptor, so such fds are still refused as "not supported yet".
#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

class MemfdKind final : public FileKind {
public:
    std::string_view name() const override { return "memfd"; }
    bool recognises(const FdFacts&) const override { return false; }
    Result<void> dump(const FdFacts&, image::OpenFile&, image::FileTable&) const override
    {
        return fail("not supported yet: memfd");
    }
    Result<UniqueFd> open(const image::OpenFile&, OpenContext&) const override
    {
        return fail("not supported yet: memfd");
    }
    image::FileKind image_kind() const override { return image::FILE_KIND_MEMFD; }
};

} // namespace

const FileKind& memfd_kind()
{
    static const MemfdKind kind;
    return kind;
}

} // namespace cryo::fds
