// FIXME: placeholder while this kind is being written; it recognises no
// descriptor, so such fds are still refused as "not supported yet".
#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

class UnixSocketKind final : public FileKind {
public:
    std::string_view name() const override { return "unix socket"; }
    bool recognises(const FdFacts&) const override { return false; }
    Result<void> dump(const FdFacts&, image::OpenFile&, image::FileTable&) const override
    {
        return fail("not supported yet: unix socket");
    }
    Result<UniqueFd> open(const image::OpenFile&, OpenContext&) const override
    {
        return fail("not supported yet: unix socket");
    }
    image::FileKind image_kind() const override { return image::FILE_KIND_UNIX_SOCKET; }
};

} // namespace

const FileKind& unix_socket_kind()
{
    static const UnixSocketKind kind;
    return kind;
}

} // namespace cryo::fds
