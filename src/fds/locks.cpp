// File locks: dump from the "lock:" lines of fdinfo, restore by injected
// fcntl()/flock() in the owning process (see locks.h).
#include "fds/locks.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/syscall.h>

#include <fmt/format.h>

#include "proc/parse_util.h"
#include "ptrace/injector.h"

namespace cryo::fds {

namespace {

std::string_view kind_name(image::FileLockKind kind)
{
    switch (kind) {
    case image::FILE_LOCK_KIND_POSIX: return "POSIX lock";
    case image::FILE_LOCK_KIND_FLOCK: return "flock";
    case image::FILE_LOCK_KIND_OFD: return "OFD lock";
    case image::FILE_LOCK_KIND_LEASE: return "lease";
    default: return "lock";
    }
}

std::string describe(const image::FileLock& lock)
{
    std::string range = lock.length() == 0 ? fmt::format("bytes {}-EOF", lock.start())
                                           : fmt::format("bytes {}-{}", lock.start(), lock.start() + lock.length() - 1);
    return fmt::format("{} {} on {}", lock.write() ? "write" : "read", kind_name(lock.kind()), range);
}

// What the fd refers to, for messages: the path of a regular file.
std::string describe_fd(const image::FdTable& table, const image::FileTable& files, int fd)
{
    for (const auto& entry : table.fds()) {
        if (entry.fd() != fd || entry.file_id() == 0 || static_cast<int>(entry.file_id()) > files.files_size())
            continue;
        const auto& file = files.files(static_cast<int>(entry.file_id() - 1));
        if (file.has_regular())
            return fmt::format("fd {} ({})", fd, file.regular().path());
    }
    return fmt::format("fd {}", fd);
}

Result<long> take_lock(const image::FileLock& lock, ptrace::Injector& injector, const ptrace::ScratchArea& scratch)
{
    auto fd = static_cast<uint64_t>(lock.fd());
    if (lock.kind() == image::FILE_LOCK_KIND_FLOCK)
        return injector.raw(SYS_flock, { fd, static_cast<uint64_t>((lock.write() ? LOCK_EX : LOCK_SH) | LOCK_NB), 0, 0, 0, 0 });
    if (lock.kind() == image::FILE_LOCK_KIND_LEASE)
        return injector.raw(SYS_fcntl, { fd, F_SETLEASE, static_cast<uint64_t>(lock.write() ? F_WRLCK : F_RDLCK), 0, 0, 0 });
    struct flock request {};
    request.l_type = lock.write() ? F_WRLCK : F_RDLCK;
    request.l_whence = SEEK_SET;
    request.l_start = static_cast<off_t>(lock.start());
    request.l_len = static_cast<off_t>(lock.length());
    // OFD locks need l_pid 0 (the kernel refuses anything else).
    uint64_t address = TRY(scratch.put_value(request));
    uint64_t command = lock.kind() == image::FILE_LOCK_KIND_OFD ? F_OFD_SETLK : F_SETLK;
    return injector.raw(SYS_fcntl, { fd, command, address, 0, 0, 0 });
}

} // namespace

Result<image::FileLock> parse_lock_line(std::string_view text)
{
    using proc::detail::parse_number;
    auto fields = proc::detail::split_fields(text);
    // id: KIND MODE TYPE PID DEV:INODE START END
    if (fields.size() != 8)
        return fail("lock line '{}': {} fields, expected 8", text, fields.size());
    image::FileLock lock;
    std::string_view kind = fields[1];
    std::string_view mode = fields[2];
    std::string_view type = fields[3];
    if (kind == "POSIX")
        lock.set_kind(image::FILE_LOCK_KIND_POSIX);
    else if (kind == "FLOCK")
        lock.set_kind(image::FILE_LOCK_KIND_FLOCK);
    else if (kind == "OFDLCK")
        lock.set_kind(image::FILE_LOCK_KIND_OFD);
    else if (kind == "LEASE")
        lock.set_kind(image::FILE_LOCK_KIND_LEASE);
    else
        return fail("lock line '{}': {} locks are not supported", text, kind);
    if (lock.kind() == image::FILE_LOCK_KIND_LEASE ? mode != "ACTIVE" : mode != "ADVISORY")
        return fail("lock line '{}': a {} in state {} is not supported (only {})", text, kind_name(lock.kind()), mode,
                    lock.kind() == image::FILE_LOCK_KIND_LEASE ? "ACTIVE leases, not one being broken" : "ADVISORY locks");
    if (type != "READ" && type != "WRITE")
        return fail("lock line '{}': type {} is not supported", text, type);
    lock.set_write(type == "WRITE");
    auto start = parse_number<uint64_t>(fields[6]);
    if (!start)
        return fail("lock line '{}': bad start '{}'", text, fields[6]);
    lock.set_start(*start);
    if (fields[7] != "EOF") {
        auto end = parse_number<uint64_t>(fields[7]);
        if (!end || *end < *start)
            return fail("lock line '{}': bad end '{}'", text, fields[7]);
        lock.set_length(*end - *start + 1);
    }
    return lock;
}

Result<void> LockRegistry::dump_fd_locks(pid_t pid, int fd, uint32_t file_id, const proc::FdInfo& info,
                                         image::FdTable& table)
{
    for (const auto& [key, value] : info.lines) {
        if (key != "lock")
            continue;
        auto lock = TRY_CTX(parse_lock_line(value), "fd {}", fd);
        lock.set_fd(fd);
        pid_t owner = lock.kind() == image::FILE_LOCK_KIND_POSIX ? pid : 0;
        if (m_seen.emplace(owner, file_id, lock.kind(), lock.write(), lock.start(), lock.length()).second)
            *table.add_locks() = lock;
    }
    return {};
}

Result<void> restore_locks(const image::FdTable& table, const image::FileTable& files, ptrace::Injector& injector,
                           const ptrace::ScratchArea& scratch)
{
    for (const auto& lock : table.locks()) {
        long result = TRY(take_lock(lock, injector, scratch));
        if (result == -EAGAIN || result == -EACCES)
            return fail("{}: cannot take its {} again: another process holds a conflicting lock",
                        describe_fd(table, files, lock.fd()), describe(lock));
        if (result < 0)
            return fail_errno(fmt::format("{}: taking its {} again", describe_fd(table, files, lock.fd()), describe(lock)),
                              static_cast<int>(-result));
    }
    return {};
}

} // namespace cryo::fds
