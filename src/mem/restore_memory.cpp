// See restore_memory.h for the order of the steps and why.
#include "mem/restore_memory.h"

#include <fcntl.h>
#include <linux/prctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <optional>
#include <ranges>
#include <set>

#include "base/syscalls.h"
#include "mem/sysv_shm.h"
#include "mem/vmas.h"
#include "proc/maps.h"

namespace cryo::mem {

namespace {

constexpr uint64_t kTaskSize = 0x7ffffffff000ull;  // x86-64, 4-level paging
constexpr size_t kMaxIovecs = 1024;                // IOV_MAX
constexpr uint64_t kMaxPreadvBytes = 1ull << 30;

struct Range {
    uint64_t start;
    uint64_t end;
};

std::optional<image::VmaKind> special_kind(std::string_view path)
{
    if (path == "[vvar]")
        return image::VMA_KIND_VVAR;
    if (path == "[vvar_vclock]")
        return image::VMA_KIND_VVAR_VCLOCK;
    if (path == "[vdso]")
        return image::VMA_KIND_VDSO;
    return std::nullopt;
}

bool contains(const std::vector<uint64_t>* starts, uint64_t start)
{
    return starts && std::ranges::count(*starts, start) > 0;
}

// Filled by this process's own restorer: final already.
bool materialized(const AddressSpaceRestore& restore, const image::Vma& vma)
{
    return contains(restore.materialized, vma.start());
}

// Inherited from the parent's restorer: only the differing pages are left.
bool inherited(const AddressSpaceRestore& restore, const image::Vma& vma)
{
    return !materialized(restore, vma) && vma.shares_with_parent() && contains(restore.parent_materialized, vma.start());
}

bool kept(const AddressSpaceRestore& restore, const image::Vma& vma) { return materialized(restore, vma) || inherited(restore, vma); }

const image::Vma* vma_at(const AddressSpaceRestore& restore, uint64_t address)
{
    for (const auto& vma : restore.image->vmas())
        if (vma.start() <= address && address < vma.end())
            return &vma;
    return nullptr;
}

using ptrace::QueuedCall;

// The tables of these batches take the start of the scratch area: what
// their calls point at lies elsewhere.
Result<std::vector<long>> run_queued(const AddressSpaceRestore& restore, const std::vector<QueuedCall>& queued)
{
    return ptrace::run_queued(*restore.injector, *restore.scratch, queued, 0);
}

// The restorer's rseq area (glibc's, in memory about to go) is
// unregistered first, in the same batch as the unmapping.
Result<void> queue_rseq_unregister(const AddressSpaceRestore& restore, std::vector<QueuedCall>& calls)
{
    RseqConfiguration rseq {};
    if (::ptrace(static_cast<__ptrace_request>(PTRACE_GET_RSEQ_CONFIGURATION), restore.pid, sizeof(rseq), &rseq) < 0)
        return fail_errno("ptrace(GET_RSEQ_CONFIGURATION)");
    if (rseq.rseq_abi_pointer != 0)
        calls.push_back({ .call = { __NR_rseq, { rseq.rseq_abi_pointer, rseq.rseq_abi_size, kRseqFlagUnregister,
                                                 rseq.signature, 0, 0 }, "rseq unregister" },
                          .context = "rseq" });
    return {};
}

// Unmaps all of the child's memory except the trampoline and the special
// mappings, in as few calls as there are gaps between those; queued for
// the batch of move_special_mappings().
Result<std::vector<QueuedCall>> unmap_everything_else(const AddressSpaceRestore& restore,
                                                      const std::vector<proc::MapsEntry>& maps)
{
    std::vector<QueuedCall> calls;
    TRY(queue_rseq_unregister(restore, calls));
    std::vector<Range> keep { { restore.trampoline, restore.trampoline + restore.trampoline_size } };
    for (const auto& [id, object] : *restore.shared_objects)
        keep.push_back({ object.address, object.address + object.size });
    if (restore.unlinked_files)
        for (const auto& window : restore.unlinked_files->ranges())
            keep.push_back({ window.start, window.end });
    for (const auto& vma : restore.image->vmas())
        if (kept(restore, vma))
            keep.push_back({ vma.start(), vma.end() });
    for (const auto& map : maps)
        if (special_kind(map.path))
            keep.push_back({ map.start, map.end });
    std::ranges::sort(keep, {}, &Range::start);
    auto unmap = [&](uint64_t start, uint64_t end) {
        calls.push_back({ .call = { SYS_munmap, { start, end - start, 0, 0, 0, 0 }, "munmap" },
                          .context = "unmapping restorer memory" });
    };
    uint64_t cursor = 0;
    for (const auto& kept : keep) {
        if (kept.start > cursor)
            unmap(cursor, kept.start);
        cursor = std::max(cursor, kept.end);
    }
    if (cursor < kTaskSize)
        unmap(cursor, kTaskSize);
    return calls;
}

// Runs `before` (the unmapping), then moves the vDSO and vvar pages to the
// image's addresses, in one batch.
Result<void> move_special_mappings(const AddressSpaceRestore& restore, const std::vector<proc::MapsEntry>& maps,
                                   std::vector<QueuedCall> before)
{
    std::map<image::VmaKind, Range> current;
    std::map<image::VmaKind, Range> wanted;
    for (const auto& map : maps)
        if (auto kind = special_kind(map.path))
            current[*kind] = { map.start, map.end };
    for (const auto& vma : restore.image->vmas())
        if (special_kind(vma.path()))
            wanted[vma.kind()] = { vma.start(), vma.end() };

    bool same_layout = current.size() == wanted.size();
    for (const auto& [kind, range] : current) {
        auto found = wanted.find(kind);
        if (found == wanted.end() || found->second.end - found->second.start != range.end - range.start)
            same_layout = false;
    }
    if (!same_layout)
        return fail("the vDSO/vvar layout of this kernel differs from the checkpoint's: restoring on another "
                    "kernel is not supported yet");
    if (current.empty()) {
        TRY(run_queued(restore, before));
        return {};
    }

    uint64_t base = std::ranges::min(current | std::views::values, {}, &Range::start).start;
    // Both rounds in the same batch: the calls run in order.
    size_t first = before.size();
    std::vector<QueuedCall> moves = std::move(before);
    auto move = [&](uint64_t from, uint64_t size, uint64_t to) {
        if (from != to)
            moves.push_back({ .call = { SYS_mremap, { from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to, 0 },
                                        "mremap vdso/vvar" } });
    };
    for (const auto& [kind, range] : current)
        move(range.start, range.end - range.start, restore.temporary_slot + (range.start - base));
    for (const auto& [kind, range] : current)
        move(restore.temporary_slot + (range.start - base), range.end - range.start, wanted.at(kind).start);
    auto results = TRY(run_queued(restore, moves));
    for (size_t i = first; i < moves.size(); ++i)
        if (static_cast<uint64_t>(results[i]) != moves[i].call.args[4])
            return fail("mremap moved vdso/vvar to {:#x} instead of {:#x}", static_cast<uint64_t>(results[i]),
                        moves[i].call.args[4]);
    return {};
}

bool needs_fill(const image::Vma& vma) { return stores_pages(vma) && vma.stored_bytes() > 0; }

// Lazy restore: which VMAs the lazy-pages server fills (lazy/lazy_pages.h).
// Private anonymous memory of at least kLazyMinimum bytes with stored pages
// that no restorer prepared (copy-on-write sharing, mem/cow.h), neither
// locked (mlock() would fault every page in first), inaccessible nor wiped
// on fork (a child forked before the server is done must see zeros there,
// not the parent's pending pages).
constexpr uint64_t kLazyMinimum = 64 * 1024;

bool lazy(const AddressSpaceRestore& restore, const image::Vma& vma)
{
    return restore.lazy_pages && lazy_candidate(vma) && !kept(restore, vma);
}

int map_protection(const image::Vma& vma)
{
    int prot = static_cast<int>(vma.prot());
    if (needs_fill(vma))
        prot |= PROT_READ | PROT_WRITE;
    return prot;
}

// A mapping of a memfd, deleted file or secret file: cryo mapped the file
// for it before the fork, with its offset, sharing and access; mremap()
// carries that mapping (same file, offset and flags) to its place.
Result<void> move_unlinked_file_window(const AddressSpaceRestore& restore, const image::Vma& vma)
{
    if (!restore.unlinked_files)
        return fail("mapping {:#x}-{:#x} ({}): cryo did not prepare its file", vma.start(), vma.end(), vma.path());
    uint64_t window = TRY(restore.unlinked_files->window_for(vma));
    uint64_t length = vma.end() - vma.start();
    uint64_t moved = TRY_CTX(restore.injector->call("mremap", SYS_mremap, window, length, length,
                                                    MREMAP_MAYMOVE | MREMAP_FIXED, vma.start()),
                             "mapping {:#x}-{:#x} ({})", vma.start(), vma.end(), vma.path());
    if (moved != vma.start())
        return fail("mapping {:#x}-{:#x} landed at {:#x}", vma.start(), vma.end(), moved);
    if (vma.hugepage())
        TRY(restore.injector->call("madvise(MADV_HUGEPAGE)", SYS_madvise, vma.start(), length, MADV_HUGEPAGE));
    return {};
}

// The mapped files and how each is opened (O_RDONLY, or O_RDWR for a
// writable shared mapping).
using MappedFileKey = std::pair<std::string, int>;

MappedFileKey mapped_file_key(const image::Vma& vma)
{
    bool shared = vma.kind() == image::VMA_KIND_FILE_SHARED;
    return { vma.path(), shared && (vma.prot() & PROT_WRITE) ? O_RDWR : O_RDONLY };
}

bool maps_file(const AddressSpaceRestore& restore, const image::Vma& vma)
{
    return !is_special(vma) && !kept(restore, vma) && !maps_unlinked_file(vma)
        && (vma.kind() == image::VMA_KIND_FILE_PRIVATE || vma.kind() == image::VMA_KIND_FILE_SHARED);
}

MappedFileKey executable_key(const AddressSpaceRestore& restore) { return { restore.image->fields().exe_path(), O_RDONLY }; }

// Opens every file the process maps, and its executable (for
// set_mm_fields()), by injected openat()s batched together: their paths go
// after the batch's table in the scratch area.
Result<std::map<MappedFileKey, uint64_t>> open_mapped_files(const AddressSpaceRestore& restore)
{
    std::vector<MappedFileKey> wanted { executable_key(restore) };
    for (const auto& vma : restore.image->vmas())
        if (maps_file(restore, vma) && std::ranges::count(wanted, mapped_file_key(vma)) == 0)
            wanted.push_back(mapped_file_key(vma));
    std::map<MappedFileKey, uint64_t> opened;
    for (size_t next = 0; next < wanted.size();) {
        std::vector<QueuedCall> calls;
        uint64_t offset = ptrace::kBatchTableSize;
        for (; next < wanted.size() && calls.size() < ptrace::kBatchCalls; ++next) {
            const auto& [path, mode] = wanted[next];
            if (offset + path.size() + 1 > restore.scratch->size())
                break;
            uint64_t address = TRY(restore.scratch->put_string(path, offset));
            offset += path.size() + 1;
            calls.push_back({ .call = { SYS_openat, { static_cast<uint64_t>(AT_FDCWD), address,
                                                      static_cast<uint64_t>(mode | O_CLOEXEC), 0, 0, 0 }, "openat" },
                              .context = fmt::format("mapped file {}", path) });
        }
        if (calls.empty())
            return fail("mapped file {}: its path does not fit in the scratch area", wanted[next].first);
        auto results = TRY(run_queued(restore, calls));
        for (size_t i = 0; i < calls.size(); ++i)
            opened[wanted[next - calls.size() + i]] = static_cast<uint64_t>(results[i]);
    }
    return opened;
}

// `open_files`: from open_mapped_files(); all but the executable are
// closed here.
Result<void> map_vmas(const AddressSpaceRestore& restore, const std::map<MappedFileKey, uint64_t>& open_files)
{
    auto& injector = *restore.injector;
    std::vector<QueuedCall> mmaps;   // run together once every file is open
    std::set<uint64_t> sysv_bases;   // System V attachments made (mem/sysv_shm.h)

    for (const auto& vma : restore.image->vmas()) {
        if (is_special(vma) || kept(restore, vma))
            continue;
        if (maps_unlinked_file(vma)) {
            TRY(move_unlinked_file_window(restore, vma));
            continue;
        }
        uint64_t length = vma.end() - vma.start();
        int flags = MAP_FIXED | (vma.no_reserve() ? MAP_NORESERVE : 0);
        uint64_t fd = static_cast<uint64_t>(-1);
        uint64_t offset = 0;
        switch (vma.kind()) {
        case image::VMA_KIND_ANONYMOUS:
            flags |= MAP_PRIVATE | MAP_ANONYMOUS | (vma.grows_down() ? MAP_GROWSDOWN : 0);
            break;
        case image::VMA_KIND_SHARED_ANONYMOUS: {
            auto object = restore.shared_objects->find(vma.shmem_id());
            if (object == restore.shared_objects->end() || vma.pgoff() + length > object->second.size)
                return fail("mapping {:#x}-{:#x}: shared memory object {} is missing", vma.start(), vma.end(), vma.shmem_id());
            // A new mapping of the object's pages (mremap with an old
            // size of 0 duplicates a shared mapping), not a move of them:
            // two mappings may show overlapping parts of one object (one
            // made from /proc/PID/map_files of the other), and a part
            // moved out for the first would be missing for the second.
            // The object's own mapping goes with the batch below.
            uint64_t moved = TRY_CTX(injector.call("mremap", SYS_mremap, object->second.address + vma.pgoff(), 0, length,
                                                   MREMAP_MAYMOVE | MREMAP_FIXED, vma.start()),
                                     "mapping {:#x}-{:#x} (shared memory)", vma.start(), vma.end());
            if (moved != vma.start())
                return fail("mapping {:#x}-{:#x} landed at {:#x}", vma.start(), vma.end(), moved);
            continue;
        }
        case image::VMA_KIND_SYSV_SHM: {
            auto attachment = TRY(sysv_attachment(*restore.image, vma));
            if (!sysv_bases.insert(attachment.base).second)
                continue;   // attached with an earlier VMA of it
            mmaps.push_back({ .call = { SYS_shmat, { vma.shmem_id(), attachment.base, static_cast<uint64_t>(attachment.flags),
                                                     0, 0, 0 }, "shmat" },
                              .context = fmt::format("System V segment {} at {:#x}", vma.shmem_id(), attachment.base) });
            for (const auto& [start, end] : attachment.holes)
                mmaps.push_back({ .call = { SYS_munmap, { start, end - start, 0, 0, 0, 0 }, "munmap" } });
            continue;
        }
        case image::VMA_KIND_FILE_PRIVATE:
        case image::VMA_KIND_FILE_SHARED: {
            fd = open_files.at(mapped_file_key(vma));
            offset = vma.pgoff();
            flags |= vma.kind() == image::VMA_KIND_FILE_SHARED ? MAP_SHARED : MAP_PRIVATE;
            break;
        }
        default:
            return fail("mapping {:#x}-{:#x}: unknown kind {}", vma.start(), vma.end(), static_cast<int>(vma.kind()));
        }
        // MAP_FIXED: a result other than the address is an error code.
        std::string context = fmt::format("mapping {:#x}-{:#x} ({})", vma.start(), vma.end(), vma.path());
        mmaps.push_back({ .call = { SYS_mmap, { vma.start(), length, static_cast<uint64_t>(map_protection(vma)),
                                                static_cast<uint64_t>(flags), fd, offset }, "mmap" },
                          .context = context });
        // Huge pages are chosen when the memory is first touched, so the
        // advice must come before the fill.
        if (vma.hugepage())
            mmaps.push_back({ .call = { SYS_madvise, { vma.start(), length, MADV_HUGEPAGE, 0, 0, 0 },
                                        "madvise(MADV_HUGEPAGE)" } });
    }
    for (const auto& [key, fd] : open_files)
        if (key != executable_key(restore))
            mmaps.push_back({ .call = { SYS_close, { fd, 0, 0, 0, 0, 0 }, "close" } });
    // The shared objects' own mappings: their pages are mapped where they
    // belong by now.
    for (const auto& [id, object] : *restore.shared_objects)
        mmaps.push_back({ .call = { SYS_munmap, { object.address, object.size, 0, 0, 0, 0 }, "munmap" } });
    if (restore.unlinked_files)
        for (const auto& window : restore.unlinked_files->ranges())
            mmaps.push_back({ .call = { SYS_munmap, { window.start, window.end - window.start, 0, 0, 0, 0 }, "munmap" } });
    auto results = TRY(run_queued(restore, mmaps));
    for (size_t i = 0; i < mmaps.size(); ++i)
        if ((mmaps[i].call.number == SYS_mmap && static_cast<uint64_t>(results[i]) != mmaps[i].call.args[0])
            || (mmaps[i].call.number == SYS_shmat && static_cast<uint64_t>(results[i]) != mmaps[i].call.args[1]))
            return fail("{} landed at {:#x}", mmaps[i].context, static_cast<uint64_t>(results[i]));
    return {};
}

// In VMAs inherited from the parent, the parent's pages that this process
// never had must read as zeros again.
Result<void> drop_parent_only_pages(const AddressSpaceRestore& restore)
{
    if (!restore.parent_page_map)
        return {};
    for (const auto& run : restore.parent_page_map->runs()) {
        const auto* vma = vma_at(restore, run.address());
        if (!vma || !inherited(restore, *vma))
            continue;
        uint64_t run_end = run.address() + run.page_count() * kPageSize;
        uint64_t start = 0;
        auto flush = [&](uint64_t end) -> Result<void> {
            if (start != 0 && end > start)
                TRY(restore.injector->call("madvise(MADV_DONTNEED)", SYS_madvise, start, end - start, MADV_DONTNEED));
            start = 0;
            return {};
        };
        for (uint64_t page = run.address(); page < run_end; page += kPageSize) {
            bool mine = false;
            for (const auto& own : restore.page_map->runs())
                mine = mine || (page >= own.address() && page < own.address() + own.page_count() * kPageSize);
            if (mine)
                TRY(flush(page));
            else if (start == 0)
                start = page;
        }
        TRY(flush(run_end));
    }
    return {};
}

// Reads the page file into place with as few preadv() calls as possible:
// runs are stored back to back, so one call covers up to IOV_MAX of them.
Result<MemoryRestoreStats> fill_pages(const AddressSpaceRestore& restore)
{
    MemoryRestoreStats stats;
    std::vector<iovec> iovecs;
    int batch_fd = restore.page_fd;
    uint64_t batch_offset = 0;
    uint64_t batch_bytes = 0;

    auto flush = [&]() -> Result<void> {
        if (iovecs.empty())
            return {};
        uint64_t array = TRY(restore.scratch->put(std::as_bytes(std::span(iovecs))));
        uint64_t done = TRY(restore.injector->call("preadv page file", SYS_preadv, static_cast<uint64_t>(batch_fd),
                                                   array, iovecs.size(), batch_offset, 0));
        if (done != batch_bytes)
            return fail("page file: read {} of {} bytes at offset {}", done, batch_bytes, batch_offset);
        stats.bytes += done;
        ++stats.preadv_calls;
        iovecs.clear();
        batch_bytes = 0;
        return {};
    };

    for (const auto& run : restore.page_map->runs()) {
        // Pages a restorer already put in place (see mem/cow.h), and those
        // the lazy-pages server brings in.
        if (const auto* vma = vma_at(restore, run.address());
            vma && (materialized(restore, *vma) || (inherited(restore, *vma) && run.same_as_parent()) || lazy(restore, *vma)))
            continue;
        uint64_t address = run.address();
        uint64_t offset = run.file_offset();
        uint64_t remaining = run.page_count() * kPageSize;
        // Incremental checkpoints: runs in an ancestor's page file.
        int fd = run.ancestor() == 0 ? restore.page_fd : restore.ancestor_page_fds.at(run.ancestor() - 1);
        while (remaining > 0) {
            if (!iovecs.empty() && (batch_fd != fd || batch_offset + batch_bytes != offset || iovecs.size() == kMaxIovecs
                                    || batch_bytes >= kMaxPreadvBytes))
                TRY(flush());
            batch_fd = fd;
            if (iovecs.empty())
                batch_offset = offset;
            uint64_t chunk = std::min(remaining, kMaxPreadvBytes - batch_bytes);
            iovecs.push_back({ reinterpret_cast<void*>(address), chunk });
            batch_bytes += chunk;
            address += chunk;
            offset += chunk;
            remaining -= chunk;
        }
    }
    TRY(flush());
    TRY(drop_parent_only_pages(restore));
    return stats;
}

struct Advice {
    bool (image::Vma::*has)() const;
    int advice;
    const char* name;
};

constexpr Advice kAdvice[] = {
    { &image::Vma::dont_fork, MADV_DONTFORK, "MADV_DONTFORK" },
    { &image::Vma::wipe_on_fork, MADV_WIPEONFORK, "MADV_WIPEONFORK" },
    { &image::Vma::no_hugepage, MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE" },
    { &image::Vma::dont_dump, MADV_DONTDUMP, "MADV_DONTDUMP" },
    { &image::Vma::mergeable, MADV_MERGEABLE, "MADV_MERGEABLE" },
    { &image::Vma::sequential_read, MADV_SEQUENTIAL, "MADV_SEQUENTIAL" },
    { &image::Vma::random_read, MADV_RANDOM, "MADV_RANDOM" },
};

Result<void> finish_vmas(const AddressSpaceRestore& restore)
{
    std::vector<QueuedCall> calls;
    for (const auto& vma : restore.image->vmas()) {
        if (is_special(vma))
            continue;
        uint64_t length = vma.end() - vma.start();
        std::string range = fmt::format("mapping {:#x}-{:#x}", vma.start(), vma.end());
        // Shared memory, memfds, deleted files and memory prepared by a
        // restorer arrive with the protection they were prepared with.
        if (map_protection(vma) != static_cast<int>(vma.prot()) || vma.kind() == image::VMA_KIND_SHARED_ANONYMOUS
            || vma.kind() == image::VMA_KIND_SYSV_SHM
            || maps_unlinked_file(vma) || kept(restore, vma))
            calls.push_back({ .call = { SYS_mprotect, { vma.start(), length, vma.prot(), 0, 0, 0 }, "mprotect" },
                              .context = range });
        for (const auto& advice : kAdvice)
            if ((vma.*advice.has)())
                calls.push_back({ .call = { SYS_madvise, { vma.start(), length, static_cast<uint64_t>(advice.advice), 0, 0, 0 },
                                            "madvise" },
                                  .context = fmt::format("{} on {:#x}-{:#x}", advice.name, vma.start(), vma.end()),
                                  .warn_only = true });
        // The kernel marks every mapping of memfd_secret memory locked
        // itself and refuses mlock() on it; the restored one, inherited from
        // cryo's, is unmarked like a forked child's.
        if (vma.locked() && vma.kind() != image::VMA_KIND_SECRET)
            calls.push_back({ .call = { SYS_mlock, { vma.start(), length, 0, 0, 0, 0 }, "mlock" }, .context = range,
                              .warn_only = true });
    }
    TRY(run_queued(restore, calls));
    return {};
}

// PR_SET_MM_MAP and the close of the executable's descriptor (`exe_fd`)
// in one batch; the structure and the auxv go after its table.
Result<void> set_mm_fields(const AddressSpaceRestore& restore, uint64_t exe_fd)
{
    const auto& fields = restore.image->fields();
    const auto& scratch = *restore.scratch;

    std::vector<uint64_t> auxv(fields.auxv().begin(), fields.auxv().end());
    constexpr uint64_t kMapOffset = ptrace::kBatchTableSize;
    constexpr uint64_t kAuxvOffset = kMapOffset + 1024;
    uint64_t auxv_address = TRY(scratch.put(std::as_bytes(std::span(auxv)), kAuxvOffset));

    prctl_mm_map map {};
    map.start_code = fields.start_code();
    map.end_code = fields.end_code();
    map.start_data = fields.start_data();
    map.end_data = fields.end_data();
    map.start_brk = fields.start_brk();
    map.brk = fields.brk();
    map.start_stack = fields.start_stack();
    map.arg_start = fields.arg_start();
    map.arg_end = fields.arg_end();
    map.env_start = fields.env_start();
    map.env_end = fields.env_end();
    map.auxv = reinterpret_cast<__u64*>(auxv_address);
    map.auxv_size = static_cast<__u32>(auxv.size() * sizeof(uint64_t));
    map.exe_fd = static_cast<__u32>(exe_fd);
    static_assert(sizeof(map) <= 1024);
    uint64_t map_address = TRY(scratch.put_value(map, kMapOffset));
    std::vector<QueuedCall> calls;
    calls.push_back({ .call = { SYS_prctl, { PR_SET_MM, PR_SET_MM_MAP, map_address, sizeof(map), 0, 0 },
                                "prctl(PR_SET_MM, PR_SET_MM_MAP)" } });
    calls.push_back({ .call = { SYS_close, { exe_fd, 0, 0, 0, 0, 0 }, "close" }, .context = "executable" });
    TRY(run_queued(restore, calls));
    return {};
}

} // namespace

Result<MemoryRestoreStats> restore_address_space(const AddressSpaceRestore& restore)
{
    auto maps = TRY(proc::read_maps(restore.pid));
    auto unmapping = TRY_CTX(unmap_everything_else(restore, maps), "unmapping restorer memory");
    TRY(move_special_mappings(restore, maps, std::move(unmapping)));
    auto open_files = TRY(open_mapped_files(restore));
    TRY(map_vmas(restore, open_files));
    auto stats = TRY_CTX(fill_pages(restore), "filling memory");
    TRY(finish_vmas(restore));
    TRY_CTX(set_mm_fields(restore, open_files.at(executable_key(restore))), "mm fields");
    for (const auto& vma : restore.image->vmas())
        if (lazy(restore, vma))
            stats.lazy_vmas.push_back(vma.start());
    return stats;
}

bool lazy_candidate(const image::Vma& vma)
{
    return vma.kind() == image::VMA_KIND_ANONYMOUS && needs_fill(vma) && !vma.locked() && !vma.wipe_on_fork()
        && vma.prot() != PROT_NONE && vma.end() - vma.start() >= kLazyMinimum;
}

Result<uint64_t> find_free_window(const image::MemoryImage& image, uint64_t size)
{
    // Every range taken in either layout, sorted; the first gap of `size`
    // bytes above 4 GiB (below is where non-PIE programs live) wins.
    std::vector<Range> taken;
    for (const auto& map : TRY(proc::read_maps(::getpid())))
        taken.push_back({ map.start, map.end });
    for (const auto& vma : image.vmas())
        taken.push_back({ vma.start(), vma.end() });
    std::ranges::sort(taken, {}, &Range::start);
    constexpr uint64_t kLowest = 1ull << 32;
    constexpr uint64_t kHighest = 1ull << 46;
    uint64_t candidate = kLowest;
    for (const auto& range : taken) {
        if (range.end <= candidate)
            continue;
        if (range.start >= candidate + size)
            break;
        candidate = (range.end + size - 1) / size * size;   // aligned past it
    }
    if (candidate + size > kHighest)
        return fail("no address range of {} bytes is free in both cryo's and the image's memory map", size);
    return candidate;
}

} // namespace cryo::mem
