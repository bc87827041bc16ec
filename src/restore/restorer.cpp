// The restorer processes and their creation; see restorer.h.
#include "restore/restorer.h"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <cstring>
#include <ranges>
#include <set>

#include "base/kill.h"
#include "base/syscalls.h"
#include "fds/fd_table.h"
#include "fds/pty.h"
#include "image/chain.h"
#include "ns/loginuid.h"
#include "proc/stat.h"
#include "proc/status.h"
#include "ptrace/injector.h"

namespace cryo::restore {

namespace {

// What a new process tells cryo when its setup is done (or failed). Smaller
// than PIPE_BUF, so reports of several processes never interleave.
struct SetupReport {
    pid_t pid { 0 };
    int error { 0 };      // errno-like code; 0 on success
    int page_fd { -1 };
    int report_fd { -1 };
    int ancestor_page_fds[image::kMaxChainDepth] {};
    int materialized_count { 0 };
    uint64_t materialized[256] {};
    char message[1024] {};
};
static_assert(sizeof(SetupReport) < PIPE_BUF);


Result<void> apply_limits(const image::ProcessCore& core)
{
    for (const auto& saved : core.rlimits()) {
        auto resource = static_cast<__rlimit_resource>(saved.resource());
        rlimit current {};
        if (::getrlimit(resource, &current) < 0)
            return fail_errno(fmt::format("getrlimit({})", saved.resource()));
        rlimit wanted { saved.soft(), saved.hard() };
        // Raising a hard limit needs CAP_SYS_RESOURCE, which cryo may lack:
        // keep the current hard limit then, and the soft one within it.
        if (wanted.rlim_max > current.rlim_max && ::setrlimit(resource, &wanted) < 0) {
            spdlog::warn("pid {}: resource limit {}: hard limit {} lowered to cryo's own {} (raising it needs "
                         "CAP_SYS_RESOURCE)",
                         core.pid(), saved.resource(), wanted.rlim_max, current.rlim_max);
            wanted.rlim_max = current.rlim_max;
            wanted.rlim_cur = std::min(wanted.rlim_cur, wanted.rlim_max);
        }
        if (::setrlimit(resource, &wanted) < 0)
            return fail_errno(fmt::format("setrlimit({}, {}, {})", saved.resource(), wanted.rlim_cur, wanted.rlim_max));
    }
    return {};
}

Result<void> map_trampoline(uint64_t address)
{
    void* mapped = ::mmap(reinterpret_cast<void*>(address), kTrampolineSize, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (mapped == MAP_FAILED)
        return fail_errno(fmt::format("mmap trampoline at {:#x}", address));
    if (mapped != reinterpret_cast<void*>(address))
        return fail("mmap trampoline: got {} instead of {:#x}", mapped, address);
    auto code = ptrace::trampoline_code();
    std::memcpy(mapped, code.data(), code.size());
    if (::mprotect(mapped, kTrampolineCodeSize, PROT_READ | PROT_EXEC) < 0)
        return fail_errno("mprotect trampoline");
    return {};
}

// Inside a PID namespace getpid() and friends give the namespace's own
// numbers, so the comparisons below use those, never the image's outer pids.
Result<void> join_session_and_group(const image::ProcessEntry& entry)
{
    pid_t pid = entry.pid();
    pid_t self = ::getpid();
    if (entry.sid() == pid && ::getsid(0) != self && ::setsid() < 0)
        return fail_errno("setsid");
    if (entry.pgid() == pid && ::getpgid(0) != self && ::setpgid(0, 0) < 0)
        return fail_errno("setpgid(0, 0)");
    if (entry.ppid() != 0 && entry.pgid() != pid && ::getpgid(0) != entry.own_ns_pgid()
        && ::setpgid(0, entry.own_ns_pgid()) < 0)
        return fail_errno(fmt::format("join process group {}", entry.pgid()));
    return {};
}

// A pseudo-terminal of the image whose slave was the controlling terminal
// of this process's session (see fds/pty.cpp): the session leader takes it
// again, right after setsid() and before it creates its children, which
// inherit it; a process of the foreground group, once it joined its group,
// makes the group the foreground one again (every member does, harmlessly).
Result<void> restore_controlling_terminal(const TreePlan& plan, const image::ProcessEntry& entry)
{
    for (const auto& file : plan.files->files()) {
        if (file.kind() != image::FILE_KIND_PTY || !file.pty().master() || file.pty().session() == 0
            || file.pty().session() != entry.sid())
            continue;
        const auto& pty = file.pty();
        auto opened = plan.opened_files.find(file.id());
        if (opened == plan.opened_files.end())
            return fail("the master of /dev/pts/{} was not opened", pty.index());
        int master = opened->second;
        if (entry.sid() == entry.pid()) {
            auto slave = TRY_CTX(fds::open_pty_slave(master, O_RDWR | O_NOCTTY | O_CLOEXEC, pty),
                                 "controlling terminal /dev/pts/{}", pty.index());
            if (::ioctl(slave.get(), TIOCSCTTY, 0) < 0)
                return fail_errno(fmt::format("ioctl(TIOCSCTTY) of /dev/pts/{}", pty.index()));
        }
        if (pty.foreground_group() != entry.pgid())
            continue;
        // From a background group this stops the caller with SIGTTOU, unless
        // the signal is blocked.
        sigset_t ttou, old;
        sigemptyset(&ttou);
        sigaddset(&ttou, SIGTTOU);
        ::sigprocmask(SIG_BLOCK, &ttou, &old);
        pid_t group = ::getpgrp();   // in the process's own PID namespace
        int result = ::ioctl(master, TIOCSPGRP, &group);
        int saved_errno = errno;
        ::sigprocmask(SIG_SETMASK, &old, nullptr);
        if (result < 0)
            return fail_errno(fmt::format("ioctl(TIOCSPGRP) of /dev/pts/{} to group {}", pty.index(), entry.pgid()),
                              saved_errno);
    }
    return {};
}

[[noreturn]] void become_zombie(const image::ProcessEntry& entry)
{
    int status = entry.exit_status();
    if (WIFSIGNALED(status)) {
        // Die of the same signal, without leaving a core file behind.
        ::prctl(PR_SET_DUMPABLE, 0);
        ::signal(WTERMSIG(status), SIG_DFL);
        sigset_t all;
        sigfillset(&all);
        ::sigprocmask(SIG_UNBLOCK, &all, nullptr);
        (void)signal_process(::getpid(), WTERMSIG(status));
    }
    ::_exit(WEXITSTATUS(status));
}

// Group leaders first, so a sibling that joins a group finds it existing.
std::vector<size_t> creation_order(const TreePlan& plan, const ProcessPlan& process)
{
    auto order = process.children;
    std::ranges::stable_partition(order, [&](size_t index) {
        const auto& entry = *plan.processes[index].entry;
        return entry.pgid() == entry.pid();
    });
    return order;
}

// What a child sharing its parent's fd table (see
// ProcessPlan::shares_parent_fd_table) is given: its page files, copied
// above the image's numbers so that the table's owner keeps them where they
// are when it puts the image's files in place, and the pipe on which it
// tells its parent, once its own children exist, which descriptors of the
// table it and its sharing descendants still need (KeptFds).
struct SharedTableFds {
    int page_fd { -1 };
    std::vector<int> ancestor_page_fds;
    int done_fd { -1 };
};

// count -1: the child failed (its report says why).
struct KeptFds {
    int count { 0 };
    int fds[256] {};
};
static_assert(sizeof(KeptFds) < PIPE_BUF);

Result<pid_t> create_process(const TreePlan& plan, size_t index, int parent_levels, int report_fd,
                             const std::vector<uint64_t>& parent_materialized, const SharedTableFds* shared);

// The parent the image gives a process: a session helper in between (see
// ProcessPlan::session_helper) is not one.
int image_parent(const TreePlan& plan, size_t index)
{
    int parent = plan.processes[index].parent;
    while (parent >= 0 && plan.processes[static_cast<size_t>(parent)].session_helper)
        parent = plan.processes[static_cast<size_t>(parent)].parent;
    return parent;
}

// A process some of whose children must be born in the session it was born
// in joins its own session only after it created those.
bool joins_session_late(const TreePlan& plan, const ProcessPlan& process)
{
    return std::ranges::any_of(process.children, [&](size_t child) { return plan.processes[child].before_parent_setsid; });
}

bool in_subtree(const TreePlan& plan, size_t process, size_t root)
{
    for (int at = static_cast<int>(process); at >= 0; at = plan.processes[static_cast<size_t>(at)].parent)
        if (static_cast<size_t>(at) == root)
            return true;
    return false;
}

// The memory cryo loaded (TreePlan::prefilled), as a new process inherits
// it from its parent: the ranges of the parent's subtree, each still mapped
// exactly as loaded (a restorer maps nothing over them while they are
// there). Unmaps those of the parent itself and of the other branches.
void unmap_prefilled_of_others(const TreePlan& plan, size_t index)
{
    int parent = plan.processes[index].parent;
    for (const auto& vma : plan.prefilled)
        if ((parent < 0 || in_subtree(plan, vma.process, static_cast<size_t>(parent)))
            && !in_subtree(plan, vma.process, index))
            ::munmap(reinterpret_cast<void*>(vma.start), vma.end - vma.start);
}

// Before cloning `child`: of the loaded memory this process holds (its own
// and its descendants'), only `child`'s branch is inherited, so that the
// clone copies no page tables the child would unmap at once (with a
// hundred children, each would otherwise copy those of all of them).
void inherit_prefilled_only_by(const TreePlan& plan, size_t index, size_t child)
{
    for (const auto& vma : plan.prefilled)
        if (in_subtree(plan, vma.process, index))
            ::madvise(reinterpret_cast<void*>(vma.start), vma.end - vma.start,
                      in_subtree(plan, vma.process, child) ? MADV_DOFORK : MADV_DONTFORK);
}

// Once its children exist: unmaps what it held for them.
void unmap_prefilled_of_descendants(const TreePlan& plan, size_t index)
{
    for (const auto& vma : plan.prefilled)
        if (vma.process != index && in_subtree(plan, vma.process, index))
            ::munmap(reinterpret_cast<void*>(vma.start), vma.end - vma.start);
}

Result<void> read_runs(const ProcessPlan& process, uint64_t start, uint64_t end, bool skip_same_as_parent)
{
    for (const auto& run : process.page_map->runs()) {
        uint64_t run_end = run.address() + run.page_count() * kPageSize;
        if (run.address() < start || run_end > end || (skip_same_as_parent && run.same_as_parent()))
            continue;
        // Incremental checkpoints: the run's pages may be in an ancestor's file.
        int page_fd = run.ancestor() == 0 ? process.page_fd : process.ancestor_page_fds.at(run.ancestor() - 1);
        TRY(pread_exact(page_fd, std::span(reinterpret_cast<std::byte*>(run.address()), run_end - run.address()),
                        run.file_offset(), "page file"));
    }
    return {};
}

// Fills, in this restorer itself, the private VMAs (anonymous, or of a
// file) its children share copy-on-write with it, so that they inherit
// them by fork (see mem/cow.h):
// either on top of the same VMA inherited from the parent (only the pages
// that differ, and the parent's pages this process did not have are
// dropped) or mapped and filled here. A VMA whose range is taken in this
// (cryo's) address space is left to the normal path.
std::vector<uint64_t> materialize_shared_memory(const TreePlan& plan, size_t index,
                                                const std::vector<uint64_t>& parent_materialized)
{
    const auto& process = plan.processes[index];
    std::vector<uint64_t> materialized;
    for (const auto& vma : process.memory->vmas()) {
        bool needed = false;
        for (size_t child : process.children) {
            const auto* memory = plan.processes[child].memory;
            for (int i = 0; memory && i < memory->vmas_size(); ++i)
                needed = needed || (memory->vmas(i).start() == vma.start() && memory->vmas(i).end() == vma.end()
                                    && memory->vmas(i).shares_with_parent());
        }
        if (!needed || materialized.size() >= 256)
            continue;
        bool inherited = vma.shares_with_parent() && std::ranges::count(parent_materialized, vma.start()) > 0;
        void* address = reinterpret_cast<void*>(vma.start());
        size_t length = vma.end() - vma.start();
        if (inherited) {
            const auto& parent_map = *plan.processes[static_cast<size_t>(image_parent(plan, index))].page_map;
            // The parent's pages this process did not have are zero here.
            for (const auto& run : parent_map.runs()) {
                uint64_t run_end = run.address() + run.page_count() * kPageSize;
                if (run.address() < vma.start() || run_end > vma.end())
                    continue;
                for (uint64_t page = run.address(); page < run_end; page += kPageSize) {
                    bool mine = false;
                    for (const auto& own : process.page_map->runs())
                        mine = mine || (page >= own.address() && page < own.address() + own.page_count() * kPageSize);
                    if (!mine)
                        ::madvise(reinterpret_cast<void*>(page), kPageSize, MADV_DONTNEED);
                }
            }
            if (!read_runs(process, vma.start(), vma.end(), true))
                continue;
        } else {
            // A private file mapping is the file's: written pages are
            // filled below, the others read from the file.
            int flags = MAP_PRIVATE | MAP_FIXED_NOREPLACE | MAP_ANONYMOUS;
            UniqueFd file;
            if (vma.kind() == image::VMA_KIND_FILE_PRIVATE) {
                file.reset(::open(vma.path().c_str(), O_RDONLY | O_CLOEXEC));
                if (!file)
                    continue;
                flags &= ~MAP_ANONYMOUS;
            }
            void* mapped = ::mmap(address, length, PROT_READ | PROT_WRITE, flags, file ? file.get() : -1,
                                  file ? static_cast<off_t>(vma.pgoff()) : 0);
            if (mapped != address) {
                if (mapped != MAP_FAILED)
                    ::munmap(mapped, length);
                continue;
            }
            if (!read_runs(process, vma.start(), vma.end(), false)) {
                ::munmap(address, length);
                continue;
            }
        }
        materialized.push_back(vma.start());
    }
    return materialized;
}

// The process whose fdtable image is the table `index` uses.
size_t table_owner(const TreePlan& plan, size_t index)
{
    while (plan.processes[index].shares_parent_fd_table)
        index = static_cast<size_t>(plan.processes[index].parent);
    return index;
}

// The first number above those of the image's table that `index` uses.
int above_the_image(const TreePlan& plan, size_t index)
{
    int base = 0;
    for (const auto& entry : plan.processes[table_owner(plan, index)].fd_table->fds())
        base = std::max(base, entry.fd() + 1);
    return base;
}

// A copy of `fd` at `base` or above; the original stays for the children
// still to be created, which inherit it at its number in the plan.
Result<int> copy_above(int fd, int base)
{
    int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, base);
    if (copy < 0)
        return fail_errno("fcntl(F_DUPFD_CLOEXEC) of a restore descriptor");
    return copy;
}

// Creates `child`, which shares this process's fd table, and waits until
// it created its own children (while the table still holds every file they
// inherit); returns the descriptors of the table it and its sharing
// descendants keep.
Result<std::vector<int>> create_sharer(const TreePlan& plan, size_t index, size_t child, int report_fd,
                                       const std::vector<uint64_t>& materialized)
{
    const auto& planned = plan.processes[child];
    int base = above_the_image(plan, index);
    SharedTableFds fds;
    fds.page_fd = TRY(copy_above(planned.page_fd, base));
    std::vector<int> kept { fds.page_fd };
    for (int fd : planned.ancestor_page_fds) {
        fds.ancestor_page_fds.push_back(fd >= 0 ? TRY(copy_above(fd, base)) : -1);
        if (fd >= 0)
            kept.push_back(fds.ancestor_page_fds.back());
    }
    int done[2];
    if (::pipe2(done, O_CLOEXEC) < 0)
        return fail_errno("pipe");
    fds.done_fd = done[1];
    auto created = create_process(plan, child, plan.processes[index].entry->ns_pids_size(), report_fd, materialized, &fds);
    KeptFds told;
    ssize_t got = -1;
    while (created && (got = ::read(done[0], &told, sizeof(told))) < 0 && errno == EINTR) { }
    // Both ends are in the shared table; the child is done with them.
    ::close(done[0]);
    ::close(done[1]);
    TRY(created);
    if (got != sizeof(told) || told.count < 0)
        return fail("pid {}, sharing the fd table, failed before it created its children", planned.entry->pid());
    kept.insert(kept.end(), told.fds, told.fds + told.count);
    return kept;
}

// Tells the parent (create_sharer) which descriptors of the shared table
// this process and its sharing children keep; count -1 when it failed.
void tell_parent(int& done_fd, const std::vector<int>& kept, bool failed)
{
    KeptFds told;
    told.count = failed || kept.size() > std::size(told.fds) ? -1 : static_cast<int>(kept.size());
    for (int i = 0; i < told.count; ++i)
        told.fds[i] = kept[static_cast<size_t>(i)];
    ssize_t written = ::write(done_fd, &told, sizeof(told));
    (void)written;   // a parent that sees nothing fails the restore
    done_fd = -1;
}

// Puts the image's files at their numbers (fds/fd_table.h), keeping cryo's
// own descriptors and those the children sharing this table keep.
Result<void> install_files(const TreePlan& plan, const ProcessPlan& process, std::vector<int*> keep,
                           std::vector<int>& kept_for_sharers)
{
    for (int& fd : kept_for_sharers)
        keep.push_back(&fd);
    // The image's numbers (and cryo's descriptors, moved above them) may be
    // past cryo's soft limit; the image's own limits are set afterwards.
    int highest = 0;
    for (const auto& entry : process.fd_table->fds())
        highest = std::max(highest, entry.fd());
    rlimit files {};
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < static_cast<rlim_t>(highest) + 64) {
        files.rlim_cur = files.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &files);
    }
    return fds::install_fds(*process.fd_table, *plan.files, plan.opened_files, std::move(keep));
}

