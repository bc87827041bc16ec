// signalfd: the set of signals it reads, from /proc/PID/fdinfo ("sigmask",
// 64 bits in hex, bit N-1 for signal N). Restore creates a new signalfd with
// that mask; the signals themselves are pending signals of the process and
// come back with them.
#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>

#include <charconv>

#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

class SignalFdKind final : public FileKind {
public:
    std::string_view name() const override { return "signalfd"; }

    bool recognises(const FdFacts& facts) const override { return facts.link == "anon_inode:[signalfd]"; }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        auto text = facts.info.find("sigmask");
        uint64_t mask = 0;
        if (!text || std::from_chars(text->data(), text->data() + text->size(), mask, 16).ec != std::errc())
            return fail("fdinfo has no readable 'sigmask'");
        file.mutable_signalfd()->set_mask(mask);
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext&) const override
    {
        sigset_t mask;
        sigemptyset(&mask);
        for (int signal = 1; signal <= 64; ++signal)
            if (file.signalfd().mask() & (1ull << (signal - 1)))
                sigaddset(&mask, signal);
        int fd = ::signalfd(-1, &mask, SFD_CLOEXEC | (file.flags() & O_NONBLOCK ? SFD_NONBLOCK : 0));
        if (fd < 0)
            return fail_errno("signalfd");
        return UniqueFd(fd);
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_SIGNALFD; }
};

} // namespace

const FileKind& signalfd_kind()
{
    static const SignalFdKind kind;
    return kind;
}

} // namespace cryo::fds
