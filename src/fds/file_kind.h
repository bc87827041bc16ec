// The interface every kind of open file implements, and the table of kinds.
//
// A process's descriptor table is dumped from outside: for each fd cryo takes
// a copy with pidfd_getfd(2), so it can fstat() and inspect the open file
// itself, and reads /proc/PID/fd/N (what it points at) and
// /proc/PID/fdinfo/N (flags, position, kind-specific state). Each kind says
// whether it recognises those facts, fills its part of an OpenFile message,
// and on restore opens an equivalent file inside the new process, before the
// process is turned into the image. Adding a kind means adding one file in
// src/fds/ and one line in the table in fd_table.cpp.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "fds.pb.h"
#include "tree.pb.h"
#include "proc/fdinfo.h"

namespace cryo::net {
class RepairedSockets;
}

namespace cryo::fds {

class PtyQueues;

// What cryo knows about one descriptor of the target while dumping it.
struct FdFacts {
    pid_t pid { 0 };
    int fd { -1 };
    int local_fd { -1 };     // cryo's own copy of the open file
    struct stat stat {};
    std::string link;        // readlink of /proc/PID/fd/N
    proc::FdInfo info;
    uint64_t ghost_limit { 64ull << 20 };   // --ghost-limit
    // `cryo dump --external ID` named this open file (its ID as
    // external_id() gives it: "socket:[INODE]", "pipe:[INODE]", a path):
    // what it connects to lies outside the tree on purpose.
    bool declared_external { false };
    // --tcp-established: established TCP connections are dumped, their
    // sockets left in repair mode in `repaired` (net/tcp_repair.h).
    bool tcp_established { false };
    net::RepairedSockets* repaired { nullptr };
    // Pty pairs whose queued bytes were taken, to put them back if the
    // tree runs on (fds/pty.h).
    PtyQueues* pty_queues { nullptr };
    // A deleted file met before through another name (a hard link deleted
    // too): the path its first open file was recorded with, so that both
    // come back as one file.
    std::string ghost_path_of_inode;
    // Files in flight on a unix socket (SCM_RIGHTS), whose copies a peek
    // at its queue put in cryo: records one as an open file of the
    // checkpoint (the registry keeps the descriptor) and gives its id.
    std::function<Result<uint32_t>(UniqueFd)> register_in_flight;
};

// State shared by the kinds while the files of a checkpoint are opened
// again (in cryo, before any process exists): objects several open files
// refer to, such as both ends of one pipe, keyed by the kind.
struct OpenContext {
    const image::FileTable* table { nullptr };
    // Pids and tids of the tree: a file of /proc/PID/ of one of them is
    // opened by its process once the tree exists (proc_path_owner()).
    std::set<pid_t> tree_ids;
    bool check_files { true };   // refuse files that changed since the dump
    bool tcp_established { false };   // --tcp-established: connections may be restored
    std::map<std::string, UniqueFd> shared;
    // The descriptor of the file with this id, opened now if it was not
    // yet (files in flight are sent along with queued messages): cryo keeps
    // owning it.
    std::function<Result<int>(uint32_t)> open_by_id;
};

class FileKind {
public:
    virtual ~FileKind() = default;
    // Short human name used in messages ("regular file", "pipe", ...).
    virtual std::string_view name() const = 0;
    virtual bool recognises(const FdFacts& facts) const = 0;
    // Fills the kind-specific part of `file` (id, flags and position are
    // filled by the caller); objects shared by several open files (a pipe's
    // data) go into `table`.
    virtual Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable& table) const = 0;
    // Opens the file again.
    virtual Result<UniqueFd> open(const image::OpenFile& file, OpenContext& context) const = 0;
    // Called once every file of the checkpoint is open, for what needs all
    // of them to exist (TCP connections leave repair mode).
    virtual Result<void> finish(OpenContext&) const { return {}; }
    virtual image::FileKind image_kind() const = 0;
};

// Kinds implemented in src/fds/*.cpp.
const FileKind& regular_file_kind();
const FileKind& char_device_kind();
const FileKind& directory_kind();
const FileKind& pipe_kind();
const FileKind& eventfd_kind();
const FileKind& signalfd_kind();
const FileKind& timerfd_kind();
const FileKind& memfd_kind();
const FileKind& ghost_file_kind();
const FileKind& epoll_kind();
const FileKind& unix_socket_kind();
const FileKind& inotify_kind();
const FileKind& fanotify_kind();
const FileKind& pidfd_kind();
const FileKind& pty_kind();
const FileKind& secret_memory_kind();
const FileKind& inet_socket_kind();

// epoll: target fd numbers resolved to open-file ids once the process's
// whole table is known (dump), and the registrations made again inside the
// restored process once its fds are at their numbers (restore).
Result<void> resolve_epoll_targets(pid_t pid, image::OpenFile& epoll, const image::FdTable& table);
Result<void> register_epoll_targets(int epoll_fd, const image::OpenFile& epoll, const image::FdTable& table);

