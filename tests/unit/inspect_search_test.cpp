// Tests of `cryo mem` (src/inspect/memory): the streaming search finds
// matches that cross piece (page, run) boundaries exactly once; hex
// patterns, addresses and lengths are parsed strictly; the memory of a
// sample checkpoint reads as stored bytes, zeros or "not stored" in the
// right places; and hostile page maps are refused before any read.
#include <filesystem>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "image/writer.h"
#include "inspect/memory.h"
#include "inspect_sample.h"
#include "temp_dir.h"

namespace cryo::inspect {
namespace {

using cryo::test::TempDir;

std::vector<std::byte> bytes_of(std::string_view text)
{
    auto span = std::as_bytes(std::span(text.data(), text.size()));
    return { span.begin(), span.end() };
}

std::vector<uint64_t> search_pieces(std::string_view pattern, const std::vector<std::pair<uint64_t, std::string>>& pieces)
{
    auto needle = bytes_of(pattern);
    StreamSearcher searcher(needle);
    std::vector<uint64_t> found;
    for (const auto& [address, text] : pieces)
        searcher.feed(address, bytes_of(text), [&](uint64_t at) { found.push_back(at); });
    return found;
}

TEST(InspectSearch, MatchesAcrossPiecesAreFoundOnce)
{
    // Split in the middle, and across three pieces one shorter than the pattern.
    EXPECT_EQ(search_pieces("SECRET", { { 100, "xxSEC" }, { 105, "RETyy" } }), std::vector<uint64_t> { 102 });
    EXPECT_EQ(search_pieces("SECRET", { { 100, "xxxS" }, { 104, "EC" }, { 106, "RETxx" } }), std::vector<uint64_t> { 103 });
    // Overlapping matches, one spanning the boundary.
    EXPECT_EQ(search_pieces("aaa", { { 0, "aaaa" }, { 4, "a" } }), (std::vector<uint64_t> { 0, 1, 2 }));
    // A gap in the addresses: no match across it.
    EXPECT_TRUE(search_pieces("SECRET", { { 100, "xxSEC" }, { 200, "RETyy" } }).empty());
    // One-byte patterns carry nothing.
    EXPECT_EQ(search_pieces("z", { { 0, "az" }, { 2, "z" } }), (std::vector<uint64_t> { 1, 2 }));
    // A match at the very end of a piece and one at the very start of the next.
    EXPECT_EQ(search_pieces("ab", { { 0, "xab" }, { 3, "abx" } }), (std::vector<uint64_t> { 1, 3 }));
}

TEST(InspectSearch, HexPatternsAreParsedStrictly)
{
    auto parsed = parse_hex("de ad:BE0xef");
    ASSERT_TRUE(parsed) << parsed.error().message();
    EXPECT_EQ(*parsed, (std::vector<std::byte> { std::byte { 0xde }, std::byte { 0xad }, std::byte { 0xbe }, std::byte { 0xef } }));
    EXPECT_TRUE(parse_hex("0x41"));
    auto message = [](const auto& result) { return result ? std::string("(no error)") : result.error().message(); };
    EXPECT_NE(message(parse_hex("abc")).find("odd number of hex digits"), std::string::npos);
    EXPECT_NE(message(parse_hex("12 4g")).find("'g' at position 4 is not a hex digit"), std::string::npos);
    EXPECT_NE(message(parse_hex("")).find("empty"), std::string::npos);
    EXPECT_NE(message(parse_hex(" 0x ")).find("empty"), std::string::npos);
    EXPECT_NE(message(parse_hex(std::string(2 * kMaxPatternSize + 2, 'a'))).find("at most"), std::string::npos);

    EXPECT_EQ(parse_address("0x7ffd1000").value_or(0), 0x7ffd1000u);
    EXPECT_EQ(parse_address("7ffd1000").value_or(0), 0x7ffd1000u);
    EXPECT_FALSE(parse_address("0x"));
    EXPECT_FALSE(parse_address("12z"));
    EXPECT_FALSE(parse_address("1ffffffffffffffff"));
    EXPECT_EQ(parse_length("4096").value_or(0), 4096u);
    EXPECT_EQ(parse_length("0x10").value_or(0), 16u);
    EXPECT_FALSE(parse_length("0"));
    EXPECT_FALSE(parse_length("-1"));
    EXPECT_FALSE(parse_length("10k"));
}

TEST(InspectSearch, FindsNeedlesAcrossPageAndRunBoundaries)
{
    TempDir dir;
    ASSERT_TRUE(test::write_sample_checkpoint(dir / "cp"));
    auto checkpoint = Checkpoint::open(dir / "cp", Verify::Checksums);
    ASSERT_TRUE(checkpoint) << checkpoint.error().message();
    auto memory = ProcessMemory::load(*checkpoint, test::kSamplePid);
    ASSERT_TRUE(memory) << memory.error().message();

    auto in_run = search_memory(*memory, bytes_of(test::kNeedleInRun), 10);
    ASSERT_TRUE(in_run);
    ASSERT_EQ(in_run->size(), 1u);
    EXPECT_EQ(in_run->front().address, test::kNeedleInRunAddress);
    ASSERT_NE(in_run->front().vma, nullptr);
    EXPECT_EQ(in_run->front().vma->path(), "[heap]");

    auto at_seam = search_memory(*memory, bytes_of(test::kNeedleAtSeam), 10);
    ASSERT_TRUE(at_seam);
    ASSERT_EQ(at_seam->size(), 1u);
    EXPECT_EQ(at_seam->front().address, test::kNeedleAtSeamAddress);

    // The limit holds: the alphabet repeats in every page.
    auto many = search_memory(*memory, bytes_of("abc"), 5);
    ASSERT_TRUE(many);
    EXPECT_EQ(many->size(), 5u);
}

TEST(InspectSearch, MemoryReadsAsStoredZerosOrNotStored)
{
    TempDir dir;
    ASSERT_TRUE(test::write_sample_checkpoint(dir / "cp"));
    auto checkpoint = Checkpoint::open(dir / "cp", Verify::Checksums);
    ASSERT_TRUE(checkpoint);
    auto memory = ProcessMemory::load(*checkpoint, test::kSamplePid);
    ASSERT_TRUE(memory);
    using State = ProcessMemory::State;
    auto segments = memory->segments(test::kHeap + 4096, test::kUntouched + 4096 + 16);
    std::vector<std::pair<uint64_t, State>> seen;
    for (const auto& segment : segments)
        seen.emplace_back(segment.start, segment.state);
    std::vector<std::pair<uint64_t, State>> expected {
        { test::kHeap + 4096, State::Stored },        // rest of run A
        { test::kHeap + 2 * 4096, State::Stored },    // run B
        { test::kHeap + 3 * 4096, State::Unmapped },
        { test::kLibrary, State::Stored },
        { test::kLibrary + 4096, State::FileContent },
        { test::kLibrary + 2 * 4096, State::Unmapped },
        { test::kUntouched, State::Zero },
        { test::kUntouched + 4096, State::Unmapped },
    };
    EXPECT_EQ(seen, expected);

    std::vector<std::byte> out(32);
    std::vector<bool> known;
    ASSERT_TRUE(memory->read(test::kNeedleAtSeamAddress, out, known));
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(out.data()), 14), test::kNeedleAtSeam);
    EXPECT_TRUE(std::ranges::all_of(known, [](bool value) { return value; }));
    ASSERT_TRUE(memory->read(test::kLibrary + 4096 - 4, std::span(out).first(8), known));
    EXPECT_EQ(known, (std::vector<bool> { true, true, true, true, false, false, false, false }));
    ASSERT_TRUE(memory->read(test::kUntouched, std::span(out).first(8), known));
    EXPECT_TRUE(std::ranges::all_of(known, [](bool value) { return value; }));
    EXPECT_EQ(out[0], std::byte { 0 });
}

