// Working directories that were removed while a process stayed in them
// (zdtm cwd01, cwd02).
//
// A removed directory is empty and has no name, but the process still has
// it as its working directory: getcwd() fails, /proc/PID/cwd reads
// "PATH (deleted)". Before the tree is created, cryo makes one empty
// directory for each such directory of the checkpoint (processes that
// shared one share it again), at its old path if that is free and else at
// a temporary name beside it, with its mode and owner; keeps a descriptor
// of it and removes it. Each new process then enters it with fchdir()
// instead of chdir(PATH). What cannot come back: its inode number. The
// directory is made by fds::make_deleted_directory(), as a directory held
// open when it was removed is.
#pragma once

#include <map>
#include <string>
#include <utility>

#include "base/error.h"
#include "base/fd.h"
#include "core.pb.h"

namespace cryo::restore {

class DeletedDirectories {
public:
    // One directory per (device, inode) among the `cores` with a deleted
    // working directory.
    static Result<DeletedDirectories> create(const std::vector<const image::ProcessCore*>& cores);
    DeletedDirectories(DeletedDirectories&&) noexcept = default;

    // In the new process of `core`: enters its deleted working directory,
    // if it had one.
    Result<void> enter(const image::ProcessCore& core) const;

    // The directories, by the key under which open files of a directory
    // removed too find theirs (fds::deleted_directory_key): an open file
    // of the same directory is opened from it (zdtm cwd02).
    std::map<std::string, int> held() const;

private:
    DeletedDirectories() = default;
    std::map<std::pair<uint64_t, uint64_t>, UniqueFd> m_directories;
};

} // namespace cryo::restore
