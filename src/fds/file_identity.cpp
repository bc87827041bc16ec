// See file_identity.h.
#include "fds/file_identity.h"

#include <sys/stat.h>

#include <algorithm>
#include <array>

#include "base/fd.h"
#include "base/xxh3.h"

namespace cryo::fds {

namespace {

constexpr uint64_t kCookieBlock = 4096;

Result<uint64_t> cookie_of(int fd, uint64_t size, const std::string& what)
{
    std::array<std::byte, 2 * kCookieBlock> data {};
    uint64_t head = std::min(size, kCookieBlock);
    TRY(pread_exact(fd, std::span(data.data(), head), 0, what));
    uint64_t tail_start = size > kCookieBlock ? size - kCookieBlock : 0;
    uint64_t tail = size - tail_start;
    TRY(pread_exact(fd, std::span(data.data() + head, tail), tail_start, what));
    return xxh3::hash(data.data(), head + tail);
}

} // namespace

Result<image::FileIdentity> identify_file(int fd, const std::string& what)
{
    struct stat st {};
    if (::fstat(fd, &st) < 0)
        return fail_errno(fmt::format("fstat {}", what));
    image::FileIdentity identity;
    identity.set_size(static_cast<uint64_t>(st.st_size));
    identity.set_mtime_ns(st.st_mtim.tv_sec * 1'000'000'000ll + st.st_mtim.tv_nsec);
    identity.set_cookie(TRY(cookie_of(fd, identity.size(), what)));
    return identity;
}

Result<void> check_file_identity(int fd, const std::string& path, const image::FileIdentity& recorded)
{
    auto now = TRY(identify_file(fd, path));
    if (now.size() != recorded.size())
        return fail("{} changed since the checkpoint: {} bytes then, {} now (--no-file-check restores anyway)", path,
                    recorded.size(), now.size());
    if (now.cookie() != recorded.cookie())
        return fail("{} changed since the checkpoint: its content differs (--no-file-check restores anyway)", path);
    if (now.mtime_ns() != recorded.mtime_ns())
        return fail("{} changed since the checkpoint: modified at another time (--no-file-check restores anyway)", path);
    return {};
}

} // namespace cryo::fds