// `done_fd`: for a process sharing its parent's table, where it tells the
// parent what it keeps (set to -1 once told).
Result<void> set_up(const TreePlan& plan, size_t index, int& report_fd, int& page_fd, std::vector<int>& ancestor_page_fds,
                    const std::vector<uint64_t>& parent_materialized, std::vector<uint64_t>& materialized, int& done_fd)
{
    const auto& process = plan.processes[index];
    const auto& core = *process.core;
    materialized = materialize_shared_memory(plan, index, parent_materialized);
    // Descriptors of this table that children sharing it keep.
    std::vector<int> kept_for_sharers;
    auto create = [&](size_t child) -> Result<void> {
        inherit_prefilled_only_by(plan, index, child);
        if (plan.processes[child].shares_parent_fd_table) {
            auto kept = TRY(create_sharer(plan, index, child, report_fd, materialized));
            kept_for_sharers.insert(kept_for_sharers.end(), kept.begin(), kept.end());
            return {};
        }
        TRY(create_process(plan, child, process.entry->ns_pids_size(), report_fd, materialized, nullptr));
        return {};
    };
    auto order = creation_order(plan, process);
    // It adopts the children of its session helpers when those exit (the
    // image says it was a sub-reaper: restore/sessions.h).
    if (std::ranges::any_of(order, [&](size_t child) { return plan.processes[child].session_helper; })
        && ::prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        return fail_errno("prctl(PR_SET_CHILD_SUBREAPER)");
    // Children born in the session this process was born in, before it
    // leaves it for its own.
    for (size_t child : order)
        if (plan.processes[child].before_parent_setsid)
            TRY(create(child));
    if (joins_session_late(plan, process)) {
        TRY(join_session_and_group(*process.entry));
        TRY(restore_controlling_terminal(plan, *process.entry));
    }
    for (size_t child : order)
        if (!plan.processes[child].before_parent_setsid)
            TRY(create(child));
    if (process.shares_parent_fd_table) {
        // The report pipe is one descriptor of the shared table: the parent
        // reports it too, and cryo closes each process's own.
        report_fd = TRY(copy_above(report_fd, above_the_image(plan, index)));
        kept_for_sharers.push_back(report_fd);
        tell_parent(done_fd, kept_for_sharers, false);
    } else {
        std::vector<int*> keep { &report_fd, &page_fd };
        for (int& fd : ancestor_page_fds)
            if (fd >= 0)
                keep.push_back(&fd);
        TRY_CTX(install_files(plan, process, std::move(keep), kept_for_sharers), "files");
    }
    unmap_prefilled_of_descendants(plan, index);
    inherit_prefilled_only_by(plan, index, index);   // its own: forkable again, as mapped
    // The path was read from outside, relative to cryo's root. The root
    // itself changes last, by an injected chroot() once memory is back
    // (restore_process_state): mapped files are opened by their paths in
    // cryo's root too.
    if (!core.cwd().empty() && !core.has_deleted_cwd() && ::chdir(core.cwd().c_str()) < 0)
        return fail_errno(fmt::format("chdir {}", core.cwd()));
    ::umask(core.umask());
    TRY_CTX(apply_limits(core), "resource limits");
    TRY(map_trampoline(plan.trampoline));
    return {};
}

// A helper that leads a session whose leader is gone creates its children
// in the session (they inherit what it inherited from its parent), then
// exits; its parent reaps it.
Result<void> create_session_members(const TreePlan& plan, size_t index, int report_fd,
                                    const std::vector<uint64_t>& parent_materialized)
{
    const auto& process = plan.processes[index];
    for (size_t child : creation_order(plan, process)) {
        inherit_prefilled_only_by(plan, index, child);
        TRY(create_process(plan, child, process.entry->ns_pids_size(), report_fd, parent_materialized, nullptr));
    }
    return {};
}

// Runs in the new process; never returns.
[[noreturn]] void run_restorer(const TreePlan& plan, size_t index, int report_fd, int sync_fd,
                               const std::vector<uint64_t>& parent_materialized, const SharedTableFds* shared)
{
    const auto& process = plan.processes[index];
    unmap_prefilled_of_others(plan, index);
    SetupReport report;
    report.pid = process.entry->pid();
    int page_fd = shared ? shared->page_fd : process.page_fd;
    std::vector<int> ancestor_page_fds = shared ? shared->ancestor_page_fds : process.ancestor_page_fds;
    // Its UTS and IPC namespaces before anything that lives in them.
    const image::ProcessEntry* parent = process.parent >= 0 ? plan.processes[static_cast<size_t>(process.parent)].entry : nullptr;
    auto result = plan.namespaces ? plan.namespaces->enter(*process.entry, parent) : Result<void> {};
    if (result && process.core)
        ns::restore_loginuid(*process.entry);
    if (result && process.core && plan.deleted_directories)
        result = plan.deleted_directories->enter(*process.core);
    // One whose children must be born in its parent's session joins its
    // own once it created them (set_up).
    bool join_now = !joins_session_late(plan, process);
    if (result && join_now)
        result = join_session_and_group(*process.entry);
    if (result && join_now)
        result = restore_controlling_terminal(plan, *process.entry);
    // The parent waits for this before it creates the next child.
    if (sync_fd >= 0)
        ::close(sync_fd);
    if (result && process.session_helper) {
        result = create_session_members(plan, index, report_fd, parent_materialized);
        if (result)
            ::_exit(0);
    }
    if (result && process.helper) {
        // Holds its process group until cryo kills it. It sends no report,
        // so it must not hold the pipe open: cryo sees the end of the pipe
        // when every restorer died.
        ::close(report_fd);
        for (;;)
            ::pause();
    }
    if (result && !process.core)
        become_zombie(*process.entry);
    std::vector<uint64_t> materialized;
    int done_fd = shared ? shared->done_fd : -1;
    if (result)
        result = set_up(plan, index, report_fd, page_fd, ancestor_page_fds, parent_materialized, materialized, done_fd);
    // A parent waiting for this sharing child must not wait forever.
    if (done_fd >= 0)
        tell_parent(done_fd, {}, true);
    report.materialized_count = static_cast<int>(materialized.size());
    std::copy(materialized.begin(), materialized.end(), report.materialized);
    if (!result) {
        report.error = result.error().code() ? result.error().code() : EINVAL;
        auto message = fmt::format("pid {}: {}", report.pid, result.error().message());
        std::memcpy(report.message, message.data(), std::min(message.size(), sizeof(report.message) - 1));
    }
    // Made by a session helper: dying with its parent only once the helper
    // exited and it was adopted (see create_process).
    if (process.parent >= 0 && plan.processes[static_cast<size_t>(process.parent)].session_helper) {
        while (::getppid() == plan.processes[static_cast<size_t>(process.parent)].entry->pid())
            ::usleep(200);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    }
    report.page_fd = page_fd;
    for (size_t i = 0; i < std::size(report.ancestor_page_fds); ++i)
        report.ancestor_page_fds[i] = i < ancestor_page_fds.size() ? ancestor_page_fds[i] : -1;
    report.report_fd = report_fd;
    ssize_t written = ::write(report_fd, &report, sizeof(report));
    if (report.error != 0 || written != sizeof(report))
        ::_exit(1);
    // cryo closes the report pipe (and the page file) by an injected call:
    // it may seize this process before a close() here would run.
    for (;;)
        ::pause();
}

// Why clone3() found `pid` taken, for the error: a process has it, or it
// is still the session or group id of a process (one outside the
// checkpoint that stayed in a session or group a process of the tree led,
// say). Looked for only once the restore failed.
std::string who_holds(pid_t pid)
{
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
        std::string name = entry.path().filename().string();
        pid_t other = 0;
        auto [end, parse_error] = std::from_chars(name.data(), name.data() + name.size(), other);
        if (parse_error != std::errc() || end != name.data() + name.size())
            continue;
        auto stat = proc::read_stat(other);
        if (!stat)
            continue;
        if (other == pid)
            return fmt::format("process {} ({}) has it: is the original still running?", pid, stat->comm);
        if (stat->session == pid || stat->pgrp == pid)
            return fmt::format("it is the {} id of pid {} ({}), which is not in the checkpoint and still runs",
                               stat->session == pid ? "session" : "process group", other, stat->comm);
    }
    return "is the original still running?";
}

