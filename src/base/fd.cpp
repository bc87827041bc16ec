#include "base/fd.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

namespace cryo {

void UniqueFd::reset(int fd)
{
    if (m_fd >= 0)
        ::close(m_fd);
    m_fd = fd;
}

Result<UniqueFd> open_file(const std::string& path, int flags, mode_t mode)
{
    return open_file_at(AT_FDCWD, path, flags, mode);
}

Result<UniqueFd> open_file_at(int dirfd, const std::string& path, int flags, mode_t mode)
{
    int fd;
    do {
        fd = ::openat(dirfd, path.c_str(), flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return fail_errno(fmt::format("open {}", path));
    return UniqueFd(fd);
}

Result<std::string> read_all(int fd, const std::string& what)
{
    std::string text;
    char buffer[8192];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail_errno(fmt::format("read {}", what));
        if (n == 0)
            return text;
        text.append(buffer, static_cast<size_t>(n));
    }
}

Result<std::string> read_text_file(const std::string& path)
{
    UniqueFd fd = TRY(open_file(path, O_RDONLY));
    return read_all(fd.get(), path);
}

Result<void> write_all(int fd, std::span<const std::byte> data, const std::string& what)
{
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail_errno(fmt::format("write {}", what));
        if (n == 0)
            return fail_errno(fmt::format("write {}", what), EIO);
        data = data.subspan(static_cast<size_t>(n));
    }
    return {};
}

Result<void> write_all(int fd, std::string_view data, const std::string& what)
{
    return write_all(fd, std::as_bytes(std::span(data.data(), data.size())), what);
}

Result<void> pread_exact(int fd, std::span<std::byte> data, uint64_t offset, const std::string& what)
{
    while (!data.empty()) {
        ssize_t n = ::pread(fd, data.data(), data.size(), static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail_errno(fmt::format("read {} at offset {:#x}", what, offset));
        if (n == 0)
            return fail("read {} at offset {:#x}: unexpected end of file", what, offset);
        data = data.subspan(static_cast<size_t>(n));
        offset += static_cast<uint64_t>(n);
    }
    return {};
}

Result<void> pwrite_all(int fd, std::span<const std::byte> data, uint64_t offset, const std::string& what)
{
    while (!data.empty()) {
        ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail_errno(fmt::format("write {} at offset {:#x}", what, offset));
        if (n == 0)
            return fail_errno(fmt::format("write {} at offset {:#x}", what, offset), EIO);
        data = data.subspan(static_cast<size_t>(n));
        offset += static_cast<uint64_t>(n);
    }
    return {};
}

Result<std::string> read_link(const std::string& path)
{
    char buffer[PATH_MAX + 1];
    ssize_t n = ::readlink(path.c_str(), buffer, sizeof(buffer) - 1);
    if (n < 0)
        return fail_errno(fmt::format("readlink {}", path));
    return std::string(buffer, static_cast<size_t>(n));
}

void close_all_except(std::vector<int> keep)
{
    std::ranges::sort(keep);
    unsigned next = 0;
    for (int fd : keep) {
        if (fd < 0)
            continue;
        if (static_cast<unsigned>(fd) > next)
            ::syscall(SYS_close_range, next, static_cast<unsigned>(fd) - 1, 0);
        next = static_cast<unsigned>(fd) + 1;
    }
    ::syscall(SYS_close_range, next, ~0u, 0);
}

} // namespace cryo
