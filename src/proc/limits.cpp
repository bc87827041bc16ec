// /proc/PID/limits parsing; see limits.h.
#include "proc/limits.h"

#include <fmt/format.h>

#include "base/fd.h"
#include "proc/parse_util.h"

namespace cryo::proc {

namespace {

constexpr size_t kNameColumn = 26;

std::optional<rlim_t> parse_limit(std::string_view field)
{
    if (field == "unlimited")
        return RLIM_INFINITY;
    return detail::parse_number<rlim_t>(field);
}

} // namespace

std::optional<std::vector<rlimit>> parse_limits(std::string_view text)
{
    auto lines = detail::split_lines(text);
    if (lines.size() != RLIM_NLIMITS + 1 || !lines[0].starts_with("Limit "))
        return std::nullopt;
    std::vector<rlimit> limits;
    for (size_t i = 1; i < lines.size(); ++i) {
        if (lines[i].size() <= kNameColumn || !lines[i].starts_with("Max "))
            return std::nullopt;
        auto fields = detail::split_fields(lines[i].substr(kNameColumn));
        if (fields.size() < 2)
            return std::nullopt;
        auto soft = parse_limit(fields[0]);
        auto hard = parse_limit(fields[1]);
        if (!soft || !hard)
            return std::nullopt;
        limits.push_back({ .rlim_cur = *soft, .rlim_max = *hard });
    }
    return limits;
}

std::optional<std::vector<rlimit>> read_limits(pid_t pid)
{
    auto text = read_text_file(fmt::format("/proc/{}/limits", pid));
    if (!text)
        return std::nullopt;
    return parse_limits(*text);
}

} // namespace cryo::proc
