// Which pages a process wrote since a moment cryo chose, without soft-dirty.
//
// This kernel (like arm64 and some distributions) has no soft-dirty bits.
// cryo tracks writes with a userfaultfd in WP_ASYNC mode instead: the
// userfaultfd is created inside the frozen target by an injected
// userfaultfd(2) call, copied into cryo with pidfd_getfd() and closed in the
// target, so the program never sees it. cryo enables WP_ASYNC and
// WP_UNPOPULATED on its copy (UFFDIO_API), registers each private VMA in
// write-protect mode and write-protects its pages (UFFDIO_WRITEPROTECT). A
// later write to such a page is resolved by the kernel itself, without any
// message to a handler (async), and clears the page's protection: the
// PAGEMAP_SCAN ioctl then reports it as PAGE_IS_WRITTEN, and with
// PM_SCAN_WP_MATCHING the same call protects it again, so one scan both
// reads and re-arms the written set.
//
// The answer is conservative by construction: a page is "not written" only
// while its page-table entry keeps the protection bit, so a page faulted in
// afresh, a page the kernel replaced, or a VMA the kernel no longer knows as
// registered (mremap, munmap then mmap, growth) counts as written or as
// untracked, never as unchanged. PM_SCAN_CHECK_WPASYNC makes the kernel
// refuse to scan a VMA that is not registered in WP_ASYNC mode, which is how
// cryo tells a tracked VMA from one created since.
//
// A process that uses userfaultfd itself (it holds a userfaultfd, or a VMA
// is already registered with one) is not tracked: its memory is dumped in
// full every time.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "mem/dump_pages.h"
#include "mm.pb.h"
#include "ptrace/injector.h"

namespace cryo::mem {

// The userfaultfd that tracks one process's writes, held by cryo (or by the
// tracker process between two commands, see mem/tracker.h).
class ProcessTracking {
public:
    // Creates the userfaultfd inside the frozen process by an injected call
    // and takes it out (the process's copy is closed again).
    static Result<ProcessTracking> create(pid_t pid, int pidfd, ptrace::Injector& injector);
    // Adopts a userfaultfd created by an earlier command.
    static ProcessTracking adopt(pid_t pid, UniqueFd uffd) { return ProcessTracking(pid, std::move(uffd)); }

    pid_t pid() const { return m_pid; }
    int fd() const { return m_uffd.get(); }

    // Registers the VMA for write-protect tracking and protects all its
    // pages; false when the kernel refuses this VMA (it stays untracked).
    bool track(const image::Vma& vma);
    // The pages of [start, end) written since they were last protected,
    // protected again; nullopt when the range is not (wholly) tracked.
    Result<std::optional<std::vector<PageRange>>> take_written(int pagemap_fd, uint64_t start, uint64_t end);

private:
    ProcessTracking(pid_t pid, UniqueFd uffd) : m_pid(pid), m_uffd(std::move(uffd)) { }
    pid_t m_pid;
    UniqueFd m_uffd;
};

// Creates a userfaultfd inside the frozen process `pid` by an injected
// userfaultfd(2) with `flags`, takes it into cryo with pidfd_getfd() and
// closes the process's copy, so the program never sees it. The context
// belongs to the process's mm: what cryo registers through its copy is the
// process's memory. Used by dirty tracking and by lazy restore.
Result<UniqueFd> take_new_userfaultfd(pid_t pid, int pidfd, ptrace::Injector& injector, uint64_t flags);

// Whether writes to this VMA's pages can be tracked per process: private
// anonymous memory and the changed pages of private file mappings. Shared
// memory can be written through another process's page tables, so it is
// always stored in full.
bool trackable(const image::Vma& vma);

// Why the process cannot be tracked because it uses userfaultfd itself
// (an open userfaultfd, or, when tracking starts, a VMA registered with
// one), or nullopt. `own_uffd_registered`: a later round, where cryo's own
// registrations exist; only the descriptors are looked at then.
Result<std::optional<std::string>> uses_userfaultfd(pid_t pid, bool own_uffd_registered);

// For `cryo check`: a write to a tracked page is seen and a page left alone
// is not, tried for real in a child.
Result<std::string> probe_dirty_tracking();

} // namespace cryo::mem
