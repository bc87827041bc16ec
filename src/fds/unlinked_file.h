// memfds and deleted files outside the descriptor table: the halves of
// memfd.cpp and ghost.cpp that the memory mappings of such files use too
// (mem/unlinked_files.h), so that a file that is both open and mapped, or
// only mapped, is described, checked and made again the same way. (A
// memfd_secret file is made by mem/secret_memory.h for both.)
//
// Their content does not always come from files.img (a file that is only
// mapped keeps it in a page file), so the creators take the step that writes
// it as a function, run after the file has its size and before its mode and
// seals, which could forbid the writes.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <string>

#include "base/error.h"
#include "base/fd.h"
#include "fds.pb.h"

namespace cryo::fds {

// Writes the content into the new file `fd`.
using ContentWriter = std::function<Result<void>(int fd)>;

// Dump: name, size, mode and seals of the memfd `fd` (any descriptor of it;
// `stat` is its fstat), without content. A memfd of hugetlbfs is refused.
Result<image::MemfdData> describe_memfd(int fd, const struct stat& stat, const std::string& name);
// Restore: the memfd made again (sealable as needed), its content written by
// `write_content`, then its mode and seals.
Result<UniqueFd> create_memfd(const image::MemfdData& saved, const ContentWriter& write_content);

// Dump: path, size, mode and inode of the deleted file `stat`, without
// content. A deleted name of an inode that still has another link is
// refused: a copy would split the file in two.
Result<image::GhostFile> describe_deleted_file(const struct stat& stat, const std::string& path);
// Restore: the deleted file made again in its directory and unlinked at
// once, held open, its content written by `write_content`, then its mode.
Result<UniqueFd> create_deleted_file(const image::GhostFile& saved, const ContentWriter& write_content);

// Whether the open file `fd` is memfd_secret(2) memory: by the magic number
// of its filesystem, or when fstatfs fails by its /proc/PID/fd link `link`
// ("/secretmem (deleted)", which looks like a deleted file).
bool is_secret_memory(int fd, const std::string& link);

} // namespace cryo::fds
