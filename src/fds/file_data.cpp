// Reading and writing the content of files whose data goes into the image
// (deleted files, memfds): as extents found with SEEK_DATA/SEEK_HOLE, so
// holes cost nothing in the image and stay holes on restore. (memfd_secret
// files keep extents too, read their own way: fds/secret_memory.cpp.)
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

// All the memfd, deleted-file and memfd_secret data of one image: files.img
// is refused by the reader past image::kMaxPayloadSize (256 MiB), and also
// holds pipe and socket data.
constexpr uint64_t kImageDataBudget = 192ull << 20;

// Bytes of file content (memfds, deleted files, memfd_secret files)
// already in `table`.
uint64_t data_in_table(const image::FileTable& table)
{
    uint64_t total = 0;
    for (const auto& memfd : table.memfds())
        for (const auto& extent : memfd.extents())
            total += extent.data().size();
    for (const auto& file : table.files())
        if (file.has_ghost())
            for (const auto& extent : file.ghost().extents())
                total += extent.data().size();
        else if (file.has_secret_memory())
            for (const auto& extent : file.secret_memory().extents())
                total += extent.data().size();
    return total;
}

std::string mebibytes(uint64_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20)); }

} // namespace

Result<void> save_file_data(const FdFacts& facts, uint64_t size, uint64_t limit, const std::string& what,
                            const image::FileTable& table, google::protobuf::RepeatedPtrField<image::DataExtent>& extents)
{
    auto readable = TRY(readable_copy(facts));
    uint64_t bytes = 0;
    google::protobuf::RepeatedPtrField<image::DataExtent> read;
    for (auto& [offset, data] : TRY(read_extents(readable.get(), size, limit, what))) {
        bytes += data.size();
        auto* extent = read.Add();
        extent->set_offset(offset);
        extent->set_data(std::move(data));
    }
    TRY(check_file_data_budget(table, bytes, what));
    extents = std::move(read);
    return {};
}

Result<void> check_file_data_budget(const image::FileTable& table, uint64_t bytes, const std::string& what)
{
    uint64_t before = data_in_table(table);
    if (before + bytes > kImageDataBudget)
        return fail("{} has {} of data; with the {} of memfds and deleted files before it, the image would pass "
                    "its limit of {} of file data",
                    what, mebibytes(bytes), mebibytes(before), mebibytes(kImageDataBudget));
    return {};
}

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
