// See memory.h. `cryo mem` prints (hexdump), finds (search) and copies out
// (extract) stored memory of a checkpoint.
#include "inspect/memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

#include "base/syscalls.h"
#include "image/validate.h"
#include "inspect/chain.h"
#include "tree.pb.h"

namespace cryo::inspect {

namespace {

// Largest user address on x86_64 with 5-level paging; runs and mappings
// beyond it are nonsense.
constexpr uint64_t kAddressLimit = 1ull << 57;
constexpr size_t kReadChunk = 1 << 20;
constexpr size_t kContextBytes = 16;
constexpr size_t kShownMatchBytes = 64;

int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

ProcessMemory::State gap_state(const image::Vma& vma)
{
    switch (vma.kind()) {
    case image::VMA_KIND_ANONYMOUS:
    case image::VMA_KIND_SHARED_ANONYMOUS:
        return ProcessMemory::State::Zero;
    case image::VMA_KIND_FILE_PRIVATE:
    case image::VMA_KIND_FILE_SHARED:
        return ProcessMemory::State::FileContent;
    case image::VMA_KIND_VDSO:
    case image::VMA_KIND_VVAR:
    case image::VMA_KIND_VVAR_VCLOCK:
    case image::VMA_KIND_VSYSCALL:
        return ProcessMemory::State::Kernel;
    default:
        return vma.path().starts_with('/') ? ProcessMemory::State::FileContent : ProcessMemory::State::Zero;
    }
}

std::string describe_vma(const image::Vma& vma)
{
    return fmt::format("{:x}-{:x} {} {}", vma.start(), vma.end(), protection_text(vma.prot(), vma.shared()),
                       vma.path().empty() ? "(anonymous)" : vma.path());
}

// Why a range without stored pages reads the way it does.
std::string describe_gap(const ProcessMemory::Segment& segment)
{
    switch (segment.state) {
    case ProcessMemory::State::Zero:
        return "not stored: anonymous memory never written, reads as zeros";
    case ProcessMemory::State::FileContent:
        return fmt::format("not stored: unmodified file page, the content of {} at offset {:#x} (not in the checkpoint)",
                           segment.vma->path(), segment.vma->pgoff() + (segment.start - segment.vma->start()));
    case ProcessMemory::State::Kernel:
        return fmt::format("not stored: {} is provided by the kernel", segment.vma->path());
    case ProcessMemory::State::Unmapped:
        return "not mapped";
    case ProcessMemory::State::Stored:
        break;
    }
    return "stored";
}

char printable(std::byte byte)
{
    auto c = static_cast<unsigned char>(byte);
    return c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '.';
}

// Classic 16-bytes-per-line hexdump, lines aligned to 16-byte addresses;
// bytes outside what was added are left blank.
class HexPrinter {
public:
    void add(uint64_t address, std::span<const std::byte> data)
    {
        for (size_t i = 0; i < data.size(); ++i) {
            uint64_t at = address + i;
            if ((at & ~15ull) != m_line || !m_active) {
                flush();
                m_line = at & ~15ull;
                m_active = true;
                m_bytes.fill(-1);
            }
            m_bytes[at & 15] = static_cast<int>(data[i]);
        }
    }
    void flush()
    {
        if (!m_active)
            return;
        std::string hex, ascii;
        for (size_t i = 0; i < 16; ++i) {
            hex += m_bytes[i] < 0 ? "   " : fmt::format("{:02x} ", m_bytes[i]);
            if (i == 7)
                hex += ' ';
            ascii += m_bytes[i] < 0 ? ' ' : printable(static_cast<std::byte>(m_bytes[i]));
        }
        fmt::print("{:012x}  {} |{}|\n", m_line, hex, ascii);
        m_active = false;
    }

private:
    uint64_t m_line { 0 };
    bool m_active { false };
    std::array<int, 16> m_bytes {};
};

std::string hex_bytes(std::span<const std::byte> data, const std::vector<bool>& known, size_t from)
{
    std::string out;
    for (size_t i = 0; i < data.size(); ++i)
        out += known[from + i] ? fmt::format("{:02x} ", static_cast<unsigned>(data[i])) : "?? ";
    if (!out.empty())
        out.pop_back();
    return out;
}

std::string ascii_bytes(std::span<const std::byte> data, const std::vector<bool>& known, size_t from)
{
    std::string out;
    for (size_t i = 0; i < data.size(); ++i)
        out += known[from + i] ? printable(data[i]) : '?';
    return out;
}

Result<std::vector<int>> process_pids(const Checkpoint& checkpoint)
{
    auto tree = TRY(checkpoint.read<image::ProcessTree>(std::string(image::kTreeName), image::ImageKind::Tree));
    std::vector<int> pids;
    for (const auto& entry : tree.processes())
        if (entry.state() != image::PROCESS_STATE_ZOMBIE)
            pids.push_back(entry.pid());
    return pids;
}

Result<void> print_hexdump(const ProcessMemory& memory, uint64_t start, uint64_t end)
{
    std::vector<std::byte> buffer(64 << 10);
    const image::Vma* current = nullptr;
    HexPrinter printer;
    for (const auto& segment : memory.segments(start, end)) {
        if (segment.vma && segment.vma != current) {
            printer.flush();
            current = segment.vma;
            fmt::print("-- mapping {}\n", describe_vma(*current));
        }
        if (segment.state != ProcessMemory::State::Stored) {
            printer.flush();
            fmt::print("{:012x}-{:012x}  {}\n", segment.start, segment.end, describe_gap(segment));
            continue;
        }
        if (segment.ancestor > 0) {
            printer.flush();
            fmt::print("{:012x}-{:012x}  stored in an earlier checkpoint of the chain: {}\n", segment.start, segment.end,
                       memory.page_file_path(segment.ancestor));
        }
        for (uint64_t at = segment.start; at < segment.end;) {
            size_t chunk = std::min<uint64_t>(buffer.size(), segment.end - at);
            auto piece = std::span(buffer.data(), chunk);
            TRY(memory.read_stored(segment.ancestor, segment.file_offset + (at - segment.start), piece));
            printer.add(at, piece);
            at += chunk;
        }
    }
    printer.flush();
    return {};
}

Result<void> extract(const ProcessMemory& memory, uint64_t start, uint64_t end, const std::string& output)
{
    UniqueFd fd = TRY(open_file(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    std::vector<std::byte> buffer(kReadChunk);
    uint64_t stored = 0;
    std::string gaps;
    for (const auto& segment : memory.segments(start, end)) {
        if (segment.state != ProcessMemory::State::Stored) {
            gaps += fmt::format("  {:012x}-{:012x}  {}\n", segment.start, segment.end, describe_gap(segment));
            continue;
        }
        for (uint64_t at = segment.start; at < segment.end;) {
            size_t chunk = std::min<uint64_t>(buffer.size(), segment.end - at);
            auto piece = std::span(buffer.data(), chunk);
            TRY(memory.read_stored(segment.ancestor, segment.file_offset + (at - segment.start), piece));
            TRY(pwrite_all(fd.get(), piece, at - start, output));
            at += chunk;
        }
        stored += segment.end - segment.start;
    }
    // Parts not stored stay holes: they read as zeros.
    if (::ftruncate(fd.get(), static_cast<off_t>(end - start)) < 0)
        return fail_errno(fmt::format("truncate {}", output));
    fmt::print("pid {}: {:x}-{:x} ({} bytes, {} of them stored) written to {}\n", memory.pid(), start, end, end - start,
               stored, output);
    if (!gaps.empty())
        fmt::print("zeros in the file where nothing is stored:\n{}", gaps);
    return {};
}

Result<void> print_matches(const Checkpoint& checkpoint, std::span<const Checkpoint> ancestors, const MemOptions& options,
                           std::span<const std::byte> pattern)
{
    std::vector<int> pids;
    if (options.pid)
        pids.push_back(*options.pid);
    else
        pids = TRY(process_pids(checkpoint));
    size_t total = 0;
    for (int pid : pids) {
        auto memory = TRY(ProcessMemory::load(checkpoint, pid, ancestors));
        auto matches = TRY(search_memory(memory, pattern, options.max_matches - total));
        for (const auto& match : matches) {
            fmt::print("pid {} address {:#x} in {}\n", match.pid, match.address,
                       match.vma ? describe_vma(*match.vma) : "no mapping (a stored run outside every mapping)");
            size_t before = std::min<uint64_t>(kContextBytes, match.address);
            size_t shown = std::min(pattern.size(), kShownMatchBytes);
            std::vector<std::byte> context(before + shown + kContextBytes);
            std::vector<bool> known;
            TRY(memory.read(match.address - before, context, known));
            auto data = std::span<const std::byte>(context);
            fmt::print("  before {:#014x}: {}  |{}|\n", match.address - before, hex_bytes(data.subspan(0, before), known, 0),
                       ascii_bytes(data.subspan(0, before), known, 0));
            fmt::print("  match  {:#014x}: {}{}  |{}|\n", match.address, hex_bytes(data.subspan(before, shown), known, before),
                       pattern.size() > shown ? " ..." : "", ascii_bytes(data.subspan(before, shown), known, before));
            fmt::print("  after  {:#014x}: {}  |{}|\n", match.address + pattern.size(),
                       hex_bytes(data.subspan(before + shown, kContextBytes), known, before + shown),
                       ascii_bytes(data.subspan(before + shown, kContextBytes), known, before + shown));
        }
        total += matches.size();
        if (total >= options.max_matches) {
            fmt::print("stopped after {} matches (--max-matches)\n", total);
            return {};
        }
    }
    fmt::print("{} match{}\n", total, total == 1 ? "" : "es");
    return {};
}

} // namespace

Result<std::vector<std::byte>> parse_hex(std::string_view text)
{
    std::string digits;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == ' ' || c == ':' || c == '\t')
            continue;
        if (c == '0' && i + 1 < text.size() && (text[i + 1] == 'x' || text[i + 1] == 'X')) {
            ++i;
            continue;
        }
        if (hex_digit(c) < 0)
            return fail("hex pattern '{}': '{}' at position {} is not a hex digit", text, c, i);
        digits += c;
    }
    if (digits.empty())
        return fail("hex pattern '{}' is empty", text);
    if (digits.size() % 2)
        return fail("hex pattern '{}' has an odd number of hex digits ({})", text, digits.size());
    if (digits.size() / 2 > kMaxPatternSize)
        return fail("hex pattern is {} bytes, at most {} are supported", digits.size() / 2, kMaxPatternSize);
    std::vector<std::byte> bytes;
    for (size_t i = 0; i < digits.size(); i += 2)
        bytes.push_back(static_cast<std::byte>(hex_digit(digits[i]) * 16 + hex_digit(digits[i + 1])));
    return bytes;
}

Result<uint64_t> parse_address(std::string_view text)
{
    std::string_view digits = text;
    if (digits.starts_with("0x") || digits.starts_with("0X"))
        digits.remove_prefix(2);
    uint64_t value = 0;
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value, 16);
    if (digits.empty() || error != std::errc() || end != digits.data() + digits.size())
        return fail("address '{}': expected a hex number such as 7ffd5e3a1000", text);
    return value;
}

