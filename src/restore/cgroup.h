// Putting restored processes back into their cgroup v2 cgroups.
//
// The dump records each process's path in the unified hierarchy
// (proc/cgroup.h). Before the tree is created, prepare() finds the cgroup2
// mount and each recorded cgroup's directory, creating a missing one (the
// log says so); a process whose cgroup is cryo's own needs nothing, since
// every process of the tree is created in cryo's cgroup. Once the tree
// exists, and before any of its code runs, apply() writes each pid to its
// cgroup's cgroup.procs; the threads made later while morphing inherit it.
// No cgroup2 mount, or no permission, is an error naming the pid and the
// cgroup; `restore --skip-cgroups` leaves every process in cryo's cgroup.
// Zombies stay in cryo's (the kernel moves no dead process). v1
// hierarchies are not restored.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "base/error.h"

namespace cryo::restore {

class CgroupPlan {
public:
    // `wanted`: each live process's pid and recorded cgroup path ("" when
    // the dump saw no unified hierarchy: left where it is created).
    static Result<CgroupPlan> prepare(const std::vector<std::pair<pid_t, std::string>>& wanted);
    CgroupPlan() = default;

    Result<void> apply() const;

private:
    struct Move {
        pid_t pid;
        std::string cgroup;       // as recorded
        std::string procs_file;   // MOUNT/PATH/cgroup.procs
    };
    std::vector<Move> m_moves;
};

} // namespace cryo::restore
