// FIXME: placeholder while this kind is being written; it recognises no
// descriptor, so such fds are still refused as "not supported yet".
#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

class TimerFdKind final : public FileKind {
public:
    std::string_view name() const override { return "timerfd"; }
    bool recognises(const FdFacts&) const override { return false; }
    Result<void> dump(const FdFacts&, image::OpenFile&, image::FileTable&) const override
    {
        return fail("not supported yet: timerfd");
    }
    Result<UniqueFd> open(const image::OpenFile&, OpenContext&) const override
    {
        return fail("not supported yet: timerfd");
    }
    image::FileKind image_kind() const override { return image::FILE_KIND_TIMERFD; }
};

} // namespace

const FileKind& timerfd_kind()
{
    static const TimerFdKind kind;
    return kind;
}

} // namespace cryo::fds