Result<uint64_t> parse_length(std::string_view text)
{
    std::string_view digits = text;
    int base = 10;
    if (digits.starts_with("0x") || digits.starts_with("0X")) {
        digits.remove_prefix(2);
        base = 16;
    }
    uint64_t value = 0;
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
    if (digits.empty() || error != std::errc() || end != digits.data() + digits.size())
        return fail("length '{}': expected a number of bytes (decimal, or hex with 0x)", text);
    if (value == 0)
        return fail("length is 0");
    return value;
}

StreamSearcher::StreamSearcher(std::span<const std::byte> pattern)
    : m_pattern(pattern.begin(), pattern.end())
{
}

void StreamSearcher::feed(uint64_t address, std::span<const std::byte> piece,
                          const std::function<void(uint64_t)>& on_match)
{
    size_t keep = m_pattern.size() - 1;
    if (m_pattern.empty() || piece.empty())
        return;
    if (m_tail.empty() || m_tail_end != address)
        m_tail.clear();
    // Matches that start in the carried tail and end in this piece.
    if (!m_tail.empty()) {
        std::vector<std::byte> seam(m_tail);
        seam.insert(seam.end(), piece.begin(), piece.begin() + std::min(keep, piece.size()));
        uint64_t seam_start = address - m_tail.size();
        for (size_t i = 0; i < m_tail.size() && i + m_pattern.size() <= seam.size(); ++i)
            if (std::memcmp(seam.data() + i, m_pattern.data(), m_pattern.size()) == 0)
                on_match(seam_start + i);
    }
    // Matches inside the piece.
    const auto* data = reinterpret_cast<const unsigned char*>(piece.data());
    size_t offset = 0;
    while (offset + m_pattern.size() <= piece.size()) {
        const void* found = ::memmem(data + offset, piece.size() - offset, m_pattern.data(), m_pattern.size());
        if (!found)
            break;
        size_t at = static_cast<size_t>(static_cast<const unsigned char*>(found) - data);
        on_match(address + at);
        offset = at + 1;
    }
    // Carry the last pattern-1 bytes of tail+piece.
    if (piece.size() >= keep) {
        m_tail.assign(piece.end() - static_cast<std::ptrdiff_t>(keep), piece.end());
    } else {
        m_tail.insert(m_tail.end(), piece.begin(), piece.end());
        if (m_tail.size() > keep)
            m_tail.erase(m_tail.begin(), m_tail.end() - static_cast<std::ptrdiff_t>(keep));
    }
    m_tail_end = address + piece.size();
}

