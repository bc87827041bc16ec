// memfd: a file of the kernel's internal shmem mount, made by memfd_create(2)
// and reachable only through its descriptors; /proc/PID/fd/N reads
// "/memfd:NAME (deleted)". Its state is a name, a size, a mode, seals
// (F_GET_SEALS; a memfd made without MFD_ALLOW_SEALING reports F_SEAL_SEAL)
// and its content.
//
// Dump: the content is read as extents (SEEK_DATA/SEEK_HOLE) from a new
// read-only open of /proc/PID/fd/N, so holes cost nothing and the program's
// offset is not moved; more than 64 MiB of data is refused. It is saved once
// per memfd (keyed by inode) in FileTable.memfds; each open file only names
// it. memfds of hugetlbfs are refused: they cannot be made again without
// knowing the page size.
//
// Restore: cryo creates the memfd once with memfd_create(), always sealable
// (a sealable memfd without seals must stay sealable; one that was not
// sealable gets F_SEAL_SEAL back with the other seals), sets size and mode,
// writes the extents and adds the seals last, since they forbid the writes
// and the resize. Every open file of it is then a new open file description
// made by reopening /proc/self/fd/HOLD with the dumped flags (as pipe.cpp
// does), moved to its offset.
//
// A memfd that is mapped as well is the same object for its mappings: they
// find it among the open files on restore (mem/unlinked_files.h). One that
// is only mapped is described and made again by the same functions
// (fds/unlinked_file.h), with its content in a page file instead.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "fds/file_kind.h"
#include "fds/unlinked_file.h"

// Newer than Debian 12's headers (Linux 6.3).
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

namespace cryo::fds {

namespace {

constexpr std::string_view kPrefix = "/memfd:";
constexpr std::string_view kDeletedSuffix = " (deleted)";
// Most data kept for one memfd (--ghost-limit is for deleted files only).
// memfds and deleted files travel inside files.img, which a reader refuses
// past image::kMaxPayloadSize (256 MiB); save_file_data() keeps their sum
// well below it.
constexpr uint64_t kMemfdLimit = 64ull << 20;

class MemfdKind final : public FileKind {
public:
    std::string_view name() const override { return "memfd"; }

    bool recognises(const FdFacts& facts) const override
    {
        return S_ISREG(facts.stat.st_mode) && facts.link.starts_with(kPrefix);
    }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable& table) const override
    {
        uint64_t id = facts.stat.st_ino;
        std::string name = facts.link.substr(kPrefix.size());
        if (name.ends_with(kDeletedSuffix))
            name.resize(name.size() - kDeletedSuffix.size());
        file.mutable_memfd()->set_memfd_id(id);
        file.mutable_memfd()->set_name(name);
        for (const auto& saved : table.memfds())
            if (saved.memfd_id() == id)
                return {};

        auto described = TRY(describe_memfd(facts.local_fd, facts.stat, name));
        auto* saved = table.add_memfds();
        *saved = std::move(described);
        TRY(save_file_data(facts, saved->size(), kMemfdLimit, "memfd " + name, table, *saved->mutable_extents()));
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext& context) const override
    {
        uint64_t id = file.memfd().memfd_id();
        std::string key = fmt::format("memfd:{}", id);
        if (!context.shared.contains(key)) {
            const image::MemfdData* saved = nullptr;
            for (const auto& memfd : context.table->memfds())
                if (memfd.memfd_id() == id)
                    saved = &memfd;
            if (!saved)
                return fail("memfd {} has no saved content in files.img", id);
            auto write_content = [saved](int fd) { return write_extents(fd, saved->extents(), "memfd " + saved->name()); };
            context.shared.emplace(key, TRY(create_memfd(*saved, write_content)));
        }
        return reopen_held(context.shared.at(key).get(), file);
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_MEMFD; }
};

// Linux 6.3 and later want to be told whether a memfd may be executed
// (and refuse MFD_EXEC under vm.memfd_noexec=2): a memfd dumped with
// F_SEAL_EXEC and no execute bits was made with MFD_NOEXEC_SEAL. Older
// kernels know neither flag (EINVAL), and get neither.
Result<UniqueFd> create_sealable(const image::MemfdData& saved)
{
    bool no_exec = (saved.seals() & F_SEAL_EXEC) && !(saved.mode() & 0111);
    unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
    int fd = ::memfd_create(saved.name().c_str(), flags | (no_exec ? MFD_NOEXEC_SEAL : MFD_EXEC));
    if (fd < 0 && errno == EINVAL)
        fd = ::memfd_create(saved.name().c_str(), flags);
    if (fd < 0)
        return fail_errno(fmt::format("memfd_create {}", saved.name()));
    return UniqueFd(fd);
}

int current_seals(int fd)
{
    int seals = ::fcntl(fd, F_GET_SEALS);
    return seals < 0 ? 0 : seals;
}

} // namespace

Result<image::MemfdData> describe_memfd(int fd, const struct stat& stat, const std::string& name)
{
    struct statfs filesystem {};
    if (::fstatfs(fd, &filesystem) == 0 && filesystem.f_type == HUGETLBFS_MAGIC)
        return fail("not supported yet: memfd {} is backed by huge pages (MFD_HUGETLB)", name);
    int seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0 && errno != EINVAL)
        return fail_errno(fmt::format("fcntl(F_GET_SEALS) of memfd {}", name));
    image::MemfdData saved;
    saved.set_memfd_id(stat.st_ino);
    saved.set_name(name);
    saved.set_size(static_cast<uint64_t>(stat.st_size));
    saved.set_mode(stat.st_mode & 07777);
    // EINVAL: not sealable at all, which restores as F_SEAL_SEAL.
    saved.set_seals(seals >= 0 ? static_cast<uint32_t>(seals) : F_SEAL_SEAL);
    return saved;
}

Result<UniqueFd> create_memfd(const image::MemfdData& saved, const ContentWriter& write_content)
{
    const std::string& name = saved.name();
    auto hold = TRY(create_sealable(saved));
    if (::ftruncate(hold.get(), static_cast<off_t>(saved.size())) < 0)
        return fail_errno(fmt::format("ftruncate memfd {} to {}", name, saved.size()));
    TRY(write_content(hold.get()));
    if (::fchmod(hold.get(), saved.mode()) < 0)
        return fail_errno(fmt::format("fchmod memfd {} to {:o}", name, saved.mode()));
    uint32_t seals = saved.seals() & ~static_cast<uint32_t>(current_seals(hold.get()));
    if (seals && ::fcntl(hold.get(), F_ADD_SEALS, seals) < 0)
        return fail_errno(fmt::format("seal memfd {} with {:#x}", name, seals));
    return hold;
}

const FileKind& memfd_kind()
{
    static const MemfdKind kind;
    return kind;
}

} // namespace cryo::fds
