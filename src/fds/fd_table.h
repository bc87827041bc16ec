// A process's descriptor table: which fd numbers point at which open files.
//
// Several descriptors (dup(), inheritance across fork) can share one open
// file, and with it one offset and one set of status flags. The dump gives
// every distinct open file an id (kcmp(KCMP_FILE) tells whether two fds are
// the same open file) and each fd refers to an id; restore opens each file
// once and duplicates it to all its numbers, so the sharing comes back.
#pragma once

#include <sys/types.h>

#include <map>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "fds.pb.h"

namespace cryo::fds {

class FileRegistry {
public:
    // Records every descriptor of `pid` into `table`, adding its open files
    // to the registry. An fd of a kind cryo cannot dump yet is an error
    // naming the fd and its kind.
    Result<void> dump_process(pid_t pid, int pidfd, image::FdTable& table);
    const image::FileTable& files() const { return m_files; }

private:
    struct Known {
        pid_t pid;
        int fd;
        uint32_t id;
        dev_t device;
        ino_t inode;
    };
    Result<uint32_t> find_shared(pid_t pid, int fd, dev_t device, ino_t inode) const;

    std::vector<Known> m_known;
    image::FileTable m_files;
};

// Restore side, in cryo before any process exists: opens every file of the
// table once (descriptors keyed by file id). An error names the file.
// With `use_own_terminal` (--shell-job), every terminal the tree had open
// is replaced by cryo's controlling terminal.
Result<std::map<uint32_t, UniqueFd>> open_files(const image::FileTable& files, bool use_own_terminal = false);

// Restore side, run inside the new process: puts the files opened by
// open_files() (inherited, keyed by file id) at their fd numbers and closes
// everything else. The descriptors in `keep` (cryo's own, still needed) are
// first moved above every number the table uses and updated in place.
Result<void> install_fds(const image::FdTable& table, const image::FileTable& files, const std::map<uint32_t, int>& opened,
                         std::vector<int*> keep);

} // namespace cryo::fds