std::string protection_text(uint32_t prot, bool shared)
{
    return fmt::format("{}{}{}{}", prot & PROT_READ ? 'r' : '-', prot & PROT_WRITE ? 'w' : '-',
                       prot & PROT_EXEC ? 'x' : '-', shared ? 's' : 'p');
}

std::string_view state_text(ProcessMemory::State state)
{
    switch (state) {
    case ProcessMemory::State::Stored: return "stored";
    case ProcessMemory::State::Zero: return "zero";
    case ProcessMemory::State::FileContent: return "file content";
    case ProcessMemory::State::Kernel: return "kernel";
    case ProcessMemory::State::Unmapped: return "unmapped";
    }
    return "?";
}

Result<ProcessMemory> ProcessMemory::load(const Checkpoint& checkpoint, int pid, std::span<const Checkpoint> ancestors)
{
    std::string mm_name = image::memory_name(pid);
    std::string pagemap_name = image::pagemap_name(pid);
    if (!checkpoint.has_file(mm_name))
        return fail("{}: no such process in the checkpoint (no {})", pid, checkpoint.path(mm_name));
    auto memory = TRY(checkpoint.read<image::MemoryImage>(mm_name, image::ImageKind::Memory));
    auto page_map = TRY(checkpoint.read<image::PageMap>(pagemap_name, image::ImageKind::PageMap));
    std::string mm_path = checkpoint.path(mm_name);
    std::string pagemap_path = checkpoint.path(pagemap_name);

    ProcessMemory result;
    result.m_pid = pid;
    TRY_CTX(image::check_mappings(memory), "{}", mm_path);
    result.m_vmas.assign(memory.vmas().begin(), memory.vmas().end());
    std::ranges::sort(result.m_vmas, {}, &image::Vma::start);

    if (page_map.runs_size() > 0 && (!image::is_safe_image_name(page_map.page_file()) || metadata_kind(page_map.page_file())))
        return fail("{}: names an invalid page file '{}'", pagemap_path, page_map.page_file());
    result.m_page_file_name = page_map.page_file();
    result.m_page_files.resize(ancestors.size() + 1);
    result.m_stored_bytes.assign(ancestors.size() + 1, 0);
    // Each page file a run refers to, with its size: this checkpoint's, and
    // the ancestors' of the same process (a run beyond the chain is refused
    // below).
    std::vector<uint64_t> sizes(ancestors.size() + 1, 0);
    for (const auto& run : page_map.runs()) {
        size_t ancestor = run.ancestor();
        if (ancestor > ancestors.size() || result.m_page_files[ancestor].fd)
            continue;
        const Checkpoint& holder = ancestor == 0 ? checkpoint : ancestors[ancestor - 1];
        std::string name = ancestor == 0 ? page_map.page_file() : image::pages_name(pid);
        result.m_page_files[ancestor].path = holder.path(name);
        result.m_page_files[ancestor].fd = TRY(holder.open_raw(name, sizes[ancestor]));
    }
    result.m_page_files[0].path = checkpoint.path(page_map.page_file());
    // The same checks as restore's (image/validate.h), against the page
    // files' actual sizes.
    TRY_CTX(image::check_page_map(page_map, result.m_page_files[0].path, sizes[0], std::span(sizes).subspan(1)), "{}",
            pagemap_path);
    for (const auto& run : page_map.runs()) {
        uint64_t bytes = run.page_count() * kPageSize;
        result.m_runs.push_back({ run.address(), run.address() + bytes, run.file_offset(), run.ancestor() });
        result.m_stored_bytes[run.ancestor()] += bytes;
    }
    std::ranges::sort(result.m_runs, {}, &Run::address);
    return result;
}

