// Refuses processes in namespaces cryo does not restore, or sharing
// resources with their parent (see namespaces.h).
#include "dump/namespaces.h"

#include <linux/kcmp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <set>
#include <string_view>

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

Result<void> check_shared_with_parent(pid_t pid, pid_t parent)
{
    struct Shared {
        int type;
        std::string_view what;
        std::string_view flag;
    };
    constexpr std::array<Shared, 4> kShared { {
        { KCMP_VM, "its memory", "CLONE_VM (vfork)" },
        { KCMP_FILES, "its file descriptor table", "CLONE_FILES" },
        { KCMP_FS, "its working directory, root and umask", "CLONE_FS" },
        { KCMP_SIGHAND, "its signal handlers", "CLONE_SIGHAND" },
    } };
    for (const auto& shared : kShared) {
        long order = ::syscall(SYS_kcmp, pid, parent, shared.type, 0, 0);
        if (order < 0)
            return fail_errno(fmt::format("pid {}: kcmp with its parent {}", pid, parent));
        if (order == 0)
            return fail("pid {}: it shares {} with its parent {} (clone with {} but not CLONE_THREAD): not supported, the "
                        "restore would give each its own copy",
                        pid, shared.what, parent, shared.flag);
    }
    return {};
}

} // namespace

Result<void> check_shared_with_parents(const std::vector<pid_t>& pids)
{
    std::set<pid_t> tree(pids.begin(), pids.end());
    for (pid_t pid : pids) {
        pid_t parent = TRY(proc::read_stat(pid)).ppid;
        if (tree.contains(parent))
            TRY(check_shared_with_parent(pid, parent));
    }
    return {};
}

} // namespace cryo::dump
