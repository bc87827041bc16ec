// Owner and signal of open files (see owner.h).
#include "fds/owner.h"

#include <fcntl.h>
#include <sys/syscall.h>

#include <fmt/format.h>

#include "ptrace/injector.h"

namespace cryo::fds {

Result<void> dump_owner(int local_fd, image::OpenFile& file)
{
    if (file.flags() & O_PATH)
        return {};   // only a name: fcntl() gives it no owner (EBADF)
    f_owner_ex owner {};
    if (::fcntl(local_fd, F_GETOWN_EX, &owner) < 0)
        return fail_errno("fcntl(F_GETOWN_EX)");
    int signal = ::fcntl(local_fd, F_GETSIG);
    if (signal < 0)
        return fail_errno("fcntl(F_GETSIG)");
    if (owner.pid == 0 && signal == 0)
        return {};
    file.mutable_owner()->set_type(owner.type);
    file.mutable_owner()->set_pid(owner.pid);
    file.mutable_owner()->set_signal(signal);
    return {};
}

Result<void> restore_owners(const image::FileTable& files, const std::map<uint32_t, UniqueFd>& opened)
{
    for (const auto& file : files.files()) {
        if (!file.has_owner() || !file.external().empty())
            continue;
        auto found = opened.find(file.id());
        if (found == opened.end())
            return fail("file {}: its owner cannot be set: cryo has no copy of it", file.id());
        const auto& saved = file.owner();
        if (saved.pid() != 0) {
            f_owner_ex owner { .type = static_cast<__pid_type>(saved.type()), .pid = saved.pid() };
            if (::fcntl(found->second.get(), F_SETOWN_EX, &owner) < 0)
                return fail_errno(fmt::format("file {}: fcntl(F_SETOWN_EX, {} {})", file.id(),
                                              saved.type() == F_OWNER_TID    ? "thread"
                                              : saved.type() == F_OWNER_PGRP ? "process group"
                                                                              : "process",
                                              saved.pid()));
        }
        if (saved.signal() != 0 && ::fcntl(found->second.get(), F_SETSIG, saved.signal()) < 0)
            return fail_errno(fmt::format("file {}: fcntl(F_SETSIG, {})", file.id(), saved.signal()));
    }
    return {};
}

Result<void> restore_async(const image::FdTable& table, const image::FileTable& files, std::set<uint32_t>& done,
                           ptrace::Injector& injector)
{
    // The status flags F_SETFL changes.
    constexpr uint32_t kSettable = O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME | O_NONBLOCK;
    for (const auto& entry : table.fds()) {
        if (entry.file_id() == 0 || static_cast<int>(entry.file_id()) > files.files_size())
            continue;
        const auto& file = files.files(static_cast<int>(entry.file_id() - 1));
        if (!(file.flags() & O_ASYNC) || !file.external().empty() || !done.insert(file.id()).second)
            continue;
        auto fd = static_cast<uint64_t>(entry.fd());
        uint64_t flags = file.flags() & kSettable;
        TRY_CTX(injector.call("fcntl(F_SETFL, O_ASYNC)", SYS_fcntl, fd, F_SETFL, flags), "fd {}", fd);
    }
    return {};
}

} // namespace cryo::fds