const image::Vma* ProcessMemory::find_vma(uint64_t address) const
{
    auto it = std::ranges::upper_bound(m_vmas, address, {}, &image::Vma::start);
    if (it == m_vmas.begin())
        return nullptr;
    --it;
    return address < it->end() ? &*it : nullptr;
}

std::vector<ProcessMemory::Segment> ProcessMemory::segments(uint64_t start, uint64_t end) const
{
    std::vector<Segment> out;
    uint64_t cursor = start;
    while (cursor < end) {
        const image::Vma* vma = find_vma(cursor);
        if (!vma) {
            auto next = std::ranges::upper_bound(m_vmas, cursor, {}, &image::Vma::start);
            uint64_t stop = next == m_vmas.end() ? end : std::min(end, next->start());
            out.push_back({ cursor, stop, State::Unmapped, 0, nullptr });
            cursor = stop;
            continue;
        }
        uint64_t vma_stop = std::min(end, vma->end());
        auto run = std::ranges::upper_bound(m_runs, cursor, {}, &Run::address);
        if (run != m_runs.begin() && cursor < std::prev(run)->end) {
            const Run& inside = *std::prev(run);
            uint64_t stop = std::min(vma_stop, inside.end);
            out.push_back({ cursor, stop, State::Stored, inside.file_offset + (cursor - inside.address), vma,
                            inside.ancestor });
            cursor = stop;
            continue;
        }
        uint64_t stop = run == m_runs.end() ? vma_stop : std::min(vma_stop, run->address);
        out.push_back({ cursor, stop, gap_state(*vma), 0, vma });
        cursor = stop;
    }
    return out;
}