// `parent_levels`: how many PID namespaces, from cryo's down, the creating
// process lives in. A process with more starts a new namespace; set_tid
// names its pid in each level, innermost first.
// `shared`: the child shares this process's fd table (CLONE_FILES), with
// these page files. No sync pipe then (one end closed by either side would
// be closed for both): create_sharer() waits on SharedTableFds::done_fd.
Result<pid_t> create_process(const TreePlan& plan, size_t index, int parent_levels, int report_fd,
                             const std::vector<uint64_t>& parent_materialized, const SharedTableFds* shared)
{
    const auto& entry = *plan.processes[index].entry;
    pid_t wanted = entry.pid();
    std::vector<pid_t> set_tid(entry.ns_pids().rbegin(), entry.ns_pids().rend());
    if (set_tid.empty())
        set_tid.push_back(wanted);
    int levels = static_cast<int>(set_tid.size());
    if (levels > parent_levels + 1 || levels < parent_levels)
        return fail("pid {}: {} PID namespace levels under a parent with {}: not supported", wanted, levels, parent_levels);
    int sync[2] { -1, -1 };
    if (!shared && ::pipe2(sync, O_CLOEXEC) < 0)
        return fail_errno("pipe");
    UniqueFd sync_read(sync[0]);
    UniqueFd sync_write(sync[1]);

    clone_args args {};
    args.exit_signal = SIGCHLD;
    args.flags = (levels > parent_levels ? CLONE_NEWPID : 0) | (shared ? CLONE_FILES : 0);
    args.set_tid = reinterpret_cast<uint64_t>(set_tid.data());
    args.set_tid_size = set_tid.size();
    long child = raw_clone3(&args);
    if (child < 0) {
        if (errno == EEXIST)
            return fail("pid {} is already in use: cannot restore pid {} ({})", wanted, wanted, who_holds(wanted));
        return fail_errno(fmt::format("clone3 with set_tid {}", wanted));
    }
    if (child == 0) {
        // Dying with its parent (cryo, or the restorer above) until cryo
        // seizes it; the image's own setting is restored later. A session
        // helper's child outlives it (run_restorer sets it once adopted).
        if (plan.processes[index].parent < 0
            || !plan.processes[static_cast<size_t>(plan.processes[index].parent)].session_helper)
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        sync_read.reset();
        run_restorer(plan, index, report_fd, sync_write.release(), parent_materialized, shared);
    }
    if (shared)
        return static_cast<pid_t>(child);
    sync_write.reset();
    char byte;
    while (::read(sync_read.get(), &byte, 1) < 0 && errno == EINTR) { }
    return static_cast<pid_t>(child);
}

