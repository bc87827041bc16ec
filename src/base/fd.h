// An owned file descriptor (closed when dropped) and the small set of I/O
// helpers every layer needs: whole-file reads of /proc text, full writes and
// positioned reads that retry on short transfers and EINTR.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>
#include <string_view>
#include <utility>

#include "base/error.h"

namespace cryo {

class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : m_fd(fd) { }
    UniqueFd(UniqueFd&& other) noexcept : m_fd(std::exchange(other.m_fd, -1)) { }
    UniqueFd& operator=(UniqueFd&& other) noexcept
    {
        if (this != &other)
            reset(std::exchange(other.m_fd, -1));
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    int get() const { return m_fd; }
    bool valid() const { return m_fd >= 0; }
    explicit operator bool() const { return valid(); }
    int release() { return std::exchange(m_fd, -1); }
    void reset(int fd = -1);

private:
    int m_fd { -1 };
};

// open(2)/openat(2) returning an owned descriptor; the path is in the error.
Result<UniqueFd> open_file(const std::string& path, int flags, mode_t mode = 0);
Result<UniqueFd> open_file_at(int dirfd, const std::string& path, int flags, mode_t mode = 0);

// Reads a whole file (typically a /proc text file) into a string.
Result<std::string> read_text_file(const std::string& path);
Result<std::string> read_all(int fd, const std::string& what);

// Writes every byte or fails; `what` names the target in the error.
Result<void> write_all(int fd, std::span<const std::byte> data, const std::string& what);
Result<void> write_all(int fd, std::string_view data, const std::string& what);

// pread(2) until `data` is full; a short file is an error naming `what`.
Result<void> pread_exact(int fd, std::span<std::byte> data, uint64_t offset, const std::string& what);
Result<void> pwrite_all(int fd, std::span<const std::byte> data, uint64_t offset, const std::string& what);

// readlink(2) into a string.
Result<std::string> read_link(const std::string& path);

// Closes every descriptor of this process but `keep` (in a process forked to
// run in the background, which must hold nothing else of its parent's).
void close_all_except(std::vector<int> keep);

} // namespace cryo
