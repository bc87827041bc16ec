// Stored memory of a checkpoint: what `cryo mem` and `cryo diff` read.
//
// A process's memory is described by mm-PID.img (the mappings) and
// pagemap-PID.img (runs of pages: address, count, offset in pages-PID.img).
// Only pages that held data of their own are stored: a private anonymous
// page that is not stored was never written (or was the shared zero page)
// and reads as zeros; a file page that is not stored is the file's content,
// which is not in the checkpoint; [vdso]/[vvar] come from the kernel.
// In an incremental checkpoint a run may say its pages are in the page file
// of the Nth ancestor (PageRun.ancestor): they are read from there, through
// the ancestors the caller opened (inspect/chain.h).
//
// Everything here treats the images as hostile: runs are checked against
// the page file's size and against each other before any read, page data is
// read through fixed-size buffers, and search carries at most the pattern's
// length from one buffer to the next, so nothing is allocated in proportion
// to what an image claims.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "inspect/checkpoint.h"
#include "mm.pb.h"

namespace cryo::inspect {

inline constexpr size_t kMaxPatternSize = 4096;

// "deadbeef", "de ad be ef", "0xdeadbeef", "de:ad:be:ef": an even number of
// hex digits, at most kMaxPatternSize bytes.
Result<std::vector<std::byte>> parse_hex(std::string_view text);
// An address: hex, with or without 0x.
Result<uint64_t> parse_address(std::string_view text);
// A length: decimal, or hex with 0x.
Result<uint64_t> parse_length(std::string_view text);

// Finds a pattern in memory that arrives in pieces, in ascending address
// order: a match may start in one piece and end in the next when they are
// contiguous. Keeps at most pattern-1 bytes between pieces.
class StreamSearcher {
public:
    explicit StreamSearcher(std::span<const std::byte> pattern);
    // Reports the start address of every match that ends in this piece.
    void feed(uint64_t address, std::span<const std::byte> piece, const std::function<void(uint64_t)>& on_match);

private:
    std::vector<std::byte> m_pattern;
    std::vector<std::byte> m_tail;   // the last bytes seen, up to pattern-1
    uint64_t m_tail_end { 0 };       // address just past them
};

std::string protection_text(uint32_t prot, bool shared);

class ProcessMemory {
public:
    // `ancestors`: those of `checkpoint`, parent first (open_ancestors()).
    static Result<ProcessMemory> load(const Checkpoint& checkpoint, int pid, std::span<const Checkpoint> ancestors = {});

    enum class State { Stored, Zero, FileContent, Kernel, Unmapped };
    struct Segment {
        uint64_t start;
        uint64_t end;
        State state;
        uint64_t file_offset;         // Stored: where in the page file
        const image::Vma* vma;        // nullptr when Unmapped
        uint32_t ancestor { 0 };      // Stored: in this checkpoint (0) or the Nth ancestor's page file
    };
    // [start, end) cut where the state changes (and at mapping boundaries).
    std::vector<Segment> segments(uint64_t start, uint64_t end) const;
    const image::Vma* find_vma(uint64_t address) const;

    // Reads stored bytes (a Stored segment's file range).
    Result<void> read_stored(uint32_t ancestor, uint64_t file_offset, std::span<std::byte> out) const;
    // Reads [address, address+out.size()): stored bytes and zeros where
    // known; `known[i]` is false where the content is not in the image.
    Result<void> read(uint64_t address, std::span<std::byte> out, std::vector<bool>& known) const;

    // Every stored run, ascending by address, in pieces of at most `chunk`
    // bytes, read into a buffer of that size.
    Result<void> for_each_stored(size_t chunk, const std::function<void(uint64_t, std::span<const std::byte>)>& visit) const;

    int pid() const { return m_pid; }
    const std::vector<image::Vma>& vmas() const { return m_vmas; }
    const std::string& page_file() const { return m_page_file_name; }
    // The page file of this checkpoint (0) or of its Nth ancestor.
    const std::string& page_file_path(uint32_t ancestor) const { return m_page_files.at(ancestor).path; }
    // Bytes of stored pages in this checkpoint's page file ([0]) and in
    // each ancestor's ([N] for ancestor N).
    const std::vector<uint64_t>& stored_bytes() const { return m_stored_bytes; }

private:
    struct Run {
        uint64_t address;
        uint64_t end;
        uint64_t file_offset;
        uint32_t ancestor;
    };
    struct PageFile {
        std::string path;
        UniqueFd fd;   // invalid where no run refers to the file
    };
    ProcessMemory() = default;

    int m_pid { 0 };
    std::vector<image::Vma> m_vmas;   // ascending, not overlapping
    std::vector<Run> m_runs;          // ascending, not overlapping
    std::string m_page_file_name;
    std::vector<PageFile> m_page_files;   // [0] this checkpoint's, [N] the Nth ancestor's
    std::vector<uint64_t> m_stored_bytes;
};

std::string_view state_text(ProcessMemory::State state);

struct MemoryMatch {
    int pid;
    uint64_t address;
    const image::Vma* vma;
};
// Every match of `pattern` in the stored pages of `memory`, at most `limit`.
Result<std::vector<MemoryMatch>> search_memory(const ProcessMemory& memory, std::span<const std::byte> pattern,
                                               size_t limit);

struct MemOptions {
    std::string directory;
    std::optional<int> pid;
    std::string address;
    std::string length;
    std::string search;
    std::string search_hex;
    std::string extract;
    size_t max_matches { 1000 };
    Verify verify { Verify::Checksums };
    std::optional<image::Key> key;   // --key: of an encrypted checkpoint
};
Result<void> run_mem(const MemOptions& options);

} // namespace cryo::inspect
