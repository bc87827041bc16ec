// /proc/PID/stat parsing; see stat.h. Field numbers below are those of
// proc(5), counted from 1 with pid as field 1 and comm as field 2.
#include "proc/stat.h"

#include "base/fd.h"
#include "proc/parse_util.h"

namespace cryo::proc {

using namespace detail;

Result<ProcStat> parse_stat(std::string_view text)
{
    size_t open = text.find('(');
    size_t close = text.rfind(')');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open)
        return fail("stat: cannot find the command name in '{}'", text.substr(0, 200));
    ProcStat stat;
    auto pid = parse_number<pid_t>(trim(text.substr(0, open)));
    if (!pid)
        return fail("stat: bad pid in '{}'", text.substr(0, 200));
    stat.pid = *pid;
    stat.comm = std::string(text.substr(open + 1, close - open - 1));

    // fields[0] is field 3 (state).
    auto fields = split_fields(trim(text.substr(close + 1)));
    // Linux 3.5 and later print 52 fields; exit_code (field 52) is the last
    // one cryo needs.
    if (fields.size() < 50)
        return fail("stat: only {} fields after the command name in '{}'", fields.size(),
                    text.substr(0, 300));
    if (fields[0].size() != 1)
        return fail("stat: bad state '{}'", fields[0].substr(0, 50));
    auto field = [&](int number) { return fields[static_cast<size_t>(number - 3)]; };
    // The first malformed field, reported once every field has been tried.
    int bad_field = 0;
    auto number = [&]<typename T>(int index, T& out) {
        auto value = parse_number<T>(field(index));
        if (value)
            out = *value;
        else if (bad_field == 0)
            bad_field = index;
    };
    stat.state = field(3)[0];
    number(4, stat.ppid);
    number(5, stat.pgrp);
    number(6, stat.session);
    number(7, stat.tty_nr);
    number(9, stat.flags);
    number(18, stat.priority);
    number(19, stat.nice);
    number(20, stat.num_threads);
    number(22, stat.start_time);
    number(23, stat.vsize);
    number(24, stat.rss_pages);
    number(26, stat.start_code);
    number(27, stat.end_code);
    number(28, stat.start_stack);
    number(38, stat.exit_signal);
    number(39, stat.processor);
    number(45, stat.start_data);
    number(46, stat.end_data);
    number(47, stat.start_brk);
    number(48, stat.arg_start);
    number(49, stat.arg_end);
    number(50, stat.env_start);
    number(51, stat.env_end);
    number(52, stat.exit_code);
    if (bad_field != 0)
        return fail("stat: field {} is not a number: '{}'", bad_field, field(bad_field).substr(0, 50));
    return stat;
}

Result<ProcStat> read_stat(pid_t pid)
{
    auto path = fmt::format("/proc/{}/stat", pid);
    return with_context(parse_stat(TRY(read_text_file(path))), "{}", path);
}

Result<ProcStat> read_thread_stat(pid_t pid, pid_t tid)
{
    auto path = fmt::format("/proc/{}/task/{}/stat", pid, tid);
    return with_context(parse_stat(TRY(read_text_file(path))), "{}", path);
}

} // namespace cryo::proc
