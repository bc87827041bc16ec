// timerfd: a timer on one clock that counts its expirations in the file
// ("ticks"); read() returns and clears that count, poll() reports the file
// readable while it is not zero. A timer has a time left until it next
// expires (zero: disarmed) and an interval (zero: one-shot); settime flags
// say whether it was set to an absolute time and whether it is cancelled
// when CLOCK_REALTIME is set.
//
// Dump: the clock, ticks and settime flags come from /proc/PID/fdinfo. The
// time left comes from timerfd_gettime() on cryo's copy of the fd (the same
// open file), which is precise where fdinfo is not: fdinfo shows a periodic
// timer that expired unread as "it_value: (0, 0)" and its ticks without the
// periods that passed since, and timerfd_gettime() is what moves such a
// timer on and adds those periods to the ticks. So fdinfo is read after it.
//
// Restore: a new timer on the same clock, armed with the time left (as a
// relative time; a timer that was set to an absolute time is armed at now
// plus the time left, with its flags, so it still follows clock changes and
// TFD_TIMER_CANCEL_ON_SET still holds). Expirations not read yet are put
// back with the TFD_IOC_SET_TICKS ioctl, which exists for checkpoint/restore
// (CONFIG_CHECKPOINT_RESTORE). On a kernel without it the count cannot be
// written: the timer is armed to expire after 1 ns instead, so a read
// returns 1 (not the old count) and poll() reports it readable as before,
// at the cost of a periodic timer's phase.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>

#include "fds/file_kind.h"

// From <linux/timerfd.h>, which clashes with glibc's <sys/timerfd.h>.
#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

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

Result<itimerspec> get_time(int fd)
{
    itimerspec left {};
    if (::timerfd_gettime(fd, &left) < 0)
        return fail_errno("timerfd_gettime");
    return left;
}

// The timer keeps running while cryo looks at it (freezing the process
// does not stop its timers), so time left and ticks are read as a pair that
// no expiry came between: time left, fdinfo, time left again, and again
// from the start if the timer expired in the meantime (its time left went
// up, or fell to zero). A timer with a period of a few microseconds always
// does; after a few tries its ticks may be off by one.
Result<void> dump_timer(const FdFacts& facts, image::TimerFd& timer)
{
    constexpr int kTries = 3;
    for (int attempt = 1;; ++attempt) {
        itimerspec before = TRY(get_time(facts.local_fd));
        auto info = TRY(proc::read_fdinfo(facts.pid, facts.fd));
        itimerspec after = TRY(get_time(facts.local_fd));
        uint64_t left_before = nanoseconds(before.it_value);
        uint64_t left_after = nanoseconds(after.it_value);
        bool expired_meanwhile = left_after > left_before || (left_before != 0 && left_after == 0);
        if (expired_meanwhile && attempt < kTries)
            continue;
        timer.set_clock_id(static_cast<int32_t>(TRY(info.signed_number("clockid", 10))));
        timer.set_ticks(static_cast<uint64_t>(TRY(info.signed_number("ticks", 10))));
        timer.set_settime_flags(static_cast<int32_t>(TRY(info.signed_number("settime flags", 8))));
        timer.set_value_ns(left_after);
        timer.set_interval_ns(nanoseconds(after.it_interval));
        return {};
    }
}

// Arms (or, with no time left, only sets the interval of) a new timer.
Result<void> arm(int fd, const image::TimerFd& timer)
{
    itimerspec spec {};
    spec.it_interval = from_nanoseconds(timer.interval_ns());
    spec.it_value = from_nanoseconds(timer.value_ns());
    int flags = 0;
    if (timer.settime_flags() & TFD_TIMER_ABSTIME) {
        flags = timer.settime_flags() & (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET);
        if (timer.value_ns() != 0) {
            timespec now {};
            if (::clock_gettime(timer.clock_id(), &now) < 0)
                return fail_errno(fmt::format("clock_gettime(clock {})", timer.clock_id()));
            spec.it_value = from_nanoseconds(nanoseconds(now) + timer.value_ns());
        }
    }
    // FIXME: a timer with TFD_TIMER_CANCEL_ON_SET whose clock was set before
    // the dump and not read since would have failed its next read with
    // ECANCELED; the new timer has not seen that clock change and does not.
    if (::timerfd_settime(fd, flags, &spec, nullptr) < 0)
        return fail_errno(fmt::format("timerfd_settime({} ns left, interval {} ns, flags {:#o})", timer.value_ns(),
                                      timer.interval_ns(), flags));
    return {};
}

// Puts back expirations that were not read yet (see the top of the file).
Result<void> restore_ticks(int fd, const image::TimerFd& timer)
{
    uint64_t ticks = timer.ticks();
    if (::ioctl(fd, TFD_IOC_SET_TICKS, &ticks) == 0)
        return {};
    if (errno != ENOTTY && errno != EINVAL)
        return fail_errno(fmt::format("ioctl(TFD_IOC_SET_TICKS, {})", ticks));
    itimerspec soon {};
    soon.it_interval = from_nanoseconds(timer.interval_ns());
    soon.it_value = from_nanoseconds(1);
    if (::timerfd_settime(fd, 0, &soon, nullptr) < 0)
        return fail_errno("timerfd_settime(1 ns, for the unread expirations)");
    return {};
}

class TimerFdKind final : public FileKind {
public:
    std::string_view name() const override { return "timerfd"; }

    bool recognises(const FdFacts& facts) const override { return facts.link == "anon_inode:[timerfd]"; }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        return dump_timer(facts, *file.mutable_timerfd());
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext&) const override
    {
        const auto& timer = file.timerfd();
        int fd = ::timerfd_create(timer.clock_id(), TFD_CLOEXEC | (file.flags() & O_NONBLOCK ? TFD_NONBLOCK : 0));
        if (fd < 0)
            return fail_errno(fmt::format("timerfd_create(clock {})", timer.clock_id()));
        UniqueFd owned(fd);
        TRY(arm(fd, timer));
        if (timer.ticks() > 0)
            TRY(restore_ticks(fd, timer));
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
