// memfd: name, size, seals and content (as extents, holes cost nothing),
// saved once per memfd in FileTable.memfds. Restore creates the memfd again
// with memfd_create(), writes the content, adds the seals last, and makes
// every open file of it a new description by reopening /proc/self/fd/HOLD
// with the dumped flags (as pipe.cpp does), at its offset.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

constexpr std::string_view kPrefix = "/memfd:";
constexpr std::string_view kDeletedSuffix = " (deleted)";
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
        auto* saved = table.add_memfds();
        saved->set_memfd_id(id);
        saved->set_name(name);
        saved->set_size(static_cast<uint64_t>(facts.stat.st_size));
        saved->set_mode(facts.stat.st_mode & 07777);
        int seals = ::fcntl(facts.local_fd, F_GET_SEALS);
        saved->set_seals(seals > 0 ? static_cast<uint32_t>(seals) : 0);
        auto readable = TRY(readable_copy(facts));
        for (auto& [offset, data] : TRY(read_extents(readable.get(), saved->size(), kMemfdLimit, "memfd " + name))) {
            auto* extent = saved->add_extents();
            extent->set_offset(offset);
            extent->set_data(std::move(data));
        }
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext& context) const override
    {
        uint64_t id = file.memfd().memfd_id();
        std::string key = fmt::format("memfd:{}", id);
        if (!context.shared.contains(key))
            context.shared.emplace(key, TRY(create_memfd(id, context)));
        return reopen_held(context.shared.at(key).get(), file);
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_MEMFD; }

private:
    static Result<UniqueFd> create_memfd(uint64_t id, OpenContext& context)
    {
        const image::MemfdData* saved = nullptr;
        for (const auto& memfd : context.table->memfds())
            if (memfd.memfd_id() == id)
                saved = &memfd;
        if (!saved)
            return fail("memfd {} has no saved content in files.img", id);
        // F_SEAL_SEAL absent from the seals means more may be added later.
        unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
        int fd = ::memfd_create(saved->name().c_str(), flags);
        if (fd < 0)
            return fail_errno(fmt::format("memfd_create {}", saved->name()));
        UniqueFd hold(fd);
        if (::ftruncate(fd, static_cast<off_t>(saved->size())) < 0)
            return fail_errno(fmt::format("ftruncate memfd {}", saved->name()));
        TRY(write_extents(fd, saved->extents(), "memfd " + saved->name()));
        ::fchmod(fd, saved->mode());
        if (saved->seals() && ::fcntl(fd, F_ADD_SEALS, saved->seals()) < 0)
            return fail_errno(fmt::format("seal memfd {} with {:#x}", saved->name(), saved->seals()));
        return hold;
    }
};

} // namespace

const FileKind& memfd_kind()
{
    static const MemfdKind kind;
    return kind;
}

} // namespace cryo::fds
