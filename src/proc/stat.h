// Parser for /proc/PID/stat (and /proc/PID/task/TID/stat).
//
// The line is "pid (comm) state ppid pgrp session ..." where comm may itself
// contain spaces and parentheses, so parsing starts after the last ')'. The
// fields from start_code on are the mm_struct values PR_SET_MM_MAP restores.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace cryo::proc {

struct ProcStat {
    pid_t pid { 0 };
    std::string comm;
    char state { '?' };
    pid_t ppid { 0 };
    pid_t pgrp { 0 };
    pid_t session { 0 };
    int tty_nr { 0 };
    uint64_t flags { 0 };
    int64_t priority { 0 };
    int64_t nice { 0 };
    int64_t num_threads { 0 };
    uint64_t start_time { 0 };   // clock ticks after boot
    uint64_t vsize { 0 };
    uint64_t rss_pages { 0 };
    uint64_t start_code { 0 };
    uint64_t end_code { 0 };
    uint64_t start_stack { 0 };
    int exit_signal { 0 };
    int processor { 0 };
    uint64_t start_data { 0 };
    uint64_t end_data { 0 };
    uint64_t start_brk { 0 };
    uint64_t arg_start { 0 };
    uint64_t arg_end { 0 };
    uint64_t env_start { 0 };
    uint64_t env_end { 0 };
    int exit_code { 0 };          // raw wait status, meaningful for zombies
};

Result<ProcStat> parse_stat(std::string_view text);
Result<ProcStat> read_stat(pid_t pid);
Result<ProcStat> read_thread_stat(pid_t pid, pid_t tid);

} // namespace cryo::proc
