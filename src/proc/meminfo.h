// /proc/meminfo: the machine's memory counters, "Name:   123 kB" per line.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace cryo::proc {

// The value of the field `name` (without the colon) in bytes; nullopt when
// the text has no such field or it is not a number of kB.
std::optional<uint64_t> parse_meminfo_field(std::string_view text, std::string_view name);
// The same from this machine's /proc/meminfo.
std::optional<uint64_t> read_meminfo_field(std::string_view name);

} // namespace cryo::proc
