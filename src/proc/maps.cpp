// /proc/PID/maps and smaps parsing; see maps.h.
//
// A maps line is "start-end perms offset major:minor inode   path"; the path
// is everything after the inode column (it may contain spaces) and ends in
// " (deleted)" when the file was unlinked. smaps repeats that line and adds
// "Key: value kB" lines and a "VmFlags:" line per mapping.
#include "proc/maps.h"

#include <algorithm>

#include "base/fd.h"
#include "proc/parse_util.h"

namespace cryo::proc {

using namespace detail;

namespace {

constexpr std::string_view kDeletedSuffix = " (deleted)";

std::optional<MapsEntry> parse_maps_line(std::string_view line)
{
    MapsEntry entry;
    size_t cursor = 0;
    auto next_field = [&]() -> std::string_view {
        while (cursor < line.size() && line[cursor] == ' ')
            ++cursor;
        size_t start = cursor;
        while (cursor < line.size() && line[cursor] != ' ')
            ++cursor;
        return line.substr(start, cursor - start);
    };
    auto range = next_field();
    auto perms = next_field();
    auto offset = next_field();
    auto device = next_field();
    auto inode = next_field();

    size_t dash = range.find('-');
    if (dash == std::string_view::npos || perms.size() != 4)
        return std::nullopt;
    auto start = parse_number<uint64_t>(range.substr(0, dash), 16);
    auto end = parse_number<uint64_t>(range.substr(dash + 1), 16);
    auto file_offset = parse_number<uint64_t>(offset, 16);
    size_t colon = device.find(':');
    if (!start || !end || !file_offset || colon == std::string_view::npos || *end < *start)
        return std::nullopt;
    auto major = parse_number<uint32_t>(device.substr(0, colon), 16);
    auto minor = parse_number<uint32_t>(device.substr(colon + 1), 16);
    auto inode_number = parse_number<uint64_t>(inode);
    if (!major || !minor || !inode_number)
        return std::nullopt;
    if ((perms[0] != 'r' && perms[0] != '-') || (perms[1] != 'w' && perms[1] != '-')
        || (perms[2] != 'x' && perms[2] != '-') || (perms[3] != 'p' && perms[3] != 's'))
        return std::nullopt;

    entry.start = *start;
    entry.end = *end;
    entry.read = perms[0] == 'r';
    entry.write = perms[1] == 'w';
    entry.exec = perms[2] == 'x';
    entry.shared = perms[3] == 's';
    entry.offset = *file_offset;
    entry.dev_major = *major;
    entry.dev_minor = *minor;
    entry.inode = *inode_number;

    std::string_view path = cursor < line.size() ? line.substr(cursor) : std::string_view {};
    while (!path.empty() && path.front() == ' ')
        path.remove_prefix(1);
    if (path.ends_with(kDeletedSuffix)) {
        entry.deleted = true;
        path.remove_suffix(kDeletedSuffix.size());
    }
    entry.path = std::string(path);
    return entry;
}

// smaps header lines start with a "hex-hex" range; attribute lines with
// "Key:". Deciding by shape rather than by a list of known keys keeps the
// parser working when the kernel adds attributes.
bool looks_like_header(std::string_view line)
{
    std::string_view range = line.substr(0, line.find(' '));
    size_t dash = range.find('-');
    if (dash == std::string_view::npos)
        return false;
    return parse_number<uint64_t>(range.substr(0, dash), 16).has_value()
        && parse_number<uint64_t>(range.substr(dash + 1), 16).has_value();
}

} // namespace

bool SmapsEntry::has_flag(std::string_view flag) const
{
    return std::ranges::find(vm_flags, flag) != vm_flags.end();
}

Result<std::vector<MapsEntry>> parse_maps(std::string_view text)
{
    std::vector<MapsEntry> entries;
    int number = 0;
    for (auto line : split_lines(text)) {
        ++number;
        if (line.empty())
            continue;
        auto entry = parse_maps_line(line);
        if (!entry)
            return fail("maps line {}: cannot parse '{}'", number, line.substr(0, 200));
        entries.push_back(std::move(*entry));
    }
    return entries;
}

Result<std::vector<SmapsEntry>> parse_smaps(std::string_view text)
{
    std::vector<SmapsEntry> entries;
    int number = 0;
    for (auto line : split_lines(text)) {
        ++number;
        if (line.empty())
            continue;
        if (looks_like_header(line)) {
            auto entry = parse_maps_line(line);
            if (!entry)
                return fail("smaps line {}: cannot parse '{}'", number, line.substr(0, 200));
            entries.push_back(SmapsEntry { .map = std::move(*entry) });
            continue;
        }
        size_t colon = line.find(':');
        if (colon == std::string_view::npos || entries.empty())
            return fail("smaps line {}: cannot parse '{}'", number, line.substr(0, 200));
        auto key = line.substr(0, colon);
        auto value = trim(line.substr(colon + 1));
        auto& entry = entries.back();
        if (key == "VmFlags") {
            for (auto flag : split_fields(value))
                entry.vm_flags.emplace_back(flag);
            continue;
        }
        auto fields = split_fields(value);
        if (fields.empty())
            continue;
        auto kilobytes = parse_number<uint64_t>(fields[0]);
        if (!kilobytes)
            continue;   // attributes that are not sizes (THPeligible, ProtectionKey, ...)
        if (key == "Rss")
            entry.rss_kb = *kilobytes;
        else if (key == "Anonymous")
            entry.anonymous_kb = *kilobytes;
        else if (key == "Swap")
            entry.swap_kb = *kilobytes;
        else if (key == "AnonHugePages")
            entry.anon_huge_kb = *kilobytes;
    }
    return entries;
}

Result<std::vector<MapsEntry>> read_maps(pid_t pid)
{
    auto path = fmt::format("/proc/{}/maps", pid);
    auto text = TRY(read_text_file(path));
    return with_context(parse_maps(text), "{}", path);
}

Result<std::vector<SmapsEntry>> read_smaps(pid_t pid)
{
    auto path = fmt::format("/proc/{}/smaps", pid);
    auto text = TRY(read_text_file(path));
    return with_context(parse_smaps(text), "{}", path);
}

} // namespace cryo::proc
