// See cgroup.h.
#include "restore/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "base/fd.h"
#include "fds/fsnotify.h"
#include "proc/cgroup.h"

namespace cryo::restore {

namespace {

constexpr const char* kSkipHint = "(restore with --skip-cgroups to leave the tree in cryo's cgroup)";

// The directory of the unified hierarchy's root cgroup as mounted here.
Result<std::string> cgroup2_root()
{
    auto mounts = TRY(fds::fsnotify::read_mounts());
    for (const auto& mount : mounts)
        if (mount.fs_type == "cgroup2" && mount.root == "/")
            return mount.mount_point;
    return fail("the cgroup v2 hierarchy is not mounted {}", kSkipHint);
}

// Makes the directory of `cgroup` under `root` (and its missing parents).
Result<void> make_cgroup(const std::string& root, const std::string& cgroup)
{
    std::string path = root;
    for (size_t start = 1; start < cgroup.size();) {
        size_t end = cgroup.find('/', start);
        if (end == std::string::npos)
            end = cgroup.size();
        path += "/" + cgroup.substr(start, end - start);
        start = end + 1;
        if (::mkdir(path.c_str(), 0755) == 0)
            spdlog::info("created the missing cgroup {} ({})", cgroup, path);
        else if (errno != EEXIST)
            return fail_errno(fmt::format("mkdir {} {}", path, kSkipHint));
    }
    return {};
}

} // namespace

Result<CgroupPlan> CgroupPlan::prepare(const std::vector<std::pair<pid_t, std::string>>& wanted)
{
    CgroupPlan plan;
    auto own_text = TRY_CTX(read_text_file("/proc/self/cgroup"), "cryo's own cgroup");
    std::string own = proc::parse_cgroup_v2_path(own_text).value_or("");
    std::string root;
    for (const auto& [pid, cgroup] : wanted) {
        if (cgroup.empty() || cgroup == own)
            continue;
        if (!cgroup.starts_with("/") || cgroup.find("/..") != std::string::npos)
            return fail("pid {}: malformed cgroup path '{}' in the image", pid, cgroup);
        if (root.empty())
            root = TRY_CTX(cgroup2_root(), "pid {}: cgroup {}", pid, cgroup);
        TRY_CTX(make_cgroup(root, cgroup), "pid {}: cgroup {}", pid, cgroup);
        plan.m_moves.push_back({ pid, cgroup, root + cgroup + "/cgroup.procs" });
    }
    return plan;
}

Result<void> CgroupPlan::apply() const
{
    for (const auto& move : m_moves) {
        auto fd = TRY_CTX(open_file(move.procs_file, O_WRONLY | O_CLOEXEC), "pid {}: put it in cgroup {} {}",
                          move.pid, move.cgroup, kSkipHint);
        TRY_CTX(write_all(fd.get(), std::to_string(move.pid), move.procs_file), "pid {}: put it in cgroup {} {}",
                move.pid, move.cgroup, kSkipHint);
        spdlog::debug("pid {}: in cgroup {}", move.pid, move.cgroup);
    }
    return {};
}

} // namespace cryo::restore
