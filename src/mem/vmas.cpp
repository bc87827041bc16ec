// Classification of mappings; see vmas.h.
#include "mem/vmas.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstdio>
#include <future>
#include <map>
#include <tuple>

#include "base/fd.h"
#include "fds/file_identity.h"

namespace cryo::mem {

namespace {

struct AdviceFlag {
    const char* vm_flag;
    void (image::Vma::*set)(bool);
};

// VmFlags letters (Documentation/filesystems/proc.rst) for the state cryo
// carries over (advice, and MAP_NORESERVE).
constexpr AdviceFlag kAdviceFlags[] = {
    { "gd", &image::Vma::set_grows_down },
    { "dc", &image::Vma::set_dont_fork },
    { "wf", &image::Vma::set_wipe_on_fork },
    { "hg", &image::Vma::set_hugepage },
    { "nh", &image::Vma::set_no_hugepage },
    { "dd", &image::Vma::set_dont_dump },
    { "mg", &image::Vma::set_mergeable },
    { "lo", &image::Vma::set_locked },
    { "nr", &image::Vma::set_no_reserve },
    { "sr", &image::Vma::set_sequential_read },
    { "rr", &image::Vma::set_random_read },
};

} // namespace

Result<image::Vma> classify_vma(const proc::SmapsEntry& entry)
{
    const auto& map = entry.map;
    image::Vma vma;
    vma.set_start(map.start);
    vma.set_end(map.end);
    vma.set_pgoff(map.offset);
    vma.set_prot((map.read ? PROT_READ : 0) | (map.write ? PROT_WRITE : 0) | (map.exec ? PROT_EXEC : 0));
    vma.set_shared(map.shared);
    vma.set_path(map.path);
    vma.set_device(makedev(map.dev_major, map.dev_minor));
    vma.set_inode(map.inode);
    vma.set_may_write(entry.has_flag("mw"));
    for (const auto& advice : kAdviceFlags)
        (vma.*advice.set)(entry.has_flag(advice.vm_flag));

    const std::string& path = map.path;
    auto where = [&] { return fmt::format("mapping {:#x}-{:#x} ({})", map.start, map.end, path.empty() ? "anonymous" : path); };

    if (path == "[vdso]")
        vma.set_kind(image::VMA_KIND_VDSO);
    else if (path == "[vvar]")
        vma.set_kind(image::VMA_KIND_VVAR);
    else if (path == "[vvar_vclock]")
        vma.set_kind(image::VMA_KIND_VVAR_VCLOCK);
    else if (path == "[vsyscall]")
        vma.set_kind(image::VMA_KIND_VSYSCALL);
    else if (path.starts_with("/SYSV") && map.shared && entry.has_flag("ht"))
        return fail("not supported yet: {} is System V shared memory in huge pages (SHM_HUGETLB)", where());
    else if (path.starts_with("/SYSV") && map.shared) {   // its "inode" is the segment id, 0 for the first
        vma.set_kind(image::VMA_KIND_SYSV_SHM);
        vma.set_shmem_id(map.inode);
    } else if (map.inode == 0) {
        if (map.shared)
            return fail("not supported yet: {} is a shared mapping without a file", where());
        vma.set_kind(image::VMA_KIND_ANONYMOUS);
        vma.set_heap(path == "[heap]");
        vma.set_stack(path == "[stack]");
    } else if (map.shared && ((path == "/dev/zero" && map.deleted) || path.starts_with("[anon_shmem:"))) {
        // MAP_SHARED|MAP_ANONYMOUS memory lives in an unlinked shmem file.
        vma.set_kind(image::VMA_KIND_SHARED_ANONYMOUS);
        vma.set_shmem_id(map.inode);
    } else if (map.deleted && entry.has_flag("ht")) {
        return fail("not supported yet: {} is hugetlbfs memory (MAP_HUGETLB or MFD_HUGETLB)", where());
    } else if (path == "/secretmem" && map.deleted) {
        vma.set_kind(image::VMA_KIND_SECRET);
    } else if (path.starts_with("/memfd:") && map.deleted) {
        vma.set_kind(map.shared ? image::VMA_KIND_MEMFD_SHARED : image::VMA_KIND_MEMFD_PRIVATE);
    } else if (!path.starts_with('/')) {
        return fail("not supported yet: {} has an unknown backing", where());
    } else if (map.deleted) {
        vma.set_kind(map.shared ? image::VMA_KIND_DELETED_FILE_SHARED : image::VMA_KIND_DELETED_FILE_PRIVATE);
    } else {
        vma.set_kind(map.shared ? image::VMA_KIND_FILE_SHARED : image::VMA_KIND_FILE_PRIVATE);
    }
    if (!is_special(vma) && (entry.has_flag("io") || entry.has_flag("pf")))
        return fail("not supported yet: {} is a device (I/O or PFN) mapping", where());
    return vma;
}

namespace {

Result<std::vector<image::Vma>> classify_all(pid_t pid, const std::vector<proc::SmapsEntry>& entries)
{
    std::vector<image::Vma> vmas;
    // A file is mapped several times over (text, data, relro): it is opened
    // and identified once, by its device and inode.
    std::map<std::tuple<uint32_t, uint32_t, uint64_t>, image::FileIdentity> identities;
    for (const auto& entry : entries) {
        auto vma = TRY(classify_vma(entry));
        if (vma.kind() == image::VMA_KIND_SHARED_ANONYMOUS || vma.kind() == image::VMA_KIND_SYSV_SHM) {
            // The whole object may be larger than this mapping of it; its
            // size is that of the file behind map_files/.
            struct stat st {};
            auto path = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, vma.start(), vma.end());
            if (::stat(path.c_str(), &st) < 0)
                return fail_errno(fmt::format("stat {}", path));
            vma.set_shmem_size(std::max<uint64_t>(static_cast<uint64_t>(st.st_size), vma.pgoff() + vma.end() - vma.start()));
        }
        if (vma.kind() == image::VMA_KIND_FILE_PRIVATE || vma.kind() == image::VMA_KIND_FILE_SHARED) {
            auto key = std::tuple(entry.map.dev_major, entry.map.dev_minor, entry.map.inode);
            auto known = identities.find(key);
            if (known == identities.end()) {
                auto path = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, vma.start(), vma.end());
                auto file = TRY(open_file(path, O_RDONLY | O_CLOEXEC));
                known = identities.emplace(key, TRY(fds::identify_file(file.get(), vma.path()))).first;
            }
            *vma.mutable_file_identity() = known->second;
        }
        vmas.push_back(std::move(vma));
    }
    return vmas;
}

} // namespace

