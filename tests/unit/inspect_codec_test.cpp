// Tests of `cryo decode`/`cryo encode` (src/inspect/codec): a sample
// checkpoint goes to JSON and back byte for byte, an edited value comes back
// with the manifest's checksums recomputed and the page file untouched, and
// bad documents or damaged images are refused with the problem named.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <gtest/gtest.h>

#include "image/reader.h"
#include "inspect/codec.h"
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

std::string decode(const std::string& directory, Verify verify = Verify::Checksums)
{
    auto json = decode_to_json({ directory, "", "", verify });
    EXPECT_TRUE(json.has_value()) << json.error().message();
    return json.value_or("");
}

void expect_error(const auto& result, std::string_view part)
{
    ASSERT_FALSE(result.has_value());
    EXPECT_NE(result.error().message().find(part), std::string::npos) << result.error().message();
}

TEST(InspectCodec, RoundTripIsByteExact)
{
    TempDir dir;
    ASSERT_TRUE(test::write_sample_checkpoint(dir / "cp"));
    std::string json = decode(dir / "cp");
    auto images = encode_from_json(json);
    ASSERT_TRUE(images) << images.error().message();
    std::set<std::string> kinds;
    for (const auto& image : *images) {
        EXPECT_EQ(image.bytes, read_whole(dir / "cp/" + image.name)) << image.name;
        kinds.insert(std::string(json_kind_name(image.name)));
    }
    // Every kind of metadata image there is.
    EXPECT_EQ(kinds, (std::set<std::string> { "manifest", "tree", "core", "mm", "pagemap", "fds", "files", "stats-dump",
                                              "stats-restore" }));
    EXPECT_EQ(images->size(), 9u);
}

// The restore statistics go back to their file but stay out of the
// manifest, as restore writes them.
TEST(InspectCodec, RestoreStatisticsStayOutsideTheManifest)
{
    TempDir dir;
    ASSERT_TRUE(test::write_sample_checkpoint(dir / "cp"));
    std::string before = read_whole(dir / "cp/stats-restore.img");
    auto one = decode_to_json({ dir / "cp", "stats-restore.img", "", Verify::Checksums });
    ASSERT_TRUE(one) << one.error().message();
    EXPECT_NE(one->find("\"kind\": \"stats-restore\""), std::string::npos) << *one;
    EXPECT_NE(one->find("\"page_reads\": \"2\""), std::string::npos) << *one;
    write_whole(dir / "all.json", decode(dir / "cp"));
    std::filesystem::remove(dir / "cp/stats-restore.img");
    auto result = run_encode({ dir / "all.json", dir / "cp", Verify::Checksums });
    ASSERT_TRUE(result) << result.error().message();
    EXPECT_EQ(read_whole(dir / "cp/stats-restore.img"), before);
    auto reader = image::ImageReader::open(dir / "cp");
    ASSERT_TRUE(reader && reader->verify());
    EXPECT_FALSE(reader->has_file("stats-restore.img"));
    EXPECT_TRUE(reader->has_file("stats-dump.img"));
    // A name that cannot hold the kind the document says.
    std::string json = read_whole(dir / "all.json");
    auto at = json.find("\"kind\": \"stats-dump\"");
    ASSERT_NE(at, std::string::npos);
    json.replace(at, 20, "\"kind\": \"stats-restore\"");
    expect_error(encode_from_json(json), "(stats-dump.img): a file of this name cannot hold a stats-restore image");
}

