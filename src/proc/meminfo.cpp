// /proc/meminfo parsing; see meminfo.h.
#include "proc/meminfo.h"

#include "base/fd.h"
#include "proc/parse_util.h"

namespace cryo::proc {

std::optional<uint64_t> parse_meminfo_field(std::string_view text, std::string_view name)
{
    for (std::string_view line : detail::split_lines(text)) {
        auto field = detail::split_key_value(line);
        if (!field || field->first != name)
            continue;
        std::string_view value = field->second;
        if (!value.ends_with(" kB"))
            return std::nullopt;
        auto kib = detail::parse_number<uint64_t>(value.substr(0, value.size() - 3));
        if (!kib)
            return std::nullopt;
        return *kib * 1024;
    }
    return std::nullopt;
}

std::optional<uint64_t> read_meminfo_field(std::string_view name)
{
    auto text = read_text_file("/proc/meminfo");
    if (!text)
        return std::nullopt;
    return parse_meminfo_field(*text, name);
}

} // namespace cryo::proc
