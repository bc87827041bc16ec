// eventfd: the counter and the semaphore mode, from /proc/PID/fdinfo
// ("eventfd-count" in hex, "eventfd-semaphore"). Restore creates a new
// eventfd and writes the counter into it (eventfd()'s initial value is only
// 32 bits wide; write() takes the full 64-bit value).
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

class EventFdKind final : public FileKind {
public:
    std::string_view name() const override { return "eventfd"; }

    bool recognises(const FdFacts& facts) const override { return facts.link == "anon_inode:[eventfd]"; }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        auto* eventfd = file.mutable_eventfd();
        eventfd->set_count(TRY(facts.info.unsigned_number("eventfd-count", 16)));
        if (facts.info.find("eventfd-semaphore"))
            eventfd->set_semaphore(TRY(facts.info.unsigned_number("eventfd-semaphore")) != 0);
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext&) const override
    {
        int flags = EFD_CLOEXEC | (file.flags() & O_NONBLOCK ? EFD_NONBLOCK : 0)
            | (file.eventfd().semaphore() ? EFD_SEMAPHORE : 0);
        int fd = ::eventfd(0, flags);
        if (fd < 0)
            return fail_errno("eventfd");
        UniqueFd owned(fd);
        uint64_t count = file.eventfd().count();
        if (count != 0 && ::write(fd, &count, sizeof(count)) != sizeof(count))
            return fail_errno(fmt::format("write {} to the eventfd", count));
        return owned;
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_EVENTFD; }
};

} // namespace

const FileKind& eventfd_kind()
{
    static const EventFdKind kind;
    return kind;
}

} // namespace cryo::fds
