// Pseudo-terminal helpers shared with the character-device kind (which
// must leave these files to the pty kind) and with the restorer (which
// makes a restored pty the controlling terminal of its session).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>

#include "base/error.h"
#include "base/fd.h"
#include "fds/file_kind.h"
#include "tty.pb.h"

namespace cryo::fds {

// /dev/ptmx (or a devpts instance's own ptmx node): device 5:2.
bool is_pty_master(const struct stat& st);
// A devpts slave, /dev/pts/N: majors 136 to 143.
bool is_pty_slave(const struct stat& st);
uint32_t pty_slave_index(dev_t rdev);
// True when `facts` is a pty slave whose master is open in a process of
// the tree being dumped (the processes this cryo has frozen); such a pair
// is dumped as a pair, any other slave is a terminal reopened by path. A
// /dev/tty opened while such a slave was the controlling terminal is that
// slave too (it comes back as /dev/pts/N).
bool pty_slave_with_master_in_tree(const FdFacts& facts);

// A new open file of the slave of the restored pair whose master is
// `master` (TIOCGPTPEER), with `flags`; a locked pair is unlocked for the
// time of the open.
Result<UniqueFd> open_pty_slave(int master, int flags, const image::Pty& pair);

} // namespace cryo::fds