// Page maps that would read outside the page file, overlap or are not
// page-aligned are refused when loaded, naming the page map.
TEST(InspectSearch, HostilePageMapsAreRefused)
{
    struct Case {
        uint64_t address;
        uint64_t pages;
        uint64_t offset;
        const char* error;
    };
    for (const auto& bad : { Case { 0x10000, 2, 4096, "lies beyond the end of" },
                             Case { 0x10000, 1ull << 60, 0, "not a valid range of pages" },
                             Case { 0x10001, 1, 0, "not a valid range of pages" },
                             Case { 0x10000, 1, ~0ull - 100, "lies beyond the end of" },
                             Case { 0x10000, 0, 0, "not a valid range of pages" } }) {
        TempDir dir;
        auto writer = image::ImageWriter::create(dir / "cp", image::SyncMode::NoSync);
        ASSERT_TRUE(writer);
        image::ProcessTree tree;
        tree.add_processes()->set_pid(1);
        ASSERT_TRUE(writer->write_message("tree.img", image::ImageKind::Tree, tree));
        image::MemoryImage mm;
        ASSERT_TRUE(writer->write_message("mm-1.img", image::ImageKind::Memory, mm));
        image::PageMap map;
        map.set_page_file("pages-1.img");
        auto* run = map.add_runs();
        run->set_address(bad.address);
        run->set_page_count(bad.pages);
        run->set_file_offset(bad.offset);
        ASSERT_TRUE(writer->write_message("pagemap-1.img", image::ImageKind::PageMap, map));
        auto pages = writer->create_file("pages-1.img");
        ASSERT_TRUE(pages);
        std::vector<std::byte> data(8192);
        ASSERT_TRUE(pages->write(data));
        ASSERT_TRUE(writer->finish_file(std::move(*pages)));
        ASSERT_TRUE(writer->commit({}));

        auto checkpoint = Checkpoint::open(dir / "cp", Verify::Checksums);
        ASSERT_TRUE(checkpoint) << checkpoint.error().message();
        auto memory = ProcessMemory::load(*checkpoint, 1);
        ASSERT_FALSE(memory) << bad.error;
        EXPECT_NE(memory.error().message().find("pagemap-1.img: run 0"), std::string::npos) << memory.error().message();
        EXPECT_NE(memory.error().message().find(bad.error), std::string::npos) << memory.error().message();
    }
}

