// epoll instances and their registrations.
//
// Dump: /proc/PID/fdinfo of an epoll fd lists every registration as
// "tfd: N events: E data: D pos: ino: sdev:" (E and D in hex): the target's
// fd number in the owning process, the event mask (EPOLLET, EPOLLONESHOT and
// the like included) and the user data. After the whole descriptor table of
// the process is known, each target fd is resolved to the id of its open
// file (resolve_epoll_targets below).
//
// Restore: cryo creates an empty epoll instance; the registrations are made
// inside the restored process once every descriptor sits at its number
// (register_epoll_targets, called by install_fds), because the kernel keys
// a registration by (open file, fd number) and later EPOLL_CTL_MOD/DEL calls
// by the program look it up by its own fd number. Readiness is recomputed by
// the kernel from the files themselves.
#include <sys/epoll.h>

#include <charconv>

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

} // namespace

const FileKind& epoll_kind()
{
    static const EpollKind kind;
    return kind;
}

Result<void> resolve_epoll_targets(image::OpenFile& epoll, const image::FdTable& table)
{
    for (auto& target : *epoll.mutable_epoll()->mutable_targets()) {
        for (const auto& entry : table.fds())
            if (entry.fd() == target.fd())
                target.set_file_id(entry.file_id());
        if (target.file_id() == 0)
            return fail("not supported yet: epoll watches fd {}, which is no longer open", target.fd());
    }
    return {};
}

Result<void> register_epoll_targets(int epoll_fd, const image::OpenFile& epoll, const image::FdTable& table)
{
    for (const auto& target : epoll.epoll().targets()) {
        // Registered by the process whose fd number refers to the target;
        // a shared epoll instance is registered once (EEXIST afterwards).
        bool here = false;
        for (const auto& entry : table.fds())
            here = here || (entry.fd() == target.fd() && entry.file_id() == target.file_id());
        if (!here)
            continue;
        epoll_event event {};
        event.events = target.events();
        event.data.u64 = target.data();
        if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, target.fd(), &event) < 0 && errno != EEXIST)
            return fail_errno(fmt::format("epoll_ctl(ADD, fd {}, events {:#x})", target.fd(), target.events()));
    }
    return {};
}

} // namespace cryo::fds