Result<void> wait_until_exited(pid_t pid)
{
    for (int round = 0; round < 10'000; ++round) {
        auto stat = proc::read_stat(pid);
        if (!stat || stat->state == 'Z' || stat->state == 'X')
            return {};
        ::usleep(1000);
    }
    return fail("session helper {} did not exit", pid);
}

} // namespace

Result<NewTree> NewTree::create(const TreePlan& plan)
{
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) < 0)
        return fail_errno("pipe for the restorers' reports");
    UniqueFd report_read(pipe_fds[0]);
    UniqueFd report_write(pipe_fds[1]);

    NewTree tree;
    for (const auto& process : plan.processes)
        tree.m_created.push_back(process.entry->pid());
    int own_levels = 1;
    if (auto status = proc::read_status(::getpid()); status && !status->ns_pid.empty())
        own_levels = static_cast<int>(status->ns_pid.size());
    const std::vector<uint64_t> nothing_inherited;
    tree.m_root = TRY(create_process(plan, 0, own_levels, report_write.get(), nothing_inherited, nullptr));
    report_write.reset();

    // Every live process reports once; a process dying early closes its end
    // of the pipe, and when all are gone read() sees the end.
    size_t live = static_cast<size_t>(std::ranges::count_if(plan.processes, [](const auto& p) { return p.core; }));
    std::map<pid_t, std::pair<int, int>> page_fds;   // pid -> page file, report pipe
    std::map<pid_t, std::vector<uint64_t>> materialized;
    std::map<pid_t, std::vector<int>> ancestor_page_fds;
    while (page_fds.size() < live) {
        SetupReport report;
        ssize_t got = ::read(report_read.get(), &report, sizeof(report));
        if (got < 0 && errno == EINTR)
            continue;
        if (got != sizeof(report))
            return fail("a new process died while setting up the tree ({} of {} ready)", page_fds.size(), live);
        if (report.error != 0)
            return fail("{}", report.message);
        page_fds[report.pid] = { report.page_fd, report.report_fd };
        materialized[report.pid].assign(report.materialized, report.materialized + report.materialized_count);
        ancestor_page_fds[report.pid].assign(std::begin(report.ancestor_page_fds), std::end(report.ancestor_page_fds));
    }

    for (const auto& process : plan.processes) {
        if (!process.core)
            continue;
        pid_t pid = process.entry->pid();
        if (::ptrace(PTRACE_SEIZE, pid, nullptr, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL) < 0)
            return fail_errno(fmt::format("ptrace(SEIZE) new pid {}", pid));
        auto member = std::make_unique<Member>(Member { pid, ptrace::Tracee::adopt(pid), page_fds.at(pid).first,
                                                                 page_fds.at(pid).second, ancestor_page_fds[pid],
                                                                 materialized[pid] });
        TRY(member->tracee.interrupt());
        for (;;) {
            auto stop = TRY(member->tracee.wait_stop());
            if (stop.kind == ptrace::StopKind::EventStop)
                break;
            // A signal sent to the new process before the interrupt was
            // not sent to the program being restored: drop it.
            TRY(member->tracee.resume(PTRACE_CONT));
        }
        tree.m_members.push_back(std::move(member));
    }
    // Session helpers exit once they created their children, which their
    // parent then adopts: the tree has its parents only after that.
    for (const auto& process : plan.processes)
        if (process.session_helper)
            TRY(wait_until_exited(process.entry->pid()));
    TRY(tree.verify(plan));
    return tree;
}

