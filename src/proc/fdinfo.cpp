// /proc/PID/fdinfo/FD parsing; see fdinfo.h.
//
// Every line is "key: value". The four common keys are decoded into fields;
// all lines, those four included, are also kept verbatim in order, because
// kind-specific lines repeat (one "tfd:" per epoll target, one "inotify wd:"
// per watch) and only the fd kind knows how to read them.
#include "proc/fdinfo.h"

#include <charconv>

#include "base/fd.h"
#include "proc/parse_util.h"

namespace cryo::proc {

using namespace detail;

std::optional<std::string_view> FdInfo::find(std::string_view key) const
{
    for (const auto& [name, value] : lines)
        if (name == key)
            return std::string_view(value);
    return std::nullopt;
}

namespace {

template <typename Number>
Result<Number> number_of(const FdInfo& info, std::string_view key, int base)
{
    auto text = info.find(key);
    if (!text)
        return fail("fdinfo has no '{}'", key);
    Number value = 0;
    auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), value, base);
    if (error != std::errc() || end != text->data() + text->size())
        return fail("fdinfo '{}' is not a number: '{}'", key, *text);
    return value;
}

} // namespace

Result<uint64_t> FdInfo::unsigned_number(std::string_view key, int base) const
{
    return number_of<uint64_t>(*this, key, base);
}

Result<int64_t> FdInfo::signed_number(std::string_view key, int base) const
{
    return number_of<int64_t>(*this, key, base);
}

Result<FdInfo> parse_fdinfo(std::string_view text)
{
    FdInfo info;
    int line_number = 0;
    for (auto line : split_lines(text)) {
        ++line_number;
        if (line.empty())
            continue;
        auto pair = split_key_value(line);
        if (!pair)
            return fail("fdinfo line {}: no ':' in '{}'", line_number, line.substr(0, 200));
        auto [key, value] = *pair;
        info.lines.emplace_back(std::string(key), std::string(value));
        auto first = split_fields(value);
        std::string_view head = first.empty() ? std::string_view {} : first[0];
        bool ok = true;
        if (key == "pos") {
            auto number = parse_number<uint64_t>(head);
            ok = number.has_value();
            info.pos = number.value_or(0);
        } else if (key == "flags") {
            auto number = parse_number<uint32_t>(head, 8);
            ok = number.has_value();
            info.flags = number.value_or(0);
        } else if (key == "mnt_id") {
            auto number = parse_number<int>(head);
            ok = number.has_value();
            info.mnt_id = number.value_or(0);
        } else if (key == "ino") {
            auto number = parse_number<uint64_t>(head);
            ok = number.has_value();
            info.inode = number.value_or(0);
        }
        if (!ok)
            return fail("fdinfo line {}: malformed value in '{}'", line_number, line.substr(0, 200));
    }
    return info;
}

Result<FdInfo> read_fdinfo(pid_t pid, int fd)
{
    auto path = fmt::format("/proc/{}/fdinfo/{}", pid, fd);
    return with_context(parse_fdinfo(TRY(read_text_file(path))), "{}", path);
}

} // namespace cryo::proc