TEST(InspectSearch, OverlappingRunsAndUnknownProcessesAreRefused)
{
    TempDir dir;
    auto writer = image::ImageWriter::create(dir / "cp", image::SyncMode::NoSync);
    ASSERT_TRUE(writer);
    image::MemoryImage mm;
    ASSERT_TRUE(writer->write_message("mm-1.img", image::ImageKind::Memory, mm));
    image::PageMap map;
    map.set_page_file("pages-1.img");
    for (uint64_t address : { 0x10000, 0x11000 }) {
        auto* run = map.add_runs();
        run->set_address(address);
        run->set_page_count(2);
    }
    ASSERT_TRUE(writer->write_message("pagemap-1.img", image::ImageKind::PageMap, map));
    auto pages = writer->create_file("pages-1.img");
    ASSERT_TRUE(pages);
    std::vector<std::byte> data(8192);
    ASSERT_TRUE(pages->write(data));
    ASSERT_TRUE(writer->finish_file(std::move(*pages)));
    ASSERT_TRUE(writer->commit({}));
    auto checkpoint = Checkpoint::open(dir / "cp", Verify::Checksums);
    ASSERT_TRUE(checkpoint);
    auto memory = ProcessMemory::load(*checkpoint, 1);
    ASSERT_FALSE(memory);
    EXPECT_NE(memory.error().message().find("overlap"), std::string::npos) << memory.error().message();
    auto missing = ProcessMemory::load(*checkpoint, 2);
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message().find("no such process"), std::string::npos) << missing.error().message();
}

} // namespace
} // namespace cryo::inspect
