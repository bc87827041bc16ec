// /proc/PID/status parsing; see status.h. Unknown keys are ignored (the
// kernel adds new ones), known keys with malformed values are errors.
#include "proc/status.h"

#include "base/fd.h"
#include "proc/parse_util.h"

namespace cryo::proc {

using namespace detail;

namespace {

template <typename T>
bool parse_list(std::string_view value, std::vector<T>& out, int base = 10)
{
    out.clear();
    for (auto field : split_fields(value)) {
        auto number = parse_number<T>(field, base);
        if (!number)
            return false;
        out.push_back(*number);
    }
    return true;
}

} // namespace

Result<ProcStatus> parse_status(std::string_view text)
{
    ProcStatus status;
    int line_number = 0;
    for (auto line : split_lines(text)) {
        ++line_number;
        if (line.empty())
            continue;
        auto pair = split_key_value(line);
        if (!pair)
            return fail("status line {}: no ':' in '{}'", line_number, line.substr(0, 200));
        auto [key, value] = *pair;
        bool ok = true;
        auto set = [&]<typename T>(T& out, int base = 10) {
            auto fields = split_fields(value);
            auto number = fields.empty() ? std::nullopt : parse_number<T>(fields[0], base);
            if (number)
                out = *number;
            else
                ok = false;
        };
        auto set_four = [&](std::array<uint32_t, 4>& out) {
            std::vector<uint32_t> values;
            ok = parse_list(value, values) && values.size() == 4;
            if (ok)
                std::copy(values.begin(), values.end(), out.begin());
        };
        if (key == "Name")
            status.name = std::string(value);
        else if (key == "Umask") {
            set(status.umask, 8);
            status.has_umask = ok;
        } else if (key == "State")
            status.state = value.empty() ? '?' : value[0];
        else if (key == "Tgid")
            set(status.tgid);
        else if (key == "Pid")
            set(status.pid);
        else if (key == "PPid")
            set(status.ppid);
        else if (key == "TracerPid")
            set(status.tracer_pid);
        else if (key == "Uid")
            set_four(status.uids);
        else if (key == "Gid")
            set_four(status.gids);
        else if (key == "Groups")
            ok = parse_list(value, status.groups);
        else if (key == "NStgid")
            ok = parse_list(value, status.ns_tgid);
        else if (key == "NSpid")
            ok = parse_list(value, status.ns_pid);
        else if (key == "NSpgid")
            ok = parse_list(value, status.ns_pgid);
        else if (key == "NSsid")
            ok = parse_list(value, status.ns_sid);
        else if (key == "Threads")
            set(status.threads);
        else if (key == "SigPnd")
            set(status.sig_pending, 16);
        else if (key == "ShdPnd")
            set(status.shared_pending, 16);
        else if (key == "SigBlk")
            set(status.sig_blocked, 16);
        else if (key == "SigIgn")
            set(status.sig_ignored, 16);
        else if (key == "SigCgt")
            set(status.sig_caught, 16);
        else if (key == "CapInh")
            set(status.cap_inheritable, 16);
        else if (key == "CapPrm")
            set(status.cap_permitted, 16);
        else if (key == "CapEff")
            set(status.cap_effective, 16);
        else if (key == "CapBnd")
            set(status.cap_bounding, 16);
        else if (key == "CapAmb")
            set(status.cap_ambient, 16);
        else if (key == "NoNewPrivs") {
            int flag = 0;
            set(flag);
            status.no_new_privs = flag != 0;
        } else if (key == "Seccomp")
            set(status.seccomp_mode);
        else if (key == "Seccomp_filters")
            set(status.seccomp_filters);
        if (!ok)
            return fail("status line {}: malformed value in '{}'", line_number, line.substr(0, 200));
    }
    return status;
}

Result<ProcStatus> read_status(pid_t pid)
{
    auto path = fmt::format("/proc/{}/status", pid);
    return with_context(parse_status(TRY(read_text_file(path))), "{}", path);
}

Result<ProcStatus> read_thread_status(pid_t pid, pid_t tid)
{
    auto path = fmt::format("/proc/{}/task/{}/status", pid, tid);
    return with_context(parse_status(TRY(read_text_file(path))), "{}", path);
}

} // namespace cryo::proc