// Checks that the new tree has the parents, sessions and groups of the
// image before anything else is done to it.
Result<void> NewTree::verify(const TreePlan& plan) const
{
    pid_t own_session = ::getsid(0);
    pid_t own_group = ::getpgid(0);
    std::set<pid_t> in_tree;
    for (const auto& process : plan.processes)
        in_tree.insert(process.entry->pid());
    for (const auto& process : plan.processes) {
        const auto& entry = *process.entry;
        auto stat = TRY_CTX(proc::read_stat(entry.pid()), "new pid {}", entry.pid());
        // Sessions and groups led from outside the tree are cryo's own now
        // (the root is restored into cryo's session and group).
        pid_t want_sid = in_tree.contains(entry.sid()) ? entry.sid() : own_session;
        pid_t want_pgid = in_tree.contains(entry.pgid()) ? entry.pgid() : own_group;
        if ((entry.ppid() != 0 && stat.ppid != entry.ppid()) || stat.session != want_sid || stat.pgrp != want_pgid)
            return fail("new pid {}: parent {} session {} group {}, expected parent {} session {} group {}", entry.pid(),
                        stat.ppid, stat.session, stat.pgrp, entry.ppid(), want_sid, want_pgid);
        if (process.shares_parent_fd_table
            && ::syscall(SYS_kcmp, entry.pid(), entry.ppid(), KCMP_FILES, 0, 0) != 0)
            return fail("new pid {}: its fd table is not its parent {}'s", entry.pid(), entry.ppid());
    }
    return {};
}

