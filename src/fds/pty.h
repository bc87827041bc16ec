// Pseudo-terminal helpers shared with the character-device kind (which
// must leave these files to the pty kind) and with the restorer (which
// makes a restored pty the controlling terminal of its session).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <vector>

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
// True when `facts` is a pty slave whose master was closed: its node is
// gone from devpts (the link ends with " (deleted)").
bool orphan_pty_slave(const FdFacts& facts);

// A new open file of the slave of the restored pair whose master is
// `master` (TIOCGPTPEER), with `flags`; a locked pair is unlocked for the
// time of the open.
Result<UniqueFd> open_pty_slave(int master, int flags, const image::Pty& pair);

// Pairs whose queued bytes a dump took (reading them consumes them), with
// a copy of each master. put_back() (done by the destructor too) writes
// them back into the pairs, before the tree runs on; release() forgets
// them, when the tree is killed.
class PtyQueues {
public:
    PtyQueues() = default;
    PtyQueues(PtyQueues&&) noexcept = default;
    PtyQueues& operator=(PtyQueues&&) = delete;
    ~PtyQueues() { put_back(); }

    // Keeps `pty` (a master's record) if it holds queued bytes.
    void keep(int master, const image::Pty& pty);
    void put_back();
    void release() { m_pairs.clear(); }

private:
    struct Pair {
        UniqueFd master;
        image::Pty pty;
    };
    std::vector<Pair> m_pairs;
};

} // namespace cryo::fds