Result<std::vector<image::Vma>> collect_vmas(pid_t pid)
{
    return classify_all(pid, TRY(proc::read_smaps(pid)));
}

Result<std::vector<image::Vma>> collect_vmas_during(pid_t pid,
                                                    const std::function<Result<void>(std::vector<image::Vma>&)>& work)
{
    // A small process is done sooner without a second thread.
    constexpr uint64_t kOverlapFromPages = 8192;   // 32 MiB resident
    uint64_t resident_pages = 0;   // statm's second field
    if (auto statm = read_text_file(fmt::format("/proc/{}/statm", pid)))
        (void)std::sscanf(statm->c_str(), "%*u %lu", &resident_pages);
    if (resident_pages < kOverlapFromPages) {
        auto vmas = TRY_CTX(collect_vmas(pid), "pid {}", pid);
        TRY(work(vmas));
        return vmas;
    }
    auto smaps = std::async(std::launch::async, [pid] { return proc::read_smaps(pid); });
    std::vector<image::Vma> quick;
    auto worked = [&]() -> Result<void> {
        for (auto& map : TRY_CTX(proc::read_maps(pid), "pid {}", pid)) {
            proc::SmapsEntry entry;
            entry.map = std::move(map);
            quick.push_back(TRY_CTX(classify_vma(entry), "pid {}", pid));
        }
        return work(quick);
    }();
    auto vmas = with_context(classify_all(pid, TRY_CTX(smaps.get(), "pid {}", pid)), "pid {}", pid);
    if (!vmas)
        return vmas;
    if (!worked)
        return fail(std::move(worked.error()));
    // The process is frozen: both lists name the same mappings.
    if (vmas->size() != quick.size())
        return fail("pid {}: its mappings changed while frozen ({} in maps, {} in smaps)", pid, quick.size(),
                    vmas->size());
    for (size_t i = 0; i < quick.size(); ++i) {
        auto& vma = (*vmas)[i];
        if (vma.start() != quick[i].start() || vma.end() != quick[i].end() || vma.kind() != quick[i].kind())
            return fail("pid {}: mapping {:#x}-{:#x} changed while frozen", pid, vma.start(), vma.end());
        vma.set_stored_bytes(quick[i].stored_bytes());
    }
    return vmas;
}

bool is_special(const image::Vma& vma)
{
    switch (vma.kind()) {
    case image::VMA_KIND_VDSO:
    case image::VMA_KIND_VVAR:
    case image::VMA_KIND_VVAR_VCLOCK:
    case image::VMA_KIND_VSYSCALL:
        return true;
    default:
        return false;
    }
}

bool maps_unlinked_file(const image::Vma& vma)
{
    switch (vma.kind()) {
    case image::VMA_KIND_MEMFD_PRIVATE:
    case image::VMA_KIND_MEMFD_SHARED:
    case image::VMA_KIND_DELETED_FILE_PRIVATE:
    case image::VMA_KIND_DELETED_FILE_SHARED:
    case image::VMA_KIND_SECRET:
        return true;
    default:
        return false;
    }
}

bool stores_pages(const image::Vma& vma)
{
    switch (vma.kind()) {
    case image::VMA_KIND_ANONYMOUS:
    case image::VMA_KIND_FILE_PRIVATE:
    case image::VMA_KIND_MEMFD_PRIVATE:
    case image::VMA_KIND_DELETED_FILE_PRIVATE:
    case image::VMA_KIND_SHARED_ANONYMOUS:
        return true;
    default:
        return false;
    }
}

} // namespace cryo::mem
