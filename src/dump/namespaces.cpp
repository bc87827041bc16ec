// Refuses processes in namespaces cryo does not restore (see namespaces.h).
#include "dump/namespaces.h"

#include <sys/stat.h>

#include <array>
#include <string_view>

#include <fmt/format.h>

namespace cryo::dump {

namespace {

struct Kind {
    std::string_view file;   // under /proc/PID/ns
    std::string_view name;
};

constexpr std::array<Kind, 7> kUnsupported { {
    { "mnt", "mount" },
    { "net", "network" },
    { "uts", "UTS (hostname)" },
    { "ipc", "IPC (System V objects, POSIX message queues)" },
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
            return fail("pid {}: it is in another {} namespace ({}:[{}]) than cryo ({}:[{}]): only PID namespaces are "
                        "restored yet, the restore would put it in cryo's",
                        pid, kind.name, kind.file, target.st_ino, kind.file, own.st_ino);
    }
    return {};
}

} // namespace cryo::dump
