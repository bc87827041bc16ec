// See golden.h. The text is normalised line by line with a short list of
// regular expressions (each one documented in golden/README.md); pids,
// tids and inode numbers become numbered placeholders in the order they
// first appear, so which process is whose parent still shows.
#include "golden.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <vector>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "harness.h"

namespace cryo::e2e {

namespace {

namespace pb = google::protobuf;

// Numbered placeholders: the first value seen becomes <P1>, the next <P2>...
class Labels {
public:
    explicit Labels(std::string prefix)
        : m_prefix(std::move(prefix))
    {
    }
    void add(const std::string& value)
    {
        if (!m_labels.contains(value))
            m_labels[value] = "<" + m_prefix + std::to_string(m_labels.size() + 1) + ">";
    }
    const std::string* find(const std::string& value) const
    {
        auto it = m_labels.find(value);
        return it == m_labels.end() ? nullptr : &it->second;
    }

private:
    std::string m_prefix;
    std::map<std::string, std::string> m_labels;
};

pb::Value parse_json(const std::string& json)
{
    pb::Value value;
    auto status = pb::util::JsonStringToMessage(json, &value);
    EXPECT_TRUE(status.ok()) << "not JSON: " << status.ToString() << "\n" << json;
    return value;
}

const pb::Value* member(const pb::Value& object, const std::string& key)
{
    if (object.kind_case() != pb::Value::kStructValue)
        return nullptr;
    auto it = object.struct_value().fields().find(key);
    return it == object.struct_value().fields().end() ? nullptr : &it->second;
}

std::string number_text(const pb::Value* value)
{
    return value && value->kind_case() == pb::Value::kNumberValue ? std::to_string(static_cast<long long>(value->number_value()))
                                                                   : "";
}

// The ids of the report: first every pid and tid in its order, then the
// groups and sessions that are not a process of the checkpoint (a leader
// that is gone). The group and session of the process running the test are
// outside the checkpoint and get their own placeholders (`outer`), as does
// 0 (a group or session outside the PID namespace); the parent of the root
// never shows in the text and is not numbered, so the numbering does not
// depend on where the test runs.
Labels pid_labels(const std::string& report_json, const OuterIds& outer)
{
    Labels labels("P");
    pb::Value report = parse_json(report_json);
    const auto* processes = member(report, "processes");
    if (!processes || processes->kind_case() != pb::Value::kListValue)
        return labels;
    for (const auto& process : processes->list_value().values()) {
        labels.add(number_text(member(process, "pid")));
        if (const auto* threads = member(process, "threads"); threads && threads->kind_case() == pb::Value::kListValue)
            for (const auto& thread : threads->list_value().values())
                labels.add(number_text(member(thread, "tid")));
    }
    for (const auto& process : processes->list_value().values())
        for (const char* key : { "pgid", "sid" })
            if (std::string number = number_text(member(process, key)); !number.empty() && number != "0"
                && number != std::to_string(outer.group) && number != std::to_string(outer.session))
                labels.add(number);
    return labels;
}

// Every match of `pattern` in `text`, group 1 given to `replace`.
std::string replace_each(const std::string& text, const std::regex& pattern,
                         const std::function<std::string(const std::smatch&)>& replace)
{
    std::string out;
    auto begin = text.cbegin();
    std::smatch match;
    auto flags = std::regex_constants::match_default;
    while (std::regex_search(begin, text.cend(), match, pattern, flags)) {
        flags = std::regex_constants::match_prev_avail;   // `^` only at the real start
        out.append(begin, match[0].first);
        out += replace(match);
        begin = match[0].second;
    }
    out.append(begin, text.cend());
    return out;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to)
{
    if (from.empty())
        return text;
    for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size())
        text.replace(at, from.size(), to);
    return text;
}

// Rows of the memory table backed by the victim's executable: their sizes
// change with the compiler and with every edit of the victim.
const std::regex& executable_row()
{
    static const std::regex row(R"(^(    <ADDR>-<ADDR> \S+) +\S+ +\S+(  <VICTIMS>/\S+)$)");
    return row;
}

bool is_kernel_mapping_row(const std::string& line)
{
    static const std::regex row(R"(^    <ADDR>-<ADDR> .*  \[(vvar|vvar_vclock|vdso|vsyscall)\]$)");
    return std::regex_match(line, row);
}

std::string normalise_line(std::string line, const Labels& pids, Labels& inodes, const OuterIds& outer)
{
    static const std::regex header(R"(^checkpoint (.*): format (\d+), cryo \S+, host \S+, kernel \S+, taken .*$)");
    static const std::regex totals(R"(^(\d+) files, [0-9.]+ MiB, checksums verified$)");
    static const std::regex range(R"(^    [0-9a-f]{12,16}-[0-9a-f]{12,16} )");
    static const std::regex stack_row(R"(^(    <ADDR>-<ADDR> \S+) +\S+ +\S+(  \[stack\])$)");
    // The tree drawing cuts a command line at 60 bytes: where depends on
    // the length of the build and temporary paths.
    static const std::regex cut_command(R"(^(\D*\d+ )\S.*\.\.\.(  \[[^\]]*\] pgid ))");
    static const std::regex memory(R"(^  memory: \d+ mappings, \S+ mapped, \S+ stored$)");
    static const std::regex cwd(R"(  cwd \S+)");
    static const std::regex log_position(R"((<TMP>/victim\.log \(pos )\d+)");
    static const std::regex inode(R"((pipe:\[|socket:\[|peer )(\d+))");
    static const std::regex dump_stats(R"(^dump statistics: frozen .*$)");
    static const std::regex restore_stats(R"(^last restore: total .*$)");
    static const std::regex phase(R"(^(  \S.*\S) +[0-9.]+ ms$)");
    // Where the text prints a pid or tid: the start of a tree row, after
    // "pgid", "sid", "process", "shared with", and in the thread list.
    static const std::regex pid_context(R"((^  |(?:├─|└─) |pgid |sid |process |shared with |threads: |\) )(\d+)\b)");
    static const std::regex outer_id(R"(\b(pgid|sid) (\d+)\b)");

    line = std::regex_replace(line, header, "checkpoint $1: format $2, cryo <VERSION>, host <HOST>, kernel <KERNEL>, taken <TIME>");
    line = std::regex_replace(line, totals, "$1 files, <MIB> MiB, checksums verified");
    line = std::regex_replace(line, range, "    <ADDR>-<ADDR> ");
    line = std::regex_replace(line, stack_row, "$1 <SIZE> <SIZE>$2");
    line = std::regex_replace(line, executable_row(), "$1 <SIZE> <SIZE>$2");
    line = std::regex_replace(line, cut_command, "$1<COMMAND>...$2");
    line = std::regex_replace(line, memory, "  memory: <N> mappings, <SIZE> mapped, <SIZE> stored");
    line = std::regex_replace(line, cwd, "  cwd <CWD>");
    line = std::regex_replace(line, log_position, "$1<POS>");
    line = std::regex_replace(line, dump_stats, "dump statistics: <NUMBERS>");
    line = std::regex_replace(line, restore_stats, "last restore: <NUMBERS>");
    line = std::regex_replace(line, phase, "$1 <MS> ms");
    line = replace_each(line, outer_id, [&](const std::smatch& match) {
        bool group = match[1].str() == "pgid";
        std::string value = match[2].str();
        if (value == "0" || value == std::to_string(group ? outer.group : outer.session))
            return match[1].str() + (group ? " <OUTER-PGID>" : " <OUTER-SID>");
        return match[0].str();
    });
    line = replace_each(line, inode, [&](const std::smatch& match) {
        if (match[2].str() == "0")
            return match[0].str();
        inodes.add(match[2].str());
        return match[1].str() + *inodes.find(match[2].str());
    });
    return replace_each(line, pid_context, [&](const std::smatch& match) {
        const std::string* label = pids.find(match[2].str());
        return match[1].str() + (label ? *label : match[2].str());
    });
}

void walk_structure(const pb::Value& value, const std::string& path, std::set<std::string>& lines)
{
    switch (value.kind_case()) {
    case pb::Value::kStructValue:
        lines.insert(path + ": object");
        for (const auto& [key, child] : value.struct_value().fields())
            walk_structure(child, path.empty() ? key : path + "." + key, lines);
        break;
    case pb::Value::kListValue:
        lines.insert(path + ": array");
        for (const auto& element : value.list_value().values())
            walk_structure(element, path + "[]", lines);
        break;
    case pb::Value::kNumberValue: lines.insert(path + ": number"); break;
    case pb::Value::kStringValue: lines.insert(path + ": string"); break;
    case pb::Value::kBoolValue: lines.insert(path + ": bool"); break;
    default: lines.insert(path + ": null"); break;
    }
}

} // namespace

