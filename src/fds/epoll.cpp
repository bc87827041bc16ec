// epoll instances and their registrations.
//
// Dump: /proc/PID/fdinfo of an epoll fd lists every registration as
// "tfd: N events: E data: D pos: ino: sdev:" (E and D in hex): the target's
// fd number in the owning process, the event mask (EPOLLET, EPOLLONESHOT and
// the like included) and the user data. After the whole descriptor table of
// the process is known, each target fd is resolved to the id of its open
// file (resolve_epoll_targets below), kcmp(KCMP_EPOLL_TFD) telling which
// descriptor holds the very file registered: a program may have closed the
// target fd since (the registration lives on while the file does), and the
// number may even hold another file now.
//
// Restore: cryo creates an empty epoll instance; the registrations are made
// inside the restored process once every descriptor sits at its number
// (register_epoll_targets, called by install_fds), because the kernel keys
// a registration by (open file, fd number) and later EPOLL_CTL_MOD/DEL calls
// by the program look it up by its own fd number; a target closed since is
// registered through a duplicate at its old number, closed right after (or,
// when the number holds another file now, that file put back).
// Readiness is recomputed by the kernel from the files themselves.
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>
#include <map>

#include "fds/file_kind.h"
#include "proc/parse_util.h"

namespace cryo::fds {

namespace {

template <typename T>
bool parse_after(std::string_view text, std::string_view label, T& out, int base)
{
    size_t at = text.find(label);
    if (at == std::string_view::npos)
        return false;
    auto rest = proc::detail::trim(text.substr(at + label.size()));
    auto [end, error] = std::from_chars(rest.data(), rest.data() + rest.size(), out, base);
    return error == std::errc();
}

class EpollKind final : public FileKind {
public:
    std::string_view name() const override { return "epoll"; }

    bool recognises(const FdFacts& facts) const override { return facts.link == "anon_inode:[eventpoll]"; }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        auto* epoll = file.mutable_epoll();
        for (const auto& [key, value] : facts.info.lines) {
            if (key != "tfd")
                continue;
            int fd = -1;
            uint32_t events = 0;
            uint64_t data = 0;
            auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), fd);
            if (error != std::errc() || !parse_after(value, "events:", events, 16) || !parse_after(value, "data:", data, 16))
                return fail("cannot parse the epoll registration '{}'", value);
            auto* target = epoll->add_targets();
            target->set_fd(fd);
            target->set_events(events);
            target->set_data(data);
        }
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile&, OpenContext&) const override
    {
        int fd = ::epoll_create1(EPOLL_CLOEXEC);
        if (fd < 0)
            return fail_errno("epoll_create1");
        return UniqueFd(fd);
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_EPOLL; }
};

// Whether the epoll instance at `epoll_fd` of `pid` has its registration
// for fd number `target_fd` on the open file of `fd`: kcmp(KCMP_EPOLL_TFD)
// asks the kernel, so a number closed and reused for another file is told
// apart.
// `occurrence` tells registrations under one fd number apart (the number
// closed and reused, the new file registered too): the how-manieth of them
// it is, in the order fdinfo lists them.
Result<bool> holds_target(pid_t pid, int epoll_fd, int target_fd, uint32_t occurrence, int fd)
{
    kcmp_epoll_slot slot {};
    slot.efd = static_cast<uint32_t>(epoll_fd);
    slot.tfd = static_cast<uint32_t>(target_fd);
    slot.toff = occurrence;
    long result = ::syscall(SYS_kcmp, pid, pid, KCMP_EPOLL_TFD, fd, &slot);
    if (result < 0)
        return fail_errno(fmt::format("kcmp(KCMP_EPOLL_TFD) of fd {} with the target fd {} of epoll fd {} of pid {}", fd,
                                      target_fd, epoll_fd, pid));
    return result == 0;
}

} // namespace

const FileKind& epoll_kind()
{
    static const EpollKind kind;
    return kind;
}

Result<void> resolve_epoll_targets(pid_t pid, image::OpenFile& epoll, const image::FdTable& table)
{
    int epoll_fd = -1;
    for (const auto& entry : table.fds())
        if (entry.file_id() == epoll.id())
            epoll_fd = entry.fd();
    if (epoll_fd < 0)
        return fail("no descriptor of pid {} holds it", pid);
    std::map<int, uint32_t> seen;
    for (auto& target : *epoll.mutable_epoll()->mutable_targets()) {
        uint32_t occurrence = seen[target.fd()]++;
        target.set_file_id(0);
        // The fd number first: the file the program registered is usually
        // still there.
        for (const auto& entry : table.fds())
            if (entry.fd() == target.fd() && TRY(holds_target(pid, epoll_fd, target.fd(), occurrence, entry.fd())))
                target.set_file_id(entry.file_id());
        if (target.file_id() != 0)
            continue;
        for (const auto& entry : table.fds())
            if (target.file_id() == 0 && TRY(holds_target(pid, epoll_fd, target.fd(), occurrence, entry.fd())))
                target.set_file_id(entry.file_id());
        if (target.file_id() == 0)
            return fail("not supported yet: epoll watches fd {}, which was closed, and no descriptor of pid {} holds "
                        "its file any more",
                        target.fd(), pid);
        target.set_closed(true);
    }
    return {};
}

Result<void> register_epoll_targets(int epoll_fd, const image::OpenFile& epoll, const image::FdTable& table)
{
    for (const auto& target : epoll.epoll().targets()) {
        // Registered by the process whose fd number refers to the target;
        // a shared epoll instance is registered once (EEXIST afterwards).
        // A target whose fd the program closed since is registered through
        // a duplicate at that number, closed again right after.
        int source = -1;
        for (const auto& entry : table.fds())
            if (entry.file_id() == target.file_id() && (target.closed() || entry.fd() == target.fd()))
                source = entry.fd();
        if (source < 0)
            continue;
        // The number may hold another file now: that file is set aside
        // meanwhile and put back with its FD_CLOEXEC (no file lock is
        // restored yet that closing the number could drop).
        UniqueFd aside;
        int aside_flags = -1;
        if (target.closed()) {
            aside_flags = ::fcntl(target.fd(), F_GETFD);
            if (aside_flags >= 0) {
                int copy = ::fcntl(target.fd(), F_DUPFD_CLOEXEC, 0);
                if (copy < 0)
                    return fail_errno(fmt::format("fcntl(F_DUPFD) of fd {}, which holds another file than the one "
                                                  "epoll registered under that number",
                                                  target.fd()));
                aside = UniqueFd(copy);
            }
            if (::dup2(source, target.fd()) < 0)
                return fail_errno(fmt::format("dup2 fd {} to {} for an epoll registration", source, target.fd()));
        }
        epoll_event event {};
        event.events = target.events();
        event.data.u64 = target.data();
        int result = ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, target.fd(), &event);
        int error = errno;
        if (aside) {
            if (::dup3(aside.get(), target.fd(), (aside_flags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0)
                return fail_errno(fmt::format("dup3 fd {} back to {} after an epoll registration", aside.get(),
                                              target.fd()));
        } else if (target.closed()) {
            ::close(target.fd());
        }
        if (result < 0 && error != EEXIST)
            return fail_errno(fmt::format("epoll_ctl(ADD, fd {}, events {:#x})", target.fd(), target.events()), error);
    }
    return {};
}

} // namespace cryo::fds
