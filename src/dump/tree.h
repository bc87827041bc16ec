// Freezing a whole process tree.
//
// Starting at the root, each process is frozen (all its threads) and then
// its children are listed from /proc/PID/task/TID/children; a frozen process
// cannot fork any more, so once every process found is frozen the set is
// complete and stable. A child that already exited but was not reaped (a
// zombie) cannot be seized; it is recorded with its exit status so restore
// can recreate it as a zombie for its parent's waitpid().
//
// Sessions and process groups are checked here: cryo rebuilds them by
// having each restored process call setsid()/setpgid() before it creates
// its children, which covers a session or group led by the process itself,
// inherited from its parent, or led by another process of the tree; a group
// whose leader is gone is held by a temporary helper on restore. A session
// whose leader is gone is refused unless the parent shares it.
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/error.h"
#include "dump/freeze.h"
#include "tree.pb.h"

namespace cryo::dump {

class FrozenTree {
public:
    static Result<FrozenTree> freeze(pid_t root);

    // Live processes, parents before children.
    std::vector<FrozenProcess>& processes() { return m_processes; }
    // Every process, zombies included, parents before children.
    const image::ProcessTree& tree() const { return m_tree; }
    image::ProcessTree& mutable_tree() { return m_tree; }

    // SIGKILLs every process and waits until all are gone.
    Result<void> kill();

private:
    FrozenTree() = default;
    Result<void> check_sessions() const;

    std::vector<FrozenProcess> m_processes;
    image::ProcessTree m_tree;
};

} // namespace cryo::dump
