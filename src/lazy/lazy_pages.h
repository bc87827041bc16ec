// Lazy (post-copy) restore: `cryo restore --lazy-pages`.
//
// The restored tree starts before its large private memory is there. While
// cryo morphs a process it maps every VMA as usual but leaves the pages of
// large private anonymous VMAs out (the rule is in mem/restore_memory.cpp:
// at least 64 KiB, not prepared by a restorer, not locked, not PROT_NONE,
// not wiped on fork; everything else is filled as in a normal restore). It
// then creates a userfaultfd inside the process by an injected
// userfaultfd(2) (while the process is still privileged and has no seccomp
// filter), takes it with pidfd_getfd() and closes the process's copy, and
// enables the fork, remap, remove and unmap events on it. The VMAs are
// registered in MISSING mode only at the end, once every other step is
// done: some of those steps touch the memory (rseq registration), and a
// fault then would wait for a server that does not exist yet. The pages
// they touched are filled through /proc/PID/mem before the registration.
//
// Just before the tree is released, cryo forks the lazy-pages server
// (lazy/server.h): twice, in its own session, so it is no member of the
// tree and nobody's child but init's or a sub-reaper's. It holds the
// userfaultfds and the page files and nothing else, answers each fault
// with the pages around it and streams the rest in the background; it
// exits once every stored page is in place or the processes are gone.
// `cryo restore` itself returns (or, with -d, detaches) as soon as the tree
// runs, so the time to running does not grow with the memory size.
//
// If the server dies early (killed), the kernel drops the registrations
// and the pages it had not copied yet read as zeros: the program goes on
// with wrong memory. The server therefore never throws, logs every error
// to lazy-pages.log in the image directory, and kills a process whose pages
// it cannot read rather than let it run on zeros.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "lazy/page_source.h"
#include "lazy/pending.h"
#include "mm.pb.h"
#include "ptrace/injector.h"

namespace cryo::lazy {

struct LazyProcess {
    pid_t pid { 0 };   // 0 for a child the program forked (the event does not say)
    UniqueFd uffd;
    std::vector<uint64_t> lazy_vmas;   // starts of the VMAs left unfilled
    PendingMap pending;
};

// Run while `pid` is being morphed, once its address space is in place and
// while it is still privileged and without seccomp filter: creates its
// userfaultfd (nothing is registered yet).
Result<LazyProcess> create_lazy_process(pid_t pid, ptrace::Injector& injector, std::vector<uint64_t> lazy_vmas);

// Run last before the release, when no step of cryo's touches the
// process's memory any more: the pages of the lazy VMAs that those steps
// did touch (the kernel reads and writes the rseq area when it is
// registered, for one) are given their content through /proc/PID/mem, then
// the VMAs are registered in MISSING mode and the rest becomes pending.
// `page_fd` and `ancestor_page_fds` (incremental checkpoints, [N - 1] for
// ancestor N) are cryo's descriptors of the page files; they must stay
// open until the server is spawned.
// The pages filled now are read from `source`.
Result<void> arm_lazy_process(LazyProcess& process, const image::MemoryImage& memory, const image::PageMap& page_map,
                              int page_fd, const std::vector<int>& ancestor_page_fds, PageSource& source);

// Forks the lazy-pages server with `processes` (cryo's copies stay open,
// the caller closes them), the page files `files` and `source` (which it
// reads the pages from; a page server's connection is the server's from
// then on, cryo must not use it any more). It logs to
// `directory`/lazy-pages.log and its pid is written to
// `directory`/lazy-pages.pid (both best effort). `report_fd`, unless -1,
// is the connection to a waiting `cryo lazy-pages` (lazy/command.h): the
// server keeps it and reports its exit status there. Returns its pid.
Result<pid_t> spawn_lazy_server(std::vector<LazyProcess>& processes, const std::vector<int>& files,
                                PageSource& source, const std::string& directory, int report_fd = -1);

} // namespace cryo::lazy
