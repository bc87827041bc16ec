// Noticing that a file changed between dump and restore.
//
// cryo does not copy the files a process has open or mapped into the
// checkpoint; it expects them to be there on restore. A library or a data
// file replaced in between would make the restored process misbehave in
// ways hard to trace, so the dump records size, mtime and a checksum of the
// first and last 4 KiB of each mapped file and of each file opened
// read-only, and the restore refuses a file that differs (unless told
// otherwise with --no-file-check). Files opened for writing are expected to
// change (a log the program appends to) and are not checked.
#pragma once

#include <string>

#include "base/error.h"
#include "fds.pb.h"

namespace cryo::fds {

Result<image::FileIdentity> identify_file(int fd, const std::string& what);
// Fails with a message naming the file and what changed.
Result<void> check_file_identity(int fd, const std::string& path, const image::FileIdentity& recorded);

} // namespace cryo::fds
