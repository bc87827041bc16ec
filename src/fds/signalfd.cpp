// signalfd: a descriptor that reads the signals of a set (its mask) as
// struct signalfd_siginfo records instead of having them delivered. The
// file holds nothing but the mask: the signals it returns are the pending
// signals of whichever task reads it, which cryo dumps and restores with the
// process, not with the file.
//
// Dump: the mask from /proc/PID/fdinfo, "sigmask:" followed by 16 hex digits,
// the kernel's 64-bit sigset with bit N-1 for signal N.
//
// Restore: a new signalfd with that mask, created in cryo (a signalfd is not
// bound to its creator, reads always dequeue the reader's signals). The mask
// goes to the raw signalfd4 system call in the kernel's own layout, 8 bytes:
// glibc's sigset_t is 128 bytes and its sigaddset() refuses signals 32 and
// 33, which glibc keeps for itself but another libc may well have put in a
// mask. SIGKILL and SIGSTOP are never in the mask (the kernel drops them).
#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>
#include <cstdint>

#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

Result<uint64_t> parse_sigmask(const FdFacts& facts)
{
    auto text = facts.info.find("sigmask");
    if (!text)
        return fail("fdinfo has no 'sigmask'");
    uint64_t mask = 0;
    auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), mask, 16);
    if (error != std::errc() || end != text->data() + text->size())
        return fail("fdinfo 'sigmask' is not a 64-bit hex number: '{}'", *text);
    return mask;
}

// signalfd(2) with the mask as the kernel stores it (see the top of the file).
Result<UniqueFd> create_signalfd(uint64_t mask, int flags)
{
    long fd = ::syscall(SYS_signalfd4, -1, &mask, sizeof(mask), flags);
    if (fd < 0)
        return fail_errno(fmt::format("signalfd(mask {:#018x})", mask));
    return UniqueFd(static_cast<int>(fd));
}

class SignalFdKind final : public FileKind {
public:
    std::string_view name() const override { return "signalfd"; }

    bool recognises(const FdFacts& facts) const override { return facts.link == "anon_inode:[signalfd]"; }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        file.mutable_signalfd()->set_mask(TRY(parse_sigmask(facts)));
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext&) const override
    {
        int flags = SFD_CLOEXEC | (file.flags() & O_NONBLOCK ? SFD_NONBLOCK : 0);
        return create_signalfd(file.signalfd().mask(), flags);
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
