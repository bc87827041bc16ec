// See cgroup.h.
#include "proc/cgroup.h"

#include "base/fd.h"
#include "proc/parse_util.h"

namespace cryo::proc {

std::optional<std::string> parse_cgroup_v2_path(std::string_view text)
{
    for (auto line : detail::split_lines(text))
        if (line.starts_with("0::"))
            return std::string(line.substr(3));
    return std::nullopt;
}

Result<std::string> read_process_cgroup(pid_t pid, const std::vector<pid_t>& tids)
{
    auto text = TRY(read_text_file(fmt::format("/proc/{}/cgroup", pid)));
    std::string path = parse_cgroup_v2_path(text).value_or("");
    for (pid_t tid : tids) {
        if (tid == pid)
            continue;
        auto thread_text = TRY(read_text_file(fmt::format("/proc/{}/task/{}/cgroup", pid, tid)));
        std::string thread_path = parse_cgroup_v2_path(thread_text).value_or("");
        if (thread_path != path)
            return fail("not supported: thread {} is in cgroup {}, its process in {} (threaded cgroups)", tid,
                        thread_path, path);
    }
    return path;
}

} // namespace cryo::proc
