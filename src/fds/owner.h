// The owner of an open file (fcntl F_SETOWN_EX) and the signal it sends
// (F_SETSIG): who is told, by SIGIO or the chosen signal, that an O_ASYNC
// file became ready, and whose SIGURG a socket raises.
//
// Both belong to the open file, not to a descriptor, so the dump reads them
// from cryo's own copy of the file (taken with pidfd_getfd), without
// injecting anything. The owner is a process of the tree (or a thread or
// process group of it) that does not exist yet while cryo opens the files
// again; restore sets it on cryo's copy once the whole tree exists. The
// kernel records cryo's credentials as the ones that set it (they decide
// whether the owner may be signalled): root's, so signals still arrive.
//
// O_ASYNC given to open() shows in the status flags but does not turn
// signal-driven I/O on (only F_SETFL does, registering the file with the fd
// number that si_fd reports; on Linux 6.18 not even after F_SETFL turned it
// off and on again): files are opened again without it (reopen_flags) and
// restore sets it with F_SETFL injected into the first process that has
// the file, through its own fd.
#pragma once

#include <cstdint>
#include <map>
#include <set>

#include "base/error.h"
#include "base/fd.h"
#include "fds.pb.h"

namespace cryo::ptrace {
class Injector;
}

namespace cryo::fds {

// Fills `file.owner` from the open file `local_fd` when it has an owner or
// a signal.
Result<void> dump_owner(int local_fd, image::OpenFile& file);

// Sets the owner and signal of every open file of `files` that had them,
// on cryo's copies in `opened` (by file id).
Result<void> restore_owners(const image::FileTable& files, const std::map<uint32_t, UniqueFd>& opened);

// Turns O_ASYNC on again for the files of `table` that had it and are not
// in `done` yet (then added), through the process's own fds.
Result<void> restore_async(const image::FdTable& table, const image::FileTable& files, std::set<uint32_t>& done,
                           ptrace::Injector& injector);

} // namespace cryo::fds
