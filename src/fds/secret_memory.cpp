// memfd_secret(2) descriptors: a file of the kernel's internal secretmem
// mount, whose pages the kernel removes from its own map of memory. Its
// /proc/PID/fd/N link reads "/secretmem (deleted)" and it is a regular file,
// so it is told from a deleted file by the magic number of its filesystem
// (fstatfs), or by that name when fstatfs fails. It cannot be read or
// written (no read(), write() or lseek()), nor opened again through
// /proc/PID/fd (ENXIO): all its descriptors share one open file
// description, made by memfd_secret(), and its content is reached only
// through mappings of it. Its size can be set once, while it is 0.
//
// Dump: inode, size and the pages the file has, read by cryo through a
// mapping of its own copy of the descriptor (mem/secret_memory.h:
// read_secret_file(), mincore() so that holes stay holes and no page is
// made). This works whether or not a process of the tree maps the file.
// Like an open memfd's, the content goes into files.img (at most 64 MiB of
// data per file, counted in the image's budget for file data).
//
// Restore: memfd_secret() in cryo, ftruncate to the size (a size of 0 is
// left alone, so the program can still set one), the pages written through
// a mapping of it in cryo, and the status flags (O_NONBLOCK, ...) set with
// F_SETFL. Mappings of the file in the tree find it among the open files
// (mem/unlinked_files.h), so the descriptor and the mappings are one file
// again, in every process.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstring>

#include "base/syscalls.h"
#include "fds/file_kind.h"
#include "fds/unlinked_file.h"
#include "mem/secret_memory.h"

#ifndef SECRETMEM_MAGIC
#define SECRETMEM_MAGIC 0x5345434d
#endif

namespace cryo::fds {

namespace {

constexpr std::string_view kSecretLink = "/secretmem (deleted)";
// Most data kept for one file, as for a memfd: files.img is read whole.
constexpr uint64_t kSecretLimit = 64ull << 20;
// The status flags F_SETFL can change.
constexpr uint32_t kSettableFlags = O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME | O_NONBLOCK;

std::string describe(uint64_t inode) { return fmt::format("memfd_secret file (inode {})", inode); }

class SecretMemoryKind final : public FileKind {
public:
    std::string_view name() const override { return "memfd_secret file"; }

    bool recognises(const FdFacts& facts) const override
    {
        return S_ISREG(facts.stat.st_mode) && is_secret_memory(facts.local_fd, facts.link);
    }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable& table) const override
    {
        uint64_t inode = facts.stat.st_ino;
        uint64_t size = static_cast<uint64_t>(facts.stat.st_size);
        auto* secret = file.mutable_secret_memory();
        secret->set_inode(inode);
        secret->set_size(size);
        uint64_t bytes = 0;
        google::protobuf::RepeatedPtrField<image::DataExtent> extents;
        TRY(mem::read_secret_file(facts.local_fd, size, [&](uint64_t offset, std::span<const std::byte> run) -> Result<void> {
            bytes += run.size();
            if (bytes > kSecretLimit)
                return fail("{} holds more than {} bytes of data (size {}): over the limit for an open memfd_secret "
                            "descriptor",
                            describe(inode), kSecretLimit, size);
            auto* extent = extents.Add();
            extent->set_offset(offset);
            extent->set_data(reinterpret_cast<const char*>(run.data()), run.size());
            return {};
        }));
        TRY(check_file_data_budget(table, bytes, describe(inode)));
        *secret->mutable_extents() = std::move(extents);
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext& context) const override
    {
        const auto& saved = file.secret_memory();
        // All descriptors of the file share one open file description (it
        // cannot be opened again), so there is one OpenFile per file; a
        // second would share the first's.
        std::string key = fmt::format("secret:{}", saved.inode());
        if (auto held = context.shared.find(key); held != context.shared.end()) {
            int copy = ::fcntl(held->second.get(), F_DUPFD_CLOEXEC, 0);
            if (copy < 0)
                return fail_errno(fmt::format("dup of {}", describe(saved.inode())));
            return UniqueFd(copy);
        }
        uint64_t size = saved.size();
        uint64_t end = (size + kPageSize - 1) & ~(kPageSize - 1);
        auto made = TRY(mem::create_secret_file(size, [&](std::byte* mapping) -> Result<void> {
            for (const auto& extent : saved.extents()) {
                if (extent.offset() > end || extent.data().size() > end - extent.offset())
                    return fail("{}: data at offset {} ({} bytes) lies past its size {}", describe(saved.inode()),
                                extent.offset(), extent.data().size(), size);
                std::memcpy(mapping + extent.offset(), extent.data().data(), extent.data().size());
            }
            return {};
        }));
        uint32_t flags = file.flags() & kSettableFlags;
        if (flags) {
            int current = ::fcntl(made.get(), F_GETFL);
            if (current < 0 || ::fcntl(made.get(), F_SETFL, static_cast<uint32_t>(current) | flags) < 0)
                return fail_errno(fmt::format("{}: fcntl(F_SETFL, {:#o})", describe(saved.inode()), flags));
        }
        int copy = ::fcntl(made.get(), F_DUPFD_CLOEXEC, 0);
        if (copy < 0)
            return fail_errno(fmt::format("dup of {}", describe(saved.inode())));
        context.shared.emplace(key, std::move(made));
        return UniqueFd(copy);
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_SECRET_MEMORY; }
};

} // namespace

bool is_secret_memory(int fd, const std::string& link)
{
    struct statfs filesystem {};
    if (::fstatfs(fd, &filesystem) == 0)
        return filesystem.f_type == SECRETMEM_MAGIC;
    return link == kSecretLink;
}

const FileKind& secret_memory_kind()
{
    static const SecretMemoryKind kind;
    return kind;
}

} // namespace cryo::fds