std::string normalise_show_text(const std::string& text, const std::string& report_json, const GoldenPaths& paths)
{
    Labels pids = pid_labels(report_json, paths.outer);
    Labels inodes("I");
    std::string replaced = replace_all(replace_all(text, paths.temp_dir, "<TMP>"), paths.victim_dir, "<VICTIMS>");
    std::istringstream lines(replaced);
    std::string out;
    std::string line;
    // Rows of a memory table are sorted once normalised: where the kernel
    // places a mapping (and so the order of the rows) can change between
    // runs, and the addresses are gone anyway.
    std::vector<std::string> rows;
    auto flush_rows = [&] {
        std::ranges::sort(rows);
        for (const auto& row : rows)
            out += row + "\n";
        rows.clear();
    };
    while (std::getline(lines, line)) {
        line = normalise_line(line, pids, inodes, paths.outer);
        if (is_kernel_mapping_row(line))
            continue;
        if (line.starts_with("    <ADDR>-<ADDR> ")) {
            rows.push_back(line);
            continue;
        }
        flush_rows();
        out += line + "\n";
    }
    flush_rows();
    return out;
}

std::string json_structure(const std::string& json)
{
    std::set<std::string> lines;
    walk_structure(parse_json(json), "", lines);
    std::string out;
    for (const auto& line : lines)
        out += line + "\n";
    return out;
}

void expect_golden(const std::string& name, const std::string& actual)
{
    std::string path = std::string(CRYO_GOLDEN_DIR) + "/" + name;
    const char* update = std::getenv("CRYO_UPDATE_GOLDEN");
    if (update && std::string(update) == "1") {
        std::ofstream(path, std::ios::binary | std::ios::trunc) << actual;
        std::cerr << "wrote " << path << "\n";
        return;
    }
    ASSERT_TRUE(file_exists(path)) << "no golden file " << path
                                   << "; CRYO_UPDATE_GOLDEN=1 writes it. The output now:\n" << actual;
    std::string expected = read_file(path);
    if (expected == actual)
        return;
    std::istringstream want(expected), got(actual);
    std::string want_line, got_line;
    int number = 1;
    while (std::getline(want, want_line) && std::getline(got, got_line) && want_line == got_line)
        ++number;
    ADD_FAILURE() << name << " differs from the golden file " << path << " at line " << number << ":\n  expected: "
                  << (want ? want_line : "(end)") << "\n  actual:   " << (got ? got_line : "(end)")
                  << "\nThe whole output (CRYO_UPDATE_GOLDEN=1 writes it as the new golden file after review):\n"
                  << actual;
}

} // namespace cryo::e2e
