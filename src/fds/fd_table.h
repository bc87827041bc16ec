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
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "fds.pb.h"
#include "fds/locks.h"
#include "fds/pty.h"
#include "net/tcp_repair.h"

namespace cryo::fds {

class FileRegistry {
public:
    // `externals`: ids of open files the user declared outside the tree
    // (`cryo dump --external`), as /proc/PID/fd shows them.
    explicit FileRegistry(uint64_t ghost_limit = 64ull << 20, const std::vector<std::string>& externals = {})
        : m_ghost_limit(ghost_limit)
    {
        for (const auto& id : externals)
            m_externals[id] = false;
    }
    // Records every descriptor of `pid` into `table`, adding its open files
    // to the registry. An fd of a kind cryo cannot dump yet is an error
    // naming the fd and its kind. `proc_pid`: the pid its /proc files are
    // read by (a live thread's once the leader exited, dump/freeze.h);
    // `pidfd` refers to a live thread too.
    Result<void> dump_process(pid_t pid, pid_t proc_pid, int pidfd, image::FdTable& table);
    const image::FileTable& files() const { return m_files; }
    // `dump --ext-unix-sk` (criu's option): every unix socket whose peer
    // is outside the tree counts as declared with --external.
    void treat_unix_peers_as_external() { m_unix_peers_external = true; }

    // --tcp-established: established TCP connections are dumped; their
    // sockets stay in repair mode until release_repaired_sockets() (right
    // before the tree is killed: they close without a packet) or until
    // leave_repair_mode() or the registry's end, which take them out of it
    // (before the tree runs on).
    void set_tcp_established(bool on) { m_tcp_established = on; }
    void release_repaired_sockets() { m_repaired.release(); }
    void leave_repair_mode() { m_repaired.leave(); }
    // Bytes queued in pty pairs were consumed to be saved: put back (by
    // put_back_pty_queues() or the registry's end) before the tree runs
    // on, forgotten (release_pty_queues()) when it is killed.
    void put_back_pty_queues() { m_pty_queues.put_back(); }
    void release_pty_queues() { m_pty_queues.release(); }
    // An --external id no descriptor of the tree referred to is an error
    // (most likely a typing mistake).
    Result<void> check_externals_used() const;
    // A file in flight on a unix socket, held by cryo: see
    // FdFacts::register_in_flight.
    Result<uint32_t> dump_in_flight(UniqueFd fd);

private:
    struct Known {
        pid_t pid;
        int fd;
        uint32_t id;
        dev_t device;
        ino_t inode;
    };
    // The id of the open file `fd` of `pid` shares, or 0 and where it goes
    // in its list of known files.
    Result<uint32_t> find_shared(pid_t pid, int fd, dev_t device, ino_t inode, size_t& position) const;
    // What every descriptor's facts share: the options and the registry's
    // own hooks.
    void fill_common_facts(FdFacts& facts);
    // Records the open file of `facts`, seen for the first time (it goes
    // at `position` of the known files with its inode), and gives its id;
    // `where` ("fd 3") opens its errors. A unix socket or an epoll file
    // `in_flight` is refused.
    Result<uint32_t> add_file(FdFacts& facts, size_t position, const std::string& where, bool in_flight = false);
    bool m_unix_peers_external { false };

    uint64_t m_ghost_limit;
    std::map<std::string, bool> m_externals;   // id -> seen
    // The open files seen so far, by device and inode, each list sorted by
    // kcmp's order of the kernel's open files (a total order), so finding
    // an fd's open file is a binary search: a scan of every known file made
    // a tree of 100 processes with 16 fds on one file take 1.3 million kcmp
    // calls (2 s).
    std::map<std::pair<dev_t, ino_t>, std::vector<Known>> m_known;
    image::FileTable m_files;
    LockRegistry m_locks;   // file locks recorded so far (fds/locks.h)
    bool m_tcp_established { false };
    net::RepairedSockets m_repaired;
    PtyQueues m_pty_queues;
    std::vector<UniqueFd> m_in_flight;   // cryo's copies of the files in flight
};

// Restore side, in cryo before any process exists: opens every file of the
// table once (descriptors keyed by file id). An error names the file.
// How the files are opened again: terminals replaced by cryo's own
// (--shell-job), open files replaced by descriptors cryo inherited
// (--inherit-fd fd[N]:ID, keyed by ID).
struct OpenOptions {
    bool use_own_terminal { false };
    bool check_files { true };
    bool tcp_established { false };   // --tcp-established
    std::map<std::string, int> inherited;
    // Descriptors cryo holds already that open files may be made from, by
    // their OpenContext::shared key (deleted working directories).
    std::map<std::string, int> shared;
    // Pids and tids of the tree (OpenContext::tree_ids).
    std::set<pid_t> tree_ids;
};

// The name by which --inherit-fd refers to an open file of the image:
// "pipe:[INODE]" and "socket:[INODE]" as /proc/PID/fd shows them at dump
// time, the path for files; for a file declared --external at dump, the id
// it was declared with.
std::string external_id(const image::OpenFile& file);

// Parses "fd[N]:ID" (the form criu uses).
Result<std::pair<int, std::string>> parse_inherit_fd(const std::string& text);

Result<std::map<uint32_t, UniqueFd>> open_files(const image::FileTable& files, const OpenOptions& options = {});

// Restore side, run inside the new process: puts the files opened by
// open_files() (inherited, keyed by file id) at their fd numbers and closes
// everything else. The descriptors in `keep` (cryo's own, still needed) are
// first moved above every number the table uses and updated in place.
Result<void> install_fds(const image::FdTable& table, const image::FileTable& files, const std::map<uint32_t, int>& opened,
                         std::vector<int*> keep);

} // namespace cryo::fds
