// Creating the process that becomes the restored one.
//
// cryo clones itself with clone3(set_tid) so the new process gets the PID it
// had. The child, still running cryo's code, does what is simplest from the
// inside: it opens the checkpoint's files at their descriptor numbers, enters
// the saved root and working directory, sets the umask and the resource
// limits, and maps the trampoline page (`syscall; int3` followed by scratch
// space) through which cryo will drive it. It reports success or the reason
// of its failure over a pipe and then waits in pause() for cryo to seize it.
#pragma once

#include <sys/types.h>

#include <map>

#include "base/error.h"
#include "base/fd.h"
#include "core.pb.h"
#include "fds.pb.h"
#include "ptrace/tracee.h"

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

struct RestorerSetup {
    pid_t pid { 0 };
    const image::ProcessCore* core { nullptr };
    const image::FdTable* fd_table { nullptr };
    const std::map<uint32_t, const image::OpenFile*>* files { nullptr };
    uint64_t trampoline { 0 };
    int page_fd { -1 };   // the page file, open in cryo; inherited by the child
};

// A created process, traced by cryo and stopped. Until release() it is
// killed and reaped when dropped, so a failed restore leaves nothing behind.
class NewProcess {
public:
    static Result<NewProcess> create(const RestorerSetup& setup);
    NewProcess(NewProcess&& other) noexcept;
    ~NewProcess();

    pid_t pid() const { return m_pid; }
    ptrace::Tracee& tracee() { return m_tracee; }
    // The page file's descriptor number inside the child.
    int child_page_fd() const { return m_child_page_fd; }
    // Lets the process live on (after it was detached).
    void release() { m_pid = -1; }

private:
    NewProcess(pid_t pid, ptrace::Tracee tracee) : m_pid(pid), m_tracee(std::move(tracee)) { }
    pid_t m_pid;
    ptrace::Tracee m_tracee;
    int m_child_page_fd { -1 };
};

} // namespace cryo::restore