Result<void> ProcessMemory::read_stored(uint32_t ancestor, uint64_t file_offset, std::span<std::byte> out) const
{
    const PageFile& file = m_page_files.at(ancestor);
    return pread_exact(file.fd.get(), out, file_offset, file.path);
}

Result<void> ProcessMemory::read(uint64_t address, std::span<std::byte> out, std::vector<bool>& known) const
{
    known.assign(out.size(), false);
    std::ranges::fill(out, std::byte { 0 });
    if (out.empty() || address > UINT64_MAX - out.size())
        return {};
    for (const auto& segment : segments(address, address + out.size())) {
        size_t from = segment.start - address;
        size_t length = segment.end - segment.start;
        if (segment.state == State::Stored)
            TRY(read_stored(segment.ancestor, segment.file_offset, out.subspan(from, length)));
        if (segment.state == State::Stored || segment.state == State::Zero)
            std::fill(known.begin() + static_cast<std::ptrdiff_t>(from),
                      known.begin() + static_cast<std::ptrdiff_t>(from + length), true);
    }
    return {};
}

Result<void> ProcessMemory::for_each_stored(size_t chunk, const std::function<void(uint64_t, std::span<const std::byte>)>& visit) const
{
    std::vector<std::byte> buffer(chunk);
    for (const auto& run : m_runs) {
        for (uint64_t at = run.address; at < run.end;) {
            size_t length = std::min<uint64_t>(chunk, run.end - at);
            auto piece = std::span(buffer.data(), length);
            TRY(read_stored(run.ancestor, run.file_offset + (at - run.address), piece));
            visit(at, piece);
            at += length;
        }
    }
    return {};
}

