// See diff.h.
#include "inspect/diff.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "base/syscalls.h"
#include "core.pb.h"
#include "fds.pb.h"
#include "inspect/chain.h"
#include "inspect/memory.h"
#include "tree.pb.h"

namespace cryo::inspect {

namespace {

constexpr size_t kPagesPerBatch = 256;
constexpr size_t kListedRanges = 8;   // differing page ranges listed per mapping

struct Totals {
    int came { 0 };
    int went { 0 };
    int changed_processes { 0 };
    int mappings_with_page_changes { 0 };
    uint64_t pages_differ { 0 };
};

std::string file_path(const image::OpenFile& file)
{
    switch (file.details_case()) {
    case image::OpenFile::kRegular: return file.regular().path();
    case image::OpenFile::kCharDevice: return file.char_device().path();
    case image::OpenFile::kGhost: return file.ghost().path() + " (deleted)";
    case image::OpenFile::kPipe:
        return file.pipe().fifo_path().empty() ? fmt::format("pipe:[{}]", file.pipe().pipe_id()) : file.pipe().fifo_path();
    case image::OpenFile::kUnixSocket:
        return file.unix_socket().bound_path().empty() ? fmt::format("socket:[{}]", file.unix_socket().inode())
                                                       : file.unix_socket().bound_path();
    case image::OpenFile::kMemfd: return "memfd:" + file.memfd().name();
    default: return "";
    }
}

std::string describe_file(const image::OpenFile* file)
{
    if (!file)
        return "(open file missing from files.img)";
    std::string kind = image::FileKind_Name(file->kind());
    if (kind.starts_with("FILE_KIND_"))
        kind = kind.substr(10);
    std::ranges::transform(kind, kind.begin(), [](char c) { return static_cast<char>(std::tolower(c)); });
    std::string path = file_path(*file);
    return fmt::format("{}{}{} (pos {}, flags {:#o})", kind, path.empty() ? "" : " ", path, file->position(), file->flags());
}

std::string describe_vma(const image::Vma& vma)
{
    return fmt::format("{:x}-{:x} {} {}", vma.start(), vma.end(), protection_text(vma.prot(), vma.shared()),
                       vma.path().empty() ? "(anonymous)" : vma.path());
}

struct Side {
    const Checkpoint* checkpoint;
    std::vector<Checkpoint> ancestors;   // where its pages may be (incremental checkpoints)
    std::map<uint32_t, const image::OpenFile*> files;
    bool memory_only { false };          // a pre-dump: no open files to compare
};

// The pages that differ: their count, and the first kListedRanges merged
// [start, end) address ranges (only those are kept: a hostile image cannot
// make this grow).
class PageRanges {
public:
    void add(uint64_t page) { add_range(page, page + kPageSize); }
    void add_range(uint64_t start, uint64_t end)
    {
        m_pages += (end - start + kPageSize - 1) / kPageSize;
        if (m_count > 0 && m_last_end == start) {
            if (m_count <= kListedRanges)
                m_ranges.back().second = end;
        } else {
            if (++m_count <= kListedRanges)
                m_ranges.push_back({ start, end });
        }
        m_last_end = end;
    }
    uint64_t pages() const { return m_pages; }
    std::string text() const
    {
        std::string out;
        for (size_t i = 0; i < m_ranges.size(); ++i)
            out += fmt::format("{}{:x}-{:x}", i ? ", " : "", m_ranges[i].first, m_ranges[i].second);
        if (m_count > kListedRanges)
            out += fmt::format(", ... ({} ranges)", m_count);
        return out;
    }

private:
    std::vector<std::pair<uint64_t, uint64_t>> m_ranges;
    uint64_t m_count { 0 };      // ranges seen
    uint64_t m_last_end { 0 };
    uint64_t m_pages { 0 };
};

Result<void> compare_pages(const ProcessMemory& before, const ProcessMemory& after, uint64_t start, uint64_t end,
                           PageRanges& differ)
{
    std::vector<std::byte> old_bytes(kPagesPerBatch * kPageSize), new_bytes(kPagesPerBatch * kPageSize);
    std::vector<bool> old_known, new_known;
    for (uint64_t at = start; at < end;) {
        size_t length = std::min<uint64_t>(old_bytes.size(), end - at);
        TRY(before.read(at, std::span(old_bytes.data(), length), old_known));
        TRY(after.read(at, std::span(new_bytes.data(), length), new_known));
        for (size_t page = 0; page < length; page += kPageSize) {
            size_t size = std::min<size_t>(kPageSize, length - page);
            bool old_has = old_known[page], new_has = new_known[page];
            if (old_has != new_has || (old_has && std::memcmp(old_bytes.data() + page, new_bytes.data() + page, size) != 0))
                differ.add(at + page);
        }
        at += length;
    }
    return {};
}

// Pages are read only where at least one side stored them, so a huge
// reserved mapping with nothing stored costs nothing.
Result<PageRanges> differing_pages(const ProcessMemory& before, const ProcessMemory& after, uint64_t start, uint64_t end)
{
    using State = ProcessMemory::State;
    auto old_segments = before.segments(start, end);
    auto new_segments = after.segments(start, end);
    size_t i = 0, j = 0;
    PageRanges differ;
    for (uint64_t cursor = start; cursor < end && i < old_segments.size() && j < new_segments.size();) {
        while (i < old_segments.size() && old_segments[i].end <= cursor)
            ++i;
        while (j < new_segments.size() && new_segments[j].end <= cursor)
            ++j;
        if (i == old_segments.size() || j == new_segments.size())
            break;
        const auto& old_segment = old_segments[i];
        const auto& new_segment = new_segments[j];
        uint64_t stop = std::min(old_segment.end, new_segment.end);
        if (old_segment.state == State::Stored || new_segment.state == State::Stored)
            TRY(compare_pages(before, after, cursor, stop, differ));
        else if ((old_segment.state == State::Zero) != (new_segment.state == State::Zero))
            differ.add_range(cursor, stop);
        cursor = stop;
    }
    return differ;
}

Result<std::vector<std::string>> diff_memory(const Side& before, const Side& after, int pid, Totals& totals)
{
    std::vector<std::string> lines;
    auto old_memory = TRY(ProcessMemory::load(*before.checkpoint, pid, before.ancestors));
    auto new_memory = TRY(ProcessMemory::load(*after.checkpoint, pid, after.ancestors));
    std::map<uint64_t, const image::Vma*> old_vmas, new_vmas;
    for (const auto& vma : old_memory.vmas())
        old_vmas[vma.start()] = &vma;
    for (const auto& vma : new_memory.vmas())
        new_vmas[vma.start()] = &vma;
    for (const auto& [start, vma] : old_vmas)
        if (!new_vmas.contains(start))
            lines.push_back(fmt::format("  - mapping {}", describe_vma(*vma)));
    for (const auto& [start, vma] : new_vmas)
        if (!old_vmas.contains(start))
            lines.push_back(fmt::format("  + mapping {}", describe_vma(*vma)));
    for (const auto& [start, old_vma] : old_vmas) {
        auto found = new_vmas.find(start);
        if (found == new_vmas.end())
            continue;
        const image::Vma& new_vma = *found->second;
        std::vector<std::string> changes;
        if (old_vma->end() != new_vma.end())
            changes.push_back(fmt::format("end {:#x} -> {:#x}", old_vma->end(), new_vma.end()));
        if (old_vma->prot() != new_vma.prot() || old_vma->shared() != new_vma.shared())
            changes.push_back(fmt::format("{} -> {}", protection_text(old_vma->prot(), old_vma->shared()),
                                          protection_text(new_vma.prot(), new_vma.shared())));
        if (old_vma->path() != new_vma.path())
            changes.push_back(fmt::format("'{}' -> '{}'", old_vma->path(), new_vma.path()));
        if (old_vma->pgoff() != new_vma.pgoff())
            changes.push_back(fmt::format("file offset {:#x} -> {:#x}", old_vma->pgoff(), new_vma.pgoff()));
        if (old_vma->kind() != new_vma.kind())
            changes.push_back(fmt::format("{} -> {}", image::VmaKind_Name(old_vma->kind()), image::VmaKind_Name(new_vma.kind())));
        if (!changes.empty()) {
            std::string text;
            for (const auto& change : changes)
                text += (text.empty() ? "" : ", ") + change;
            lines.push_back(fmt::format("  ~ mapping {}: {}", describe_vma(new_vma), text));
        }
        uint64_t end = std::min(old_vma->end(), new_vma.end());
        auto differ = TRY(differing_pages(old_memory, new_memory, start, end));
        if (differ.pages() > 0) {
            lines.push_back(fmt::format("  ~ mapping {}: {} of {} pages differ: {}", describe_vma(new_vma), differ.pages(),
                                        (end - start) / kPageSize, differ.text()));
            totals.mappings_with_page_changes++;
            totals.pages_differ += differ.pages();
        }
    }
    return lines;
}

Result<std::vector<std::string>> diff_files(const Side& before, const Side& after, int pid)
{
    std::vector<std::string> lines;
    auto old_table = TRY(before.checkpoint->read<image::FdTable>(image::fdtable_name(pid), image::ImageKind::FdTable));
    auto new_table = TRY(after.checkpoint->read<image::FdTable>(image::fdtable_name(pid), image::ImageKind::FdTable));
    auto lookup = [](const Side& side, uint32_t id) -> const image::OpenFile* {
        auto it = side.files.find(id);
        return it == side.files.end() ? nullptr : it->second;
    };
    std::map<int, const image::FdEntry*> old_fds, new_fds;
    for (const auto& fd : old_table.fds())
        old_fds[fd.fd()] = &fd;
    for (const auto& fd : new_table.fds())
        new_fds[fd.fd()] = &fd;
    for (const auto& [number, entry] : old_fds)
        if (!new_fds.contains(number))
            lines.push_back(fmt::format("  - fd {}: {}", number, describe_file(lookup(before, entry->file_id()))));
    for (const auto& [number, entry] : new_fds)
        if (!old_fds.contains(number))
            lines.push_back(fmt::format("  + fd {}: {}", number, describe_file(lookup(after, entry->file_id()))));
    for (const auto& [number, old_entry] : old_fds) {
        auto found = new_fds.find(number);
        if (found == new_fds.end())
            continue;
        const auto* old_file = lookup(before, old_entry->file_id());
        const auto* new_file = lookup(after, found->second->file_id());
        std::vector<std::string> changes;
        if (!old_file || !new_file) {
            if (old_file != new_file)
                changes.push_back(fmt::format("{} -> {}", describe_file(old_file), describe_file(new_file)));
        } else {
            if (old_file->kind() != new_file->kind() || file_path(*old_file) != file_path(*new_file))
                changes.push_back(fmt::format("{} -> {}", describe_file(old_file), describe_file(new_file)));
            if (old_file->position() != new_file->position())
                changes.push_back(fmt::format("position {} -> {}", old_file->position(), new_file->position()));
            if (old_file->flags() != new_file->flags())
                changes.push_back(fmt::format("flags {:#o} -> {:#o}", old_file->flags(), new_file->flags()));
        }
        if (old_entry->close_on_exec() != found->second->close_on_exec())
            changes.push_back(found->second->close_on_exec() ? "close-on-exec set" : "close-on-exec cleared");
        if (!changes.empty()) {
            std::string text;
            for (const auto& change : changes)
                text += (text.empty() ? "" : ", ") + change;
            lines.push_back(fmt::format("  ~ fd {}: {}", number, text));
        }
    }
    return lines;
}

std::string tid_list(const std::vector<int>& tids)
{
    std::string text;
    for (int tid : tids)
        text += fmt::format("{}{}", text.empty() ? "" : " ", tid);
    return text;
}

Result<Side> load_side(const Checkpoint& checkpoint, Verify verify, image::FileTable& storage)
{
    Side side { &checkpoint, TRY(open_ancestors(checkpoint, verify)), {}, false };
    warn_if_deduped(checkpoint);
    side.memory_only = checkpoint.manifest() && checkpoint.manifest()->pre_dump();
    if (side.memory_only)
        return side;
    storage = TRY(checkpoint.read<image::FileTable>(std::string(image::kFileTableName), image::ImageKind::FileTable));
    for (const auto& file : storage.files())
        side.files[file.id()] = &file;
    return side;
}

} // namespace

Result<void> run_diff(const DiffOptions& options)
{
    auto before = TRY(Checkpoint::open(options.before, options.verify, options.key ? &*options.key : nullptr));
    auto after = TRY(Checkpoint::open(options.after, options.verify, options.key ? &*options.key : nullptr));
    auto old_tree = TRY(before.read<image::ProcessTree>(std::string(image::kTreeName), image::ImageKind::Tree));
    auto new_tree = TRY(after.read<image::ProcessTree>(std::string(image::kTreeName), image::ImageKind::Tree));
    image::FileTable old_files, new_files;
    Side old_side = TRY(load_side(before, options.verify, old_files));
    Side new_side = TRY(load_side(after, options.verify, new_files));

    std::map<int, const image::ProcessEntry*> old_processes, new_processes;
    for (const auto& entry : old_tree.processes())
        old_processes[entry.pid()] = &entry;
    for (const auto& entry : new_tree.processes())
        new_processes[entry.pid()] = &entry;

    fmt::print("--- {}\n+++ {}\n", options.before, options.after);
    if (old_side.memory_only || new_side.memory_only)
        fmt::print("(a pre-dump holds memory only: open files are not compared)\n");
    Totals totals;
    for (const auto& [pid, entry] : old_processes)
        if (!new_processes.contains(pid)) {
            fmt::print("- process {} ({}) went\n", pid, entry->comm());
            totals.went++;
        }
    for (const auto& [pid, entry] : new_processes)
        if (!old_processes.contains(pid)) {
            fmt::print("+ process {} ({}) came\n", pid, entry->comm());
            totals.came++;
        }
    for (const auto& [pid, old_entry] : old_processes) {
        auto found = new_processes.find(pid);
        if (found == new_processes.end())
            continue;
        const auto& new_entry = *found->second;
        std::vector<std::string> lines;
        if (old_entry->comm() != new_entry.comm())
            lines.push_back(fmt::format("  ~ name {} -> {}", old_entry->comm(), new_entry.comm()));
        if (old_entry->ppid() != new_entry.ppid() || old_entry->pgid() != new_entry.pgid() || old_entry->sid() != new_entry.sid())
            lines.push_back(fmt::format("  ~ parent/group/session {}/{}/{} -> {}/{}/{}", old_entry->ppid(), old_entry->pgid(),
                                        old_entry->sid(), new_entry.ppid(), new_entry.pgid(), new_entry.sid()));
        if (old_entry->state() != new_entry.state())
            lines.push_back(fmt::format("  ~ state {} -> {}", image::ProcessState_Name(old_entry->state()),
                                        image::ProcessState_Name(new_entry.state())));
        std::set<int> old_tids(old_entry->tids().begin(), old_entry->tids().end());
        std::set<int> new_tids(new_entry.tids().begin(), new_entry.tids().end());
        std::vector<int> gone, born;
        std::ranges::set_difference(old_tids, new_tids, std::back_inserter(gone));
        std::ranges::set_difference(new_tids, old_tids, std::back_inserter(born));
        if (!gone.empty())
            lines.push_back(fmt::format("  - threads {}", tid_list(gone)));
        if (!born.empty())
            lines.push_back(fmt::format("  + threads {}", tid_list(born)));
        bool alive = old_entry->state() != image::PROCESS_STATE_ZOMBIE && new_entry.state() != image::PROCESS_STATE_ZOMBIE;
        if (alive) {
            auto memory = TRY_CTX(diff_memory(old_side, new_side, pid, totals), "pid {}", pid);
            lines.insert(lines.end(), memory.begin(), memory.end());
            // A pre-dump holds memory only.
            if (!old_side.memory_only && !new_side.memory_only) {
                auto files = TRY_CTX(diff_files(old_side, new_side, pid), "pid {}", pid);
                lines.insert(lines.end(), files.begin(), files.end());
            }
        }
        if (lines.empty()) {
            fmt::print("  process {} ({}): no differences\n", pid, new_entry.comm());
            continue;
        }
        totals.changed_processes++;
        fmt::print("~ process {} ({})\n", pid, new_entry.comm());
        for (const auto& line : lines)
            fmt::print("{}\n", line);
    }
    fmt::print("summary: {} process(es) came, {} went, {} changed; {} page(s) differ in {} mapping(s)\n", totals.came,
               totals.went, totals.changed_processes, totals.pages_differ, totals.mappings_with_page_changes);
    return {};
}

} // namespace cryo::inspect
