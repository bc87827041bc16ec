// Tests of `cryo diff` (src/inspect/diff) on two versions of the sample
// checkpoint: the second has a process replaced, an open file moved on, a
// mapping grown and one heap page changed; the output names each of them.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "inspect/codec.h"
#include "inspect/diff.h"
#include "inspect_sample.h"
#include "temp_dir.h"

namespace cryo::inspect {
namespace {

using cryo::test::TempDir;

std::string read_whole(const std::string& path)
{
    std::ifstream stream(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(stream), {});
}

void write_whole(const std::string& path, std::string_view bytes)
{
    std::ofstream stream(path, std::ios::binary | std::ios::trunc);
    stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void replace_once(std::string& text, std::string_view from, std::string_view to)
{
    auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
}

std::string run_and_capture(const DiffOptions& options, bool& ok)
{
    testing::internal::CaptureStdout();
    auto result = run_diff(options);
    std::fflush(stdout);
    std::string output = testing::internal::GetCapturedStdout();
    ok = result.has_value();
    if (!result)
        output += result.error().message();
    return output;
}

TEST(InspectDiff, ReportsProcessesFilesMappingsAndPages)
{
    TempDir dir;
    ASSERT_TRUE(test::write_sample_checkpoint(dir / "before"));
    std::filesystem::copy(dir / "before", dir / "after");
    auto json = decode_to_json({ dir / "after", "", "", Verify::Checksums });
    ASSERT_TRUE(json) << json.error().message();
    std::string text = *json;
    replace_once(text, "\"pid\": 102", "\"pid\": 103");
    replace_once(text, "\"position\": \"12345\"", "\"position\": \"99\"");
    replace_once(text, "\"end\": \"139264\"", "\"end\": \"143360\"");   // the library mapping grows by a page
    replace_once(text, "\"tids\": [\n          100,\n          101", "\"tids\": [\n          100,\n          104");
    write_whole(dir / "after.json", text);
    auto encoded = run_encode({ dir / "after.json", dir / "after", Verify::Checksums });
    ASSERT_TRUE(encoded) << encoded.error().message();
    // One byte of the third heap page (run B); the checksum no longer
    // matches, hence --no-verify.
    std::string pages = read_whole(dir / "after/pages-100.img");
    pages[12288 + 100] ^= 1;
    write_whole(dir / "after/pages-100.img", pages);

    bool ok = false;
    std::string output = run_and_capture({ dir / "before", dir / "after", Verify::Skip }, ok);
    ASSERT_TRUE(ok) << output;
    for (const char* part : { "- process 102", "+ process 103", "~ process 100", "- threads 101", "+ threads 104",
                              "~ fd 0: position 12345 -> 99", "~ mapping 20000-23000 rw-p /lib/sample.so: end 0x22000 -> 0x23000",
                              "~ mapping 10000-13000 rw-p [heap]: 1 of 3 pages differ: 12000-13000\n",
                              "summary: 1 process(es) came, 1 went, 1 changed; 1 page(s) differ in 1 mapping(s)" })
        EXPECT_NE(output.find(part), std::string::npos) << part << "\n" << output;

    // Verified by default: the changed page file is refused, by name.
    output = run_and_capture({ dir / "before", dir / "after", Verify::Checksums }, ok);
    EXPECT_FALSE(ok);
    EXPECT_NE(output.find("pages-100.img: checksum mismatch"), std::string::npos) << output;
}

} // namespace
} // namespace cryo::inspect