TEST(InspectCodec, DocumentShowsHeadersDefaultsAndRawFiles)
{
    TempDir dir;
    ASSERT_TRUE(test::write_sample_checkpoint(dir / "cp"));
    std::string json = decode(dir / "cp");
    for (const char* part : { "\"cryo_json\": 1", "\"name\": \"core-100.img\"", "\"kind\": \"core\"", "\"version\": 1",
                              "\"ppid\": 0", "\"external\": \"\"", "\"altstack\": {", "\"kind\": \"manifest\"",
                              "\"raw_files\"", "\"name\": \"pages-100.img\", \"size\": \"16384\"",
                              "\"comm\": \"sample \\\"quoted\\\"\"" })
        EXPECT_NE(json.find(part), std::string::npos) << part << "\n" << json;
    // One image only.
    auto core = decode_to_json({ dir / "cp", "core-100.img", "", Verify::Checksums });
    ASSERT_TRUE(core) << core.error().message();
    EXPECT_EQ(core->find("tree.img"), std::string::npos);
    EXPECT_NE(core->find("core-100.img"), std::string::npos);
    expect_error(decode_to_json({ dir / "cp", "pages-100.img", "", Verify::Checksums }), "not a metadata image");
    expect_error(decode_to_json({ dir / "cp", "nothere.img", "", Verify::Checksums }), "no such image");
}

// An edited path is written, the manifest gets the new size and checksum,
// and the page file is untouched: the checkpoint verifies again.
TEST(InspectCodec, EncodeOfAnEditedDocumentGivesAValidCheckpoint)
{
    TempDir dir;
    ASSERT_TRUE(test::write_sample_checkpoint(dir / "cp"));
    std::string pages_before = read_whole(dir / "cp/pages-100.img");
    std::string json = decode(dir / "cp");
    auto at = json.find("\"/tmp/data\"");
    ASSERT_NE(at, std::string::npos);
    json.replace(at, 11, "\"/tmp/a/longer/path\"");
    write_whole(dir / "edited.json", json);
    auto result = run_encode({ dir / "edited.json", dir / "cp", Verify::Checksums });
    ASSERT_TRUE(result) << result.error().message();

    auto reader = image::ImageReader::open(dir / "cp");
    ASSERT_TRUE(reader) << reader.error().message();
    auto verified = reader->verify();
    EXPECT_TRUE(verified) << verified.error().message();
    auto files = reader->read<image::FileTable>("files.img", image::ImageKind::FileTable);
    ASSERT_TRUE(files);
    EXPECT_EQ(files->files(0).regular().path(), "/tmp/a/longer/path");
    EXPECT_EQ(read_whole(dir / "cp/pages-100.img"), pages_before);
    EXPECT_FALSE(std::filesystem::exists(dir / "cp/files.img.tmp"));

    // A document of one image updates that image and the directory's manifest.
    auto one = decode_to_json({ dir / "cp", "tree.img", "", Verify::Checksums });
    ASSERT_TRUE(one);
    std::string tree_json = *one;
    tree_json.replace(tree_json.find("\"root_pid\": 100"), 15, "\"root_pid\": 101");
    write_whole(dir / "tree.json", tree_json);
    result = run_encode({ dir / "tree.json", dir / "cp", Verify::Checksums });
    ASSERT_TRUE(result) << result.error().message();
    reader = image::ImageReader::open(dir / "cp");
    ASSERT_TRUE(reader && reader->verify());
    EXPECT_EQ(reader->read<image::ProcessTree>("tree.img", image::ImageKind::Tree)->root_pid(), 101);
}