void NewTree::kill_helpers(const TreePlan& plan) const
{
    for (const auto& process : plan.processes)
        if (process.helper)
            kill_quietly(process.entry->pid());
}

NewTree::Member& NewTree::member(pid_t pid)
{
    for (auto& member : m_members)
        if (member->pid == pid)
            return *member;
    std::abort();   // the caller asks only for live processes of the plan
}

NewTree::~NewTree()
{
    if (m_released || m_root <= 1)
        return;
    for (auto& member : m_members)
        member->tracee.release();
    // Only processes this restore created are killed: a pid of the plan
    // may belong to an unrelated process (that is why clone3 failed).
    auto ours = [&](pid_t pid) {
        for (int depth = 0; depth < 64 && pid > 1; ++depth) {
            if (pid == m_root)
                return true;
            auto stat = proc::read_stat(pid);
            if (!stat)
                return false;
            if (stat->ppid == ::getpid())
                return true;   // cryo's own child or orphan: created by this restore
            pid = stat->ppid;
        }
        return false;
    };
    std::vector<pid_t> victims;
    for (pid_t pid : m_created)
        if (ours(pid))
            victims.push_back(pid);
    for (pid_t pid : victims | std::views::reverse)
        kill_quietly(pid);
    // Children first: a traced zombie is reported to cryo before its parent
    // may reap it, and a dying PID namespace init waits for its children.
    // The root is cryo's child; the others were traced by cryo or are
    // re-parented to it (a child subreaper while restoring).
    for (pid_t pid : victims | std::views::reverse)
        while (::waitpid(pid, nullptr, __WALL) < 0 && errno == EINTR) { }
}

} // namespace cryo::restore
