// Creating the processes that become the restored tree.
//
// cryo clones itself with clone3(set_tid) so the root gets its PID back;
// every new process, still running cryo's code, first joins its session
// (setsid) or process group (setpgid) (a session leader then takes back
// its controlling terminal when that is a pty pair of the image, and the
// foreground group gets the foreground), then creates its own children the
// same way (parents create their children, so getppid() is right and
// re-parented orphans come back under their new parent), then does what is
// simplest from the inside: it puts the checkpoint's open files at their
// descriptor numbers (cryo opened every file before cloning, so a file shared
// by several processes is one open file again), enters the saved root and
// working directory, sets the umask and the resource limits, and maps the
// trampoline page (`syscall; int3` followed by scratch space) through which
// cryo will drive it. It reports over a pipe and waits in pause() for cryo
// to seize it. A zombie is created the same way and exits at once with its
// saved status; its parent does not reap it.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "core.pb.h"
#include "fds.pb.h"
#include "mem/prefill.h"
#include "ns/namespaces.h"
#include "restore/deleted_cwd.h"
#include "ptrace/tracee.h"
#include "mm.pb.h"
#include "tree.pb.h"

namespace cryo::restore {

// The trampoline: one code page, then scratch pages for the arguments of
// injected calls (paths, iovec arrays, sigactions, the mm map).
inline constexpr uint64_t kTrampolineCodeSize = 4096;
inline constexpr uint64_t kScratchSize = 16 * 4096;
inline constexpr uint64_t kTrampolineSize = kTrampolineCodeSize + kScratchSize;
// The vDSO and vvar pages pass through a temporary slot this far above the
// trampoline when they move.
inline constexpr uint64_t kTemporarySlotOffset = 4ull << 20;
inline constexpr uint64_t kTrampolineWindow = 8ull << 20;

struct ProcessPlan {
    const image::ProcessEntry* entry { nullptr };
    const image::ProcessCore* core { nullptr };     // null for a zombie
    const image::FdTable* fd_table { nullptr };     // null for a zombie
    const image::MemoryImage* memory { nullptr };   // null for a zombie
    const image::PageMap* page_map { nullptr };     // null for a zombie
    int page_fd { -1 };                             // open in cryo, inherited
    // Incremental checkpoints: pages-PID.img of the Nth checkpoint up the
    // chain at [N - 1] (-1 where no run refers to it), inherited likewise.
    std::vector<int> ancestor_page_fds;
    int parent { -1 };                              // index of the parent, -1 for the root
    std::vector<size_t> children;                   // indexes into TreePlan::processes
    // A temporary helper, not in the image: it only holds a process group
    // whose leader is gone so that the group's members can join it; cryo
    // removes it before the tree runs.
    bool helper { false };
    // Created with CLONE_FILES, sharing its parent's fd table (the image's
    // ProcessEntry.shares_fd_table_with_parent). It installs no files: the
    // table's owner does, once every process sharing it created its own
    // children (restorer.cpp, create_sharer).
    bool shares_parent_fd_table { false };
    // A temporary helper, not in the image, that leads a session whose
    // leader is gone: it calls setsid() (it has the session's pid), creates
    // its children in it and exits; they are re-parented to its parent, a
    // child sub-reaper or PID namespace init, and the parent reaps it.
    bool session_helper { false };
    // Created by its parent before the parent calls setsid(): born in the
    // session the parent was born in (restore/sessions.h).
    bool before_parent_setsid { false };
};

struct TreePlan {
    std::vector<ProcessPlan> processes;             // [0] is the root
    const image::FileTable* files { nullptr };
    std::map<uint32_t, int> opened_files;           // file id -> descriptor in cryo
    uint64_t trampoline { 0 };
    // Memory cryo loaded at its final address (mem/prefill.h): each process
    // inherits by clone the part of it that belongs to its own branch of the
    // tree (the rest is MADV_DONTFORK while it is cloned), unmaps at once
    // anything else, and after creating its children what is not its own.
    std::vector<mem::PrefilledVma> prefilled;
    // The UTS and IPC namespaces of the checkpoint, entered by each new
    // process first thing (ns/namespaces.h); null when there are none.
    const ns::NamespaceSet* namespaces { nullptr };
    // Deleted working directories, entered by fchdir (restore/deleted_cwd.h).
    const DeletedDirectories* deleted_directories { nullptr };
};

// The created tree, every live process traced by cryo and stopped. Until
// release() every process is killed (and reaped) when this is dropped, so a
// failed restore leaves nothing behind.
class NewTree {
public:
    static Result<NewTree> create(const TreePlan& plan);
    NewTree(NewTree&&) noexcept = default;
    ~NewTree();

    struct Member {
        pid_t pid;
        ptrace::Tracee tracee;
        int child_page_fd;     // the page file's number inside the process
        int child_report_fd;   // the report pipe's number inside the process
        std::vector<int> child_ancestor_page_fds;   // as ProcessPlan::ancestor_page_fds, inside the process
        // Starts of the private VMAs the process's restorer already filled
        // with their final content, for its children to inherit.
        std::vector<uint64_t> materialized;
    };
    Member& member(pid_t pid);
    pid_t root() const { return m_root; }
    // Kills the helper processes; their parents reap them (restore injects
    // the wait4() into each parent).
    void kill_helpers(const TreePlan& plan) const;
    // Lets the processes live on (after they were detached).
    void release() { m_released = true; }

private:
    NewTree() = default;
    Result<void> verify(const TreePlan& plan) const;

    pid_t m_root { -1 };
    std::vector<pid_t> m_created;                   // every pid, zombies too
    std::vector<std::unique_ptr<Member>> m_members; // live processes
    bool m_released { false };
};

} // namespace cryo::restore