Result<std::vector<MemoryMatch>> search_memory(const ProcessMemory& memory, std::span<const std::byte> pattern,
                                               size_t limit)
{
    if (pattern.empty())
        return fail("the search pattern is empty");
    if (pattern.size() > kMaxPatternSize)
        return fail("the search pattern is {} bytes, at most {} are supported", pattern.size(), kMaxPatternSize);
    std::vector<MemoryMatch> matches;
    StreamSearcher searcher(pattern);
    TRY(memory.for_each_stored(kReadChunk, [&](uint64_t address, std::span<const std::byte> piece) {
        searcher.feed(address, piece, [&](uint64_t at) {
            if (matches.size() < limit)
                matches.push_back({ memory.pid(), at, memory.find_vma(at) });
        });
    }));
    return matches;
}

Result<void> run_mem(const MemOptions& options)
{
    auto checkpoint = TRY(Checkpoint::open(options.directory, options.verify, options.key ? &*options.key : nullptr));
    auto ancestors = TRY(open_ancestors(checkpoint, options.verify));
    warn_if_deduped(checkpoint);
    if (!options.search.empty() && !options.search_hex.empty())
        return fail("--search and --search-hex exclude each other");
    if (!options.search.empty() || !options.search_hex.empty()) {
        if (!options.address.empty() || !options.extract.empty())
            return fail("--search does not take --addr or --extract");
        std::vector<std::byte> pattern;
        if (!options.search_hex.empty())
            pattern = TRY_CTX(parse_hex(options.search_hex), "--search-hex");
        else if (options.search.size() > kMaxPatternSize)
            return fail("--search: the string is {} bytes, at most {} are supported", options.search.size(), kMaxPatternSize);
        else
            for (char c : options.search)
                pattern.push_back(static_cast<std::byte>(c));
        if (options.max_matches == 0)
            return fail("--max-matches must be at least 1");
        return print_matches(checkpoint, ancestors, options, pattern);
    }
    if (options.address.empty())
        return fail("give --addr A (with --len N, --extract FILE) or --search STRING / --search-hex HEX");
    uint64_t start = TRY_CTX(parse_address(options.address), "--addr");
    int pid = 0;
    if (options.pid) {
        pid = *options.pid;
    } else {
        auto pids = TRY(process_pids(checkpoint));
        if (pids.size() != 1)
            return fail("the checkpoint holds {} processes: choose one with --pid", pids.size());
        pid = pids.front();
    }
    auto memory = TRY(ProcessMemory::load(checkpoint, pid, ancestors));
    uint64_t end = 0;
    if (options.length.empty()) {
        // Without --len: from the address to the end of its mapping (the
        // whole mapping when given its start).
        const image::Vma* vma = memory.find_vma(start);
        if (!vma)
            return fail("pid {}: {:#x} is not in a mapping; give --len", pid, start);
        end = vma->end();
    } else {
        uint64_t length = TRY_CTX(parse_length(options.length), "--len");
        if (start >= kAddressLimit || length > kAddressLimit - start)
            return fail("{:#x} + {} bytes lies beyond the address space", start, length);
        end = start + length;
    }
    if (!options.extract.empty())
        return extract(memory, start, end, options.extract);
    return print_hexdump(memory, start, end);
}

} // namespace cryo::inspect
