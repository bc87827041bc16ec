// timerfd: clock, time left, interval and expirations not read yet. The
// time left is read with timerfd_gettime() on cryo's copy of the fd (the
// same open file) and set again as a relative time, so the timer keeps
// counting from where it was. Expirations that were not read yet ("ticks"
// in fdinfo) cannot be put back into a new timer: a timer that had some is
// armed to expire at once, so a read returns at least one expiration and
// poll() reports it readable, as before (the exact count is lost when it
// was more than one).
#include <fcntl.h>
#include <sys/timerfd.h>

#include <charconv>

#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

uint64_t nanoseconds(const timespec& time)
{
    return static_cast<uint64_t>(time.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(time.tv_nsec);
}

timespec from_nanoseconds(uint64_t value)
{
    return { static_cast<time_t>(value / 1'000'000'000ull), static_cast<long>(value % 1'000'000'000ull) };
}

Result<int64_t> fdinfo_number(const FdFacts& facts, std::string_view key, int base)
{
    auto text = facts.info.find(key);
    int64_t value = 0;
    if (!text || std::from_chars(text->data(), text->data() + text->size(), value, base).ec != std::errc())
        return fail("fdinfo has no readable '{}'", key);
    return value;
}

class TimerFdKind final : public FileKind {
public:
    std::string_view name() const override { return "timerfd"; }

    bool recognises(const FdFacts& facts) const override { return facts.link == "anon_inode:[timerfd]"; }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        auto* timer = file.mutable_timerfd();
        timer->set_clock_id(static_cast<int32_t>(TRY(fdinfo_number(facts, "clockid", 10))));
        timer->set_ticks(static_cast<uint64_t>(TRY(fdinfo_number(facts, "ticks", 10))));
        timer->set_settime_flags(static_cast<int32_t>(TRY(fdinfo_number(facts, "settime flags", 8))));
        itimerspec left {};
        if (::timerfd_gettime(facts.local_fd, &left) < 0)
            return fail_errno("timerfd_gettime");
        timer->set_value_ns(nanoseconds(left.it_value));
        timer->set_interval_ns(nanoseconds(left.it_interval));
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext&) const override
    {
        const auto& timer = file.timerfd();
        int fd = ::timerfd_create(timer.clock_id(), TFD_CLOEXEC | (file.flags() & O_NONBLOCK ? TFD_NONBLOCK : 0));
        if (fd < 0)
            return fail_errno(fmt::format("timerfd_create(clock {})", timer.clock_id()));
        UniqueFd owned(fd);
        itimerspec spec {};
        spec.it_interval = from_nanoseconds(timer.interval_ns());
        spec.it_value = from_nanoseconds(timer.ticks() > 0 ? 1 : timer.value_ns());
        if ((spec.it_value.tv_sec || spec.it_value.tv_nsec) && ::timerfd_settime(fd, 0, &spec, nullptr) < 0)
            return fail_errno("timerfd_settime");
        return owned;
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
