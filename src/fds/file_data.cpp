// Reading and writing the content of files whose data goes into the image
// (deleted files, memfds): as extents found with SEEK_DATA/SEEK_HOLE, so
// holes cost nothing in the image and stay holes on restore.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "fds/file_kind.h"

namespace cryo::fds {

Result<UniqueFd> readable_copy(const FdFacts& facts)
{
    // Always a new open file description: SEEK_DATA/SEEK_HOLE move the
    // offset, and cryo's pidfd_getfd copy shares the program's.
    return open_file(fmt::format("/proc/{}/fd/{}", facts.pid, facts.fd), O_RDONLY | O_CLOEXEC);
}

Result<std::vector<std::pair<uint64_t, std::string>>> read_extents(int fd, uint64_t size, uint64_t limit,
                                                                   const std::string& what)
{
    std::vector<std::pair<uint64_t, std::string>> extents;
    uint64_t total = 0;
    off_t offset = 0;
    while (static_cast<uint64_t>(offset) < size) {
        off_t data = ::lseek(fd, offset, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO)
                break;   // only a hole is left
            return fail_errno(fmt::format("lseek(SEEK_DATA) in {}", what));
        }
        off_t hole = ::lseek(fd, data, SEEK_HOLE);
        if (hole < 0)
            return fail_errno(fmt::format("lseek(SEEK_HOLE) in {}", what));
        hole = std::min<off_t>(hole, static_cast<off_t>(size));
        total += static_cast<uint64_t>(hole - data);
        if (total > limit)
            return fail("{} holds more than {} bytes of data (size {}): over the limit (--ghost-limit for deleted files)",
                        what, limit, size);
        std::string bytes(static_cast<size_t>(hole - data), '\0');
        TRY(pread_exact(fd, std::as_writable_bytes(std::span(bytes.data(), bytes.size())), static_cast<uint64_t>(data), what));
        extents.emplace_back(static_cast<uint64_t>(data), std::move(bytes));
        offset = hole;
    }
    return extents;
}

Result<void> write_extents(int fd, const google::protobuf::RepeatedPtrField<image::DataExtent>& extents,
                           const std::string& what)
{
    for (const auto& extent : extents)
        TRY(pwrite_all(fd, std::as_bytes(std::span(extent.data().data(), extent.data().size())), extent.offset(), what));
    return {};
}

} // namespace cryo::fds
