// Mappings of memfds, of files deleted while mapped and of memfd_secret(2)
// files ("unlinked files").
//
// Such a file exists only in the processes: nothing can open it by a path on
// restore, so cryo carries its content and makes it again. A MAP_SHARED
// mapping of it shows the file itself (writes through the mapping are the
// file's content); a MAP_PRIVATE one shows the file plus the pages the
// process changed, which are stored with the process's other pages.
//
// Dump: each file is saved once per checkpoint (memfds keyed by inode,
// deleted files by inode and path, as their open-file kinds do). A file that
// a descriptor of the tree has open is in files.img already, and its
// mappings only refer to it. A file that is only mapped is reached through
// /proc/PID/map_files/START-END, described by the same functions as the
// open-file kinds (fds/unlinked_file.h), and its data (SEEK_DATA/SEEK_HOLE,
// so holes cost nothing) is appended to the page file of the first process
// that maps it, in whole pages, and listed in that mapping's UnlinkedFile.
// It goes into the page file rather than files.img because a mapped file is
// memory and can be large (shared buffers of hundreds of MiB): the page file
// has no size limit and is read in large chunks, while files.img is one
// protobuf message its reader refuses past 256 MiB. A deleted file's data is
// still bounded by --ghost-limit, as for open deleted files; a memfd's is
// not, like shared anonymous memory.
//
// memfd_secret memory that a descriptor of the tree holds is read whole by
// cryo through its copy of the descriptor and kept in files.img
// (fds/secret_memory.cpp); its mappings only refer to it, like a memfd's.
// Without a descriptor it can be read only by the processes that map it:
// each process copies the present pages of its secret mappings out itself,
// by injected calls (mem/secret_memory.h), and each page of a secret file is
// saved once for the tree, by the first mapping that has it; pages no
// mapping has present come back as zeros.
//
// Restore: before the tree exists, cryo takes each file from the open files
// (so an fd and the mappings share it) or makes it again from the page files
// (a secret file with memfd_secret(), filled through a mapping of it in
// cryo), then maps it in its own address space once per mapping of the
// image, with the mapping's offset, length, sharing and access (a read-only
// descriptor for a shared mapping that may not become writable), at
// addresses free in cryo and in every process of the image. The new
// processes inherit these "windows" by fork (secret memory too), so every
// process maps the very same file; each moves the windows of its own
// mappings into place with mremap() (which keeps the file, offset and flags)
// and unmaps the rest. A private mapping's changed pages are then filled
// from the page file like any others.
#pragma once

#include <sys/types.h>

#include <compare>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "fds.pb.h"
#include "image/reader.h"
#include "image/writer.h"
#include "mm.pb.h"
#include "ptrace/tracee.h"

namespace cryo::mem {

enum class UnlinkedKind { Memfd, DeletedFile, Secret };

// Which file a mapping of an unlinked file maps.
struct UnlinkedFileKey {
    UnlinkedKind kind { UnlinkedKind::Memfd };
    uint64_t inode { 0 };
    std::string path;   // deleted files only
    auto operator<=>(const UnlinkedFileKey&) const = default;
    static UnlinkedFileKey of(const image::Vma& vma);
    std::string describe() const;
};

// Dump half: one per dump, fed every process in tree order.
class UnlinkedFileDump {
public:
    // `files`: the open files of the tree, already dumped.
    // `deleted_file_limit`: --ghost-limit.
    UnlinkedFileDump(const image::FileTable& files, uint64_t deleted_file_limit)
        : m_files(&files), m_deleted_file_limit(deleted_file_limit) { }

    // Checks every mapping of an unlinked file in `vmas` of the process of
    // the frozen `leader` and saves the content of each file no descriptor
    // and no earlier mapping has saved, appending it to `pages` (the
    // process's page file). Secret memory is read by calls injected into
    // `leader`, which is left as it was found.
    Result<void> dump_process(ptrace::Tracee& leader, std::vector<image::Vma>& vmas, image::OutputFile& pages);

private:
    Result<void> dump_secrets(ptrace::Tracee& leader, std::vector<image::Vma>& vmas, image::OutputFile& pages);

    const image::FileTable* m_files;
    uint64_t m_deleted_file_limit;
    std::set<UnlinkedFileKey> m_saved;
    // Secret files: the page offsets already saved, by inode.
    std::map<uint64_t, std::set<uint64_t>> m_secret_pages;
};

// Restore half: the files held and mapped in cryo until the tree is
// released.
class UnlinkedFileWindows {
public:
    UnlinkedFileWindows() = default;
    UnlinkedFileWindows(UnlinkedFileWindows&& other) noexcept;
    UnlinkedFileWindows& operator=(UnlinkedFileWindows&& other) noexcept;
    UnlinkedFileWindows(const UnlinkedFileWindows&) = delete;
    UnlinkedFileWindows& operator=(const UnlinkedFileWindows&) = delete;
    ~UnlinkedFileWindows();

    // `all_vmas`: every VMA of every process of the image; `opened`: the
    // open files, by id, as fds::open_files() made them.
    static Result<UnlinkedFileWindows> prepare(const image::MemoryImage& all_vmas, const image::ImageReader& reader,
                                               const image::FileTable& files,
                                               const std::map<uint32_t, UniqueFd>& opened);

    // Where cryo mapped the file for `vma` (the same in every new process).
    Result<uint64_t> window_for(const image::Vma& vma) const;
    struct Range {
        uint64_t start;
        uint64_t end;
    };
    std::vector<Range> ranges() const;

private:
    struct WindowKey {
        UnlinkedFileKey file;
        uint64_t start;
        uint64_t end;
        uint64_t pgoff;
        bool shared;
        bool may_write;
        auto operator<=>(const WindowKey&) const = default;
        static WindowKey of(const image::Vma& vma);
    };
    void unmap_all();

    std::map<WindowKey, uint64_t> m_windows;   // -> address in cryo
    std::vector<UniqueFd> m_files;             // the files made again, held
};

} // namespace cryo::mem