// pidfds to live processes: the target of `file` as the process `owner`
// sees it (its pid in the owner's PID namespace); an error says why it
// cannot be restored (outside the tree, ...). check_pidfd_targets() runs
// that for every pidfd of the dumped tree, so the dump refuses early.
Result<pid_t> live_pidfd_target(const image::OpenFile& file, const image::ProcessTree& tree, pid_t owner);
Result<void> check_pidfd_targets(const image::FileTable& files, const std::vector<const image::FdTable*>& tables,
                                 const image::ProcessTree& tree);

// "pid P: fd N: " for the first descriptor of the dumped `tables` that has
// the open file `file_id`, to open an error message with; "" if none has.
inline std::string where_open(uint32_t file_id, const std::vector<const image::FdTable*>& tables)
{
    for (const auto* table : tables)
        for (const auto& entry : table->fds())
            if (entry.file_id() == file_id)
                return fmt::format("pid {}: fd {}: ", table->pid(), entry.fd());
    return {};
}

// Deleted files (ghost.cpp) other kinds refer to. find_deleted_file(): the
// first open file of the deleted file `inode` that had `path`, if the tree
// holds one. hold_deleted_file(): the descriptor cryo holds that file by
// during the restore (O_PATH), made again on first use.
const image::OpenFile* find_deleted_file(const image::FileTable& table, uint64_t inode, const std::string& path);
Result<int> hold_deleted_file(const image::GhostFile& ghost, OpenContext& context);

// inotify watches on deleted files, once every process of the tree is
// dumped: refuses one whose file no open file of the tree holds (only a
// mapping, a working directory or a process outside the tree does), since
// restore watches the deleted file made again for that open file. `tables`
// name the pid and fd in errors.
Result<void> check_deleted_watches(const image::FileTable& files, const std::vector<const image::FdTable*>& tables);

// Unix sockets, once every process of the tree is dumped: refuses a socket
// whose peer is outside the tree (unless declared with --external) and a
// pending connection from outside. `tables` name the pid and fd in errors.
Result<void> check_unix_socket_peers(const image::FileTable& files, const std::vector<const image::FdTable*>& tables);

// The data of a file as extents (SEEK_DATA/SEEK_HOLE), so holes cost
// nothing; more than `limit` bytes of data is an error. `fd` must be
// readable; `what` names the file in errors.
Result<std::vector<std::pair<uint64_t, std::string>>> read_extents(int fd, uint64_t size, uint64_t limit,
                                                                   const std::string& what);
// Reads the data of the target's file (through readable_copy()) into
// `extents`, as read_extents() does with `limit`, and refuses it when the
// memfd and deleted-file data already in `table` plus this one would make
// files.img too big to read back. `what` names the file ("memfd x").
Result<void> save_file_data(const FdFacts& facts, uint64_t size, uint64_t limit, const std::string& what,
                            const image::FileTable& table, google::protobuf::RepeatedPtrField<image::DataExtent>& extents);

// Refuses `bytes` more of file data when, with the memfd, deleted-file and
// memfd_secret data already in `table`, files.img would be too big to read
// back (save_file_data() checks this itself).
Result<void> check_file_data_budget(const image::FileTable& table, uint64_t bytes, const std::string& what);

// Writes extents back at their offsets.
Result<void> write_extents(int fd, const google::protobuf::RepeatedPtrField<image::DataExtent>& extents,
                           const std::string& what);
// The target's file opened again for reading through /proc/PID/fd/N: a
// new open file description, so seeking in it leaves the program's offset
// alone.
Result<UniqueFd> readable_copy(const FdFacts& facts);

// A new open file description of a file cryo holds open as `held` (a
// memfd, a deleted file): /proc/self/fd/HELD opened with the dumped flags,
// moved to the dumped offset.
Result<UniqueFd> reopen_held(int held, const image::OpenFile& file);

// A directory removed while open or while a process was in it, made again:
// an empty directory with this mode and owner at `path` (or beside it when
// that is taken), held open with O_PATH and removed. The key under which
// OpenContext::shared holds the one of a (device, inode).
Result<UniqueFd> make_deleted_directory(const std::string& path, uint32_t mode, uint32_t uid, uint32_t gid);
std::string deleted_directory_key(uint64_t device, uint64_t inode);

// The pid in a path under /proc/PID/ (or /proc/PID itself), if it is one
// of `tree_ids`: such a file cannot be opened before the tree exists again
// (zdtm child_opened_proc).
std::optional<pid_t> proc_path_owner(const std::string& path, const std::set<pid_t>& tree_ids);

// Flags used to open a file again: the access mode and status flags, never
// the creation flags (the file exists) or close-on-exec (set per fd).
int reopen_flags(uint32_t dumped_flags);
// Seeks a reopened file to its dumped position.
Result<void> restore_position(int fd, const image::OpenFile& file);

} // namespace cryo::fds
