// Parser for /proc/PID/fdinfo/FD: "pos", "flags" (octal), "mnt_id", "ino"
// and kind-specific lines (eventfd-count, tfd, inotify wd, ...), kept as
// key/value pairs in order for the fd kinds that need them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace cryo::proc {

struct FdInfo {
    uint64_t pos { 0 };
    uint32_t flags { 0 };
    int mnt_id { 0 };
    uint64_t inode { 0 };
    // Every line as "key" -> "rest of the line, trimmed", in file order,
    // including the four above. Keys may repeat (one line per epoll target).
    std::vector<std::pair<std::string, std::string>> lines;

    std::optional<std::string_view> find(std::string_view key) const;
    // The value of `key` as a whole number in `base`; an error names the key
    // when it is missing or not a number.
    Result<uint64_t> unsigned_number(std::string_view key, int base = 10) const;
    Result<int64_t> signed_number(std::string_view key, int base = 10) const;
};

Result<FdInfo> parse_fdinfo(std::string_view text);
Result<FdInfo> read_fdinfo(pid_t pid, int fd);

} // namespace cryo::proc
