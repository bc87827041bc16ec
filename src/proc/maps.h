// Parsers for /proc/PID/maps and /proc/PID/smaps.
//
// maps lists each mapping (VMA) with its range, protection, sharing, file
// offset, device, inode and path; smaps adds, per mapping, sizes and the
// VmFlags line (two-letter kernel flags such as "gd" for grows-down or "dc"
// for MADV_DONTFORK), which is where madvise() state becomes visible.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace cryo::proc {

struct MapsEntry {
    uint64_t start { 0 };
    uint64_t end { 0 };
    bool read { false };
    bool write { false };
    bool exec { false };
    bool shared { false };   // 's' in the permissions, else 'p'
    uint64_t offset { 0 };   // file offset in bytes
    uint32_t dev_major { 0 };
    uint32_t dev_minor { 0 };
    uint64_t inode { 0 };
    std::string path;        // as printed, without a " (deleted)" suffix; may be empty
    bool deleted { false };  // the path ended in " (deleted)"
};

struct SmapsEntry {
    MapsEntry map;
    uint64_t rss_kb { 0 };
    uint64_t anonymous_kb { 0 };
    uint64_t swap_kb { 0 };
    uint64_t anon_huge_kb { 0 };
    std::vector<std::string> vm_flags;  // e.g. {"rd", "wr", "mr", "gd"}

    bool has_flag(std::string_view flag) const;
};

// Parses the text of /proc/PID/maps. A malformed line is an error that
// quotes the line number.
Result<std::vector<MapsEntry>> parse_maps(std::string_view text);
// Parses the text of /proc/PID/smaps (header lines as in maps, followed by
// "Key: value kB" lines and a "VmFlags:" line per mapping).
Result<std::vector<SmapsEntry>> parse_smaps(std::string_view text);

Result<std::vector<MapsEntry>> read_maps(pid_t pid);
Result<std::vector<SmapsEntry>> read_smaps(pid_t pid);

} // namespace cryo::proc
