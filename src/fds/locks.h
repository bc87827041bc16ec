// File locks: POSIX record locks (fcntl F_SETLK), flock() locks, open file
// description locks (F_OFD_SETLK) and leases (F_SETLEASE).
//
// The kernel lists the locks held through an open file in the "lock:" lines
// of /proc/PID/fdinfo/FD: a POSIX lock on every fd of its process that
// shares the open file it was taken through, an flock, OFD lock or lease on
// every fd (of any process) sharing the open file that owns it. The dump
// records each lock once, on the first fd it is seen on: per process for
// POSIX locks, per open file for the others. Blocked requests are not
// listed; the waiting call is restarted after restore and waits again.
//
// Restore takes every lock again by injecting fcntl() or flock() into the
// owning process, once its descriptors, memory and threads are back (late,
// since closing any fd of a file drops the process's POSIX locks on it):
// the lock's pid in /proc/locks is then the program's own. A lock that
// cannot be taken (someone else holds a conflicting one) fails the restore.
#pragma once

#include <sys/types.h>

#include <set>
#include <string_view>
#include <tuple>

#include "base/error.h"
#include "fds.pb.h"
#include "proc/fdinfo.h"

namespace cryo::ptrace {
class Injector;
class ScratchArea;
}

namespace cryo::fds {

// One "lock:" line of fdinfo, e.g.
// "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (the text after "lock:").
Result<image::FileLock> parse_lock_line(std::string_view text);

// The locks already recorded during one dump, so a lock shown on several
// fds (or, for those owned by an open file, in several processes) is kept
// once.
class LockRegistry {
public:
    // Adds the locks fdinfo shows on `fd` of `pid` (open file `file_id`) to
    // `table`. A lease being broken is refused.
    Result<void> dump_fd_locks(pid_t pid, int fd, uint32_t file_id, const proc::FdInfo& info, image::FdTable& table);

private:
    // (owner pid or 0 for locks owned by the open file, file id, kind,
    // write, start, length)
    std::set<std::tuple<pid_t, uint32_t, int, bool, uint64_t, uint64_t>> m_seen;
};

// Takes every lock of `table` again inside the restored process. `files`
// names the files in errors.
Result<void> restore_locks(const image::FdTable& table, const image::FileTable& files, ptrace::Injector& injector,
                           const ptrace::ScratchArea& scratch);

} // namespace cryo::fds
