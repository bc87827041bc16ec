// Refuses processes in namespaces cryo does not restore, or sharing
// resources with their parent; finds fd tables shared with the parent
// (see namespaces.h).
#include "dump/namespaces.h"

#include <linux/kcmp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "proc/stat.h"

namespace cryo::dump {

namespace {

struct Kind {
    std::string_view file;   // under /proc/PID/ns
    std::string_view name;
};

constexpr std::array<Kind, 5> kUnsupported { {
    { "mnt", "mount" },
    { "net", "network" },
    { "cgroup", "cgroup" },
    { "user", "user" },
    { "time", "time" },
} };

} // namespace

Result<void> check_namespaces(pid_t pid)
{
    for (const auto& kind : kUnsupported) {
        std::string own_path = fmt::format("/proc/self/ns/{}", kind.file);
        std::string path = fmt::format("/proc/{}/ns/{}", pid, kind.file);
        struct stat own {}, target {};
        // A kernel without this kind of namespace has no file for it.
        if (::stat(own_path.c_str(), &own) < 0)
            continue;
        if (::stat(path.c_str(), &target) < 0)
            return fail_errno(fmt::format("pid {}: stat {}", pid, path));
        if (own.st_ino != target.st_ino || own.st_dev != target.st_dev)
            return fail("pid {}: it is in another {} namespace ({}:[{}]) than cryo ({}:[{}]): only PID, UTS and IPC "
                        "namespaces are restored yet, the restore would put it in cryo's",
                        pid, kind.name, kind.file, target.st_ino, kind.file, own.st_ino);
    }
    return {};
}

namespace {

Result<long> compare(pid_t pid, pid_t other, int type, std::string_view what)
{
    long order = ::syscall(SYS_kcmp, pid, other, type, 0, 0);
    if (order < 0)
        return fail_errno(fmt::format("pid {}: kcmp of {} with pid {}", pid, what, other));
    return order;
}

Result<void> check_shared_with_parent(pid_t pid, pid_t proc_pid, pid_t parent, pid_t parent_proc_pid)
{
    struct Shared {
        int type;
        std::string_view what;
        std::string_view flag;
    };
    constexpr std::array<Shared, 3> kShared { {
        { KCMP_VM, "its memory", "CLONE_VM (vfork)" },
        { KCMP_FS, "its working directory, root and umask", "CLONE_FS" },
        { KCMP_SIGHAND, "its signal handlers", "CLONE_SIGHAND" },
    } };
    for (const auto& shared : kShared) {
        if (TRY(compare(proc_pid, parent_proc_pid, shared.type, shared.what)) == 0)
            return fail("pid {}: it shares {} with its parent {} (clone with {} but not CLONE_THREAD): not supported, the "
                        "restore would give each its own copy",
                        pid, shared.what, parent, shared.flag);
    }
    return {};
}

// The process whose fd table `pid` has: itself, or the parent it shares
// the table with, or that one's.
pid_t table_owner(pid_t pid, const std::map<pid_t, pid_t>& parents, const std::set<pid_t>& sharing)
{
    while (sharing.contains(pid))
        pid = parents.at(pid);
    return pid;
}

// A table shared other than with the parent that made it cannot be made
// again by clone(CLONE_FILES) from that parent. Sorting the processes by
// kcmp's total order of fd tables puts those that share one side by side.
Result<void> check_fd_table_sharing(const std::map<pid_t, pid_t>& proc_pids, const std::map<pid_t, pid_t>& parents,
                                    const std::set<pid_t>& sharing)
{
    std::vector<pid_t> sorted;
    for (const auto& [pid, proc_pid] : proc_pids)
        sorted.push_back(pid);
    std::optional<Error> failed;
    std::ranges::sort(sorted, [&](pid_t a, pid_t b) {
        auto order = compare(proc_pids.at(a), proc_pids.at(b), KCMP_FILES, "its file descriptor table");
        if (!order && !failed)
            failed = order.error();
        return order && *order == 1;
    });
    if (failed)
        return std::unexpected(std::move(*failed));
    for (size_t i = 1; i < sorted.size(); ++i) {
        pid_t a = sorted[i - 1];
        pid_t b = sorted[i];
        if (TRY(compare(proc_pids.at(a), proc_pids.at(b), KCMP_FILES, "its file descriptor table")) == 0
            && table_owner(a, parents, sharing) != table_owner(b, parents, sharing))
            return fail("pid {} and pid {} share a file descriptor table, and neither is the parent that made the other "
                        "(clone with CLONE_FILES, then an exit in between): not supported, the restore would give each "
                        "its own copy",
                        a, b);
    }
    return {};
}

} // namespace

Result<std::set<pid_t>> check_shared_with_parents(const std::map<pid_t, pid_t>& proc_pids)
{
    std::map<pid_t, pid_t> parents;   // of the processes whose parent is in the tree
    for (const auto& [pid, proc_pid] : proc_pids) {
        pid_t parent = TRY(proc::read_stat(proc_pid)).ppid;
        if (proc_pids.contains(parent))
            parents[pid] = parent;
    }
    std::set<pid_t> sharing;
    for (const auto& [pid, parent] : parents) {
        TRY(check_shared_with_parent(pid, proc_pids.at(pid), parent, proc_pids.at(parent)));
        if (TRY(compare(proc_pids.at(pid), proc_pids.at(parent), KCMP_FILES, "its file descriptor table")) == 0)
            sharing.insert(pid);
    }
    TRY(check_fd_table_sharing(proc_pids, parents, sharing));
    return sharing;
}

} // namespace cryo::dump