TEST(InspectCodec, BadDocumentsAreRefusedWithTheProblemNamed)
{
    TempDir dir;
    ASSERT_TRUE(test::write_sample_checkpoint(dir / "cp"));
    std::string json = decode(dir / "cp");
    expect_error(encode_from_json("{ not json"), "not a JSON document");
    expect_error(encode_from_json("{\"images\": []}"), "not a cryo JSON document");
    expect_error(encode_from_json("{\"cryo_json\": 1}"), "no \"images\" list");

    auto replaced = [&](std::string_view from, std::string_view to) {
        std::string copy = json;
        auto at = copy.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        if (at != std::string::npos)
            copy.replace(at, from.size(), to);
        return copy;
    };
    expect_error(encode_from_json(replaced("\"kind\": \"tree\"", "\"kind\": \"core\"")),
                 "(tree.img): a file of this name cannot hold a core image");
    expect_error(encode_from_json(replaced("\"kind\": \"tree\"", "\"kind\": \"bogus\"")), "unknown kind \"bogus\"");
    expect_error(encode_from_json(replaced("\"version\": 1", "\"version\": 2")), "format version 2 is not supported");
    expect_error(encode_from_json(replaced("\"root_pid\": 100", "\"root_pod\": 100")), "(tree.img): message");
    expect_error(encode_from_json(replaced("\"root_pid\": 100", "\"root_pid\": \"x\"")), "(tree.img): message");
    expect_error(encode_from_json(replaced("\"name\": \"core-100.img\"", "\"name\": \"tree.img\"")),
                 "images[1] (tree.img): a file of this name cannot hold a core image");
    {
        auto begin = json.find("    {\n      \"name\": \"tree.img\"");
        auto end = json.find("\n    },\n", begin);
        ASSERT_NE(end, std::string::npos);
        std::string twice = json;
        twice.insert(begin, json.substr(begin, end + 7 - begin));
        expect_error(encode_from_json(twice), "images[1]: tree.img is in the document twice");
    }
    expect_error(encode_from_json(replaced("\"name\": \"tree.img\"", "\"name\": \"../tree.img\"")),
                 "not a valid image file name");

    // Encoding into a directory without the page files.
    write_whole(dir / "doc.json", json);
    auto result = run_encode({ dir / "doc.json", dir / "fresh", Verify::Checksums });
    expect_error(result, "pages-100.img: listed in the manifest but not there");
    EXPECT_FALSE(std::filesystem::exists(dir / "fresh/tree.img"));
    // A page file that changed since the document was made.
    std::string pages = read_whole(dir / "cp/pages-100.img");
    pages[5] ^= 1;
    write_whole(dir / "cp/pages-100.img", pages);
    expect_error(run_encode({ dir / "doc.json", dir / "cp", Verify::Checksums }), "pages-100.img: checksum mismatch");
    EXPECT_TRUE(std::filesystem::exists(dir / "cp/manifest.img")) << "a refused encode must not touch the directory";
}

TEST(InspectCodec, DamagedImagesAreRefused)
{
    TempDir dir;
    ASSERT_TRUE(test::write_sample_checkpoint(dir / "cp"));
    std::string core = read_whole(dir / "cp/core-100.img");
    core[core.size() - 3] ^= 1;
    write_whole(dir / "cp/core-100.img", core);
    expect_error(decode_to_json({ dir / "cp", "", "", Verify::Checksums }), "core-100.img: checksum mismatch");
    expect_error(decode_to_json({ dir / "cp", "", "", Verify::Skip }), "core-100.img: payload checksum mismatch");
    // Without a manifest, --no-verify still decodes what is intact.
    std::filesystem::remove(dir / "cp/manifest.img");
    expect_error(decode_to_json({ dir / "cp", "", "", Verify::Checksums }), "manifest.img is missing");
    auto tree = decode_to_json({ dir / "cp", "tree.img", "", Verify::Skip });
    ASSERT_TRUE(tree) << tree.error().message();
    EXPECT_NE(tree->find("\"root_pid\": 100"), std::string::npos);
    auto all = decode_to_json({ dir / "cp", "", "", Verify::Skip });
    expect_error(all, "core-100.img: payload checksum mismatch");
}

// A FIFO in place of an image gets an error, not a hang.
TEST(InspectCodec, FifoInPlaceOfAnImageDoesNotHang)
{
    TempDir dir;
    ASSERT_TRUE(test::write_sample_checkpoint(dir / "cp"));
    std::filesystem::remove(dir / "cp/mm-100.img");
    ASSERT_EQ(::mkfifo((dir / "cp/mm-100.img").c_str(), 0600), 0);
    expect_error(decode_to_json({ dir / "cp", "", "", Verify::Checksums }), "mm-100.img is not a regular file");
    expect_error(decode_to_json({ dir / "cp", "", "", Verify::Skip }), "mm-100.img is not a regular file");
}

} // namespace
} // namespace cryo::inspect
