// Rebuilding a process's address space from the image, from outside.
//
// The new process still has cryo's memory. Driven through the trampoline it
// (1) drops cryo's rseq registration, which points into memory about to go,
// (2) unmaps everything but the trampoline and the kernel's [vvar]/[vdso],
// (3) moves [vvar], [vvar_vclock] and [vdso] together to where the image had
// them (glibc keeps pointers into the vDSO), through a temporary slot so old
// and new places may overlap, (4) maps every VMA of the image, writable
// where pages must be filled (shared memory, memfds and deleted files are
// moved into place from where cryo mapped them before the fork), (5) fills the pages with injected preadv()
// calls straight from the page file (one copy, many runs per call), (6) sets
// the final protection and madvise() state and (7) sets the mm fields with
// PR_SET_MM_MAP (brk, stack, argument and environment areas, auxv, exe),
// which the kernel only accepts once the old executable is unmapped.
#pragma once

#include <sys/types.h>

#include <map>
#include <vector>

#include "base/error.h"
#include "mem/unlinked_files.h"
#include "mm.pb.h"
#include "ptrace/injector.h"

namespace cryo::mem {

// A MAP_SHARED|MAP_ANONYMOUS object mapped by cryo before it created the
// tree, so every new process inherits it; each moves the parts it maps into
// place with mremap(), which keeps them one shared object.
struct SharedObject {
    uint64_t address { 0 };   // in cryo and, until moved, in every new process
    uint64_t size { 0 };
};

struct AddressSpaceRestore {
    pid_t pid { 0 };
    ptrace::Injector* injector { nullptr };
    const ptrace::RemoteMemory* memory { nullptr };
    const ptrace::ScratchArea* scratch { nullptr };
    uint64_t trampoline { 0 };        // start of the trampoline mapping
    uint64_t trampoline_size { 0 };
    uint64_t temporary_slot { 0 };    // where [vvar]/[vdso] pass through
    int page_fd { -1 };               // the page file, as numbered in the child
    // Incremental checkpoints: the page files of the ancestors, [N - 1] for
    // runs with ancestor N, as numbered in the child.
    std::vector<int> ancestor_page_fds;
    const image::MemoryImage* image { nullptr };
    const image::PageMap* page_map { nullptr };
    const std::map<uint64_t, SharedObject>* shared_objects { nullptr };  // by shmem_id
    // memfds and deleted files, mapped by cryo where each mapping is to be
    // taken from (mem/unlinked_files.h); may be null when there are none.
    const UnlinkedFileWindows* unlinked_files { nullptr };
    // VMAs (by start) this process's restorer filled with their final
    // content, and those its parent's restorer did (inherited by fork).
    const std::vector<uint64_t>* materialized { nullptr };
    const std::vector<uint64_t>* parent_materialized { nullptr };
    const image::PageMap* parent_page_map { nullptr };
    // --lazy-pages: leave the pages of large private anonymous VMAs out;
    // the lazy-pages server brings them in (lazy/lazy_pages.h).
    bool lazy_pages { false };
};

struct MemoryRestoreStats {
    uint64_t bytes { 0 };
    int preadv_calls { 0 };
    std::vector<uint64_t> lazy_vmas;   // starts of the VMAs left unfilled
};

Result<MemoryRestoreStats> restore_address_space(const AddressSpaceRestore& restore);

// Whether the lazy-pages server may fill `vma` (with lazy_pages): the
// rule without what a restorer of this restore keeps (copy-on-write
// sharing, mem/cow.h), which is known only while the tree is built.
bool lazy_candidate(const image::Vma& vma);

// An address range of `size` bytes that is free both in cryo's own layout
// and in the image's (for the trampoline and the shared objects).
Result<uint64_t> find_free_window(const image::MemoryImage& image, uint64_t size);

} // namespace cryo::mem
