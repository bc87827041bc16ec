// Tests of image/chain.h and of the chain-aware page map check: parents are
// found relative to the child, verified by their manifest checksum, and
// runs that refer to ancestors are checked against the ancestors' files;
// dedup punches out of an ancestor exactly what the newest does not read.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "base/syscalls.h"
#include "image/chain.h"
#include "image/dedup.h"
#include "image/reader.h"
#include "image/validate.h"
#include "image/writer.h"
#include "temp_dir.h"
#include "tree.pb.h"

namespace cryo::image {
namespace {

std::string error_of(const Result<void>& result) { return result ? "" : result.error().message(); }

// A checkpoint with only a manifest (and its parent fields).
void write_checkpoint(const std::string& directory, const std::string& parent, uint64_t parent_xxh3)
{
    auto writer = ImageWriter::create(directory, SyncMode::NoSync);
    ASSERT_TRUE(writer) << writer.error().message();
    Manifest manifest;
    manifest.set_parent(parent);
    manifest.set_parent_manifest_xxh3(parent_xxh3);
    ASSERT_TRUE(writer->commit(std::move(manifest)));
}

PageMap one_run(uint32_t ancestor, uint64_t pages, uint64_t offset)
{
    PageMap map;
    auto* run = map.add_runs();
    run->set_address(0x10000);
    run->set_page_count(pages);
    run->set_file_offset(offset);
    run->set_ancestor(ancestor);
    return map;
}

TEST(ImageChain, ParentPathsAreRelativeToTheChild)
{
    EXPECT_EQ(resolve_parent("/images/round2", "../round1"), "/images/round1");
    EXPECT_EQ(resolve_parent("round2", "../round1"), "round1");
    EXPECT_EQ(resolve_parent("/images/round2", "/elsewhere/round1"), "/elsewhere/round1");
}

TEST(ImageChain, OpensAndVerifiesEveryAncestor)
{
    test::TempDir temp;
    ASSERT_NO_FATAL_FAILURE(write_checkpoint(temp / "one", "", 0));
    auto one = manifest_checksum(temp / "one");
    ASSERT_TRUE(one);
    ASSERT_NO_FATAL_FAILURE(write_checkpoint(temp / "two", "../one", *one));
    auto two = manifest_checksum(temp / "two");
    ASSERT_TRUE(two);
    Manifest three;
    three.set_parent("../two");
    three.set_parent_manifest_xxh3(*two);
    auto chain = ParentChain::open(temp / "three", three);
    ASSERT_TRUE(chain) << chain.error().message();
    EXPECT_EQ(chain->depth(), 2u);
    EXPECT_EQ(chain->ancestor(2).directory(), temp / "one");

    // A parent rewritten since is refused.
    three.set_parent_manifest_xxh3(*two + 1);
    auto changed = ParentChain::open(temp / "three", three);
    ASSERT_FALSE(changed);
    EXPECT_NE(changed.error().message().find("changed since"), std::string::npos) << changed.error().message();

    Manifest orphan;
    orphan.set_parent("../missing");
    auto missing = ParentChain::open(temp / "three", orphan);
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message().find("parent checkpoint ../missing"), std::string::npos)
        << missing.error().message();
}

TEST(ImageChain, AncestorRunsAreCheckedAgainstTheAncestorsFiles)
{
    std::vector<uint64_t> sizes { 8192 };
    EXPECT_TRUE(check_page_map(one_run(1, 2, 0), "pages-1.img", 0, sizes));
    EXPECT_NE(error_of(check_page_map(one_run(1, 2, 4096), "pages-1.img", 1 << 20, sizes)).find("of ancestor checkpoint 1"),
              std::string::npos);
    EXPECT_NE(error_of(check_page_map(one_run(2, 1, 0), "pages-1.img", 1 << 20, sizes)).find("refers to ancestor checkpoint 2"),
              std::string::npos);
    // Without a chain, any ancestor is refused.
    EXPECT_NE(error_of(check_page_map(one_run(1, 1, 0), "pages-1.img", 1 << 20)).find("refers to ancestor"),
              std::string::npos);
}

constexpr int kPid = 7;

// A checkpoint of process kPid: its page map and `pages` (one letter per
// page, each page filled with its letter).
void write_memory_checkpoint(const std::string& directory, const PageMap& map, const std::string& pages,
                             const std::string& parent = "", uint64_t parent_xxh3 = 0)
{
    auto writer = ImageWriter::create(directory, SyncMode::NoSync);
    ASSERT_TRUE(writer) << writer.error().message();
    ProcessTree tree;
    tree.add_processes()->set_pid(kPid);
    ASSERT_TRUE(writer->write_message(std::string(kTreeName), ImageKind::Tree, tree));
    PageMap named = map;
    named.set_pid(kPid);
    named.set_page_file(pages_name(kPid));
    ASSERT_TRUE(writer->write_message(pagemap_name(kPid), ImageKind::PageMap, named));
    auto file = writer->create_file(pages_name(kPid));
    ASSERT_TRUE(file);
    for (char letter : pages) {
        std::string page(kPageSize, letter);
        ASSERT_TRUE(file->write(std::as_bytes(std::span(page.data(), page.size()))));
    }
    ASSERT_TRUE(writer->finish_file(std::move(*file)));
    Manifest manifest;
    manifest.set_parent(parent);
    manifest.set_parent_manifest_xxh3(parent_xxh3);
    ASSERT_TRUE(writer->commit(std::move(manifest)));
}

void add_run(PageMap& map, uint64_t page, uint64_t count, uint64_t file_page, uint32_t ancestor)
{
    auto* run = map.add_runs();
    run->set_address(0x10000 + page * kPageSize);
    run->set_page_count(count);
    run->set_file_offset(file_page * kPageSize);
    run->set_ancestor(ancestor);
}

TEST(ImageChain, DedupPunchesWhatTheNewestDoesNotRead)
{
    test::TempDir temp;
    // "one" stores pages A B C D; "two" rewrote page 1 (b) and reads the
    // others from "one".
    PageMap first;
    add_run(first, 0, 4, 0, 0);
    ASSERT_NO_FATAL_FAILURE(write_memory_checkpoint(temp / "one", first, "ABCD"));
    PageMap second;
    add_run(second, 0, 1, 0, 1);
    add_run(second, 1, 1, 0, 0);
    add_run(second, 2, 2, 2, 1);
    auto one_xxh3 = manifest_checksum(temp / "one");
    ASSERT_TRUE(one_xxh3);
    ASSERT_NO_FATAL_FAILURE(write_memory_checkpoint(temp / "two", second, "b", "../one", *one_xxh3));

    auto result = dedup_chain(temp / "two");
    ASSERT_TRUE(result) << result.error().message();
    ASSERT_EQ(result->ancestors.size(), 1u);
    EXPECT_EQ(result->punched_bytes, kPageSize);

    std::ifstream in(temp / "one" + "/" + pages_name(kPid), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_EQ(bytes.size(), 4 * kPageSize);
    EXPECT_EQ(bytes.substr(0, kPageSize), std::string(kPageSize, 'A'));
    EXPECT_EQ(bytes.substr(kPageSize, kPageSize), std::string(kPageSize, '\0'));
    EXPECT_EQ(bytes.substr(2 * kPageSize), std::string(kPageSize, 'C') + std::string(kPageSize, 'D'));

    // Every checksum and link holds; "one" is marked and refused as a target.
    auto two = ImageReader::open(temp / "two");
    ASSERT_TRUE(two);
    auto chain = ParentChain::open(temp / "two", two->manifest());
    ASSERT_TRUE(chain) << chain.error().message();
    EXPECT_EQ(chain->ancestor(1).manifest().deduped_by(), "../two");
    EXPECT_NE(error_of(refuse_deduped(temp / "one", chain->ancestor(1).manifest(), "target of a restore"))
                  .find("one was deduplicated for " + (temp / "two")),
              std::string::npos);
    EXPECT_TRUE(refuse_deduped(temp / "two", two->manifest(), "target of a restore"));

    // The old link (the manifest of "one" before the dedup) says why it fails.
    Manifest branch;
    branch.set_parent("../one");
    branch.set_parent_manifest_xxh3(*one_xxh3);
    auto refused = ParentChain::open(temp / "branch", branch);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message().find("was deduplicated for"), std::string::npos) << refused.error().message();
}

// A parent a lazy restore fetched sits inside its child as fetched-parent/
// (lazy/remote.h) and is taken from there, not from the manifest's path.
TEST(ImageChain, FetchedParentInsideTheChildIsTakenFirst)
{
    EXPECT_EQ(fetched_ancestor_path(1), "fetched-parent");
    EXPECT_EQ(fetched_ancestor_path(2), "fetched-parent/fetched-parent");
    test::TempDir temp;
    std::string fetched = temp / "last" + "/" + fetched_ancestor_path(2);
    std::filesystem::create_directories(fetched);
    ASSERT_NO_FATAL_FAILURE(write_checkpoint(fetched, "", 0));
    auto one = manifest_checksum(fetched);
    ASSERT_TRUE(one);
    std::string parent = temp / "last" + "/" + fetched_ancestor_path(1);
    ASSERT_NO_FATAL_FAILURE(write_checkpoint(parent, "/nowhere/one", *one));
    auto two = manifest_checksum(parent);
    ASSERT_TRUE(two);
    Manifest last;
    last.set_parent("../two");
    last.set_parent_manifest_xxh3(*two);
    auto chain = ParentChain::open(temp / "last", last);
    ASSERT_TRUE(chain) << chain.error().message();
    ASSERT_EQ(chain->depth(), 2u);
    EXPECT_EQ(chain->ancestor(1).directory(), parent);
    EXPECT_EQ(chain->ancestor(2).directory(), fetched);
}

// A lazy restore verifies the ancestors' metadata and leaves their page
// files with chunk checksums to the lazy-pages server; page files without
// (deduplicated ones) are still verified whole.
TEST(ImageChain, LazyRestoreLeavesChunkedAncestorPagesForLater)
{
    test::TempDir temp;
    PageMap first;
    add_run(first, 0, 4, 0, 0);
    ASSERT_NO_FATAL_FAILURE(write_memory_checkpoint(temp / "one", first, "ABCD"));
    auto one = ImageReader::open(temp / "one");
    ASSERT_TRUE(one);
    ASSERT_TRUE(verified_by_chunks(*one, *one->listed(pages_name(kPid))));
    EXPECT_FALSE(verified_by_chunks(*one, *one->listed(pagemap_name(kPid))));
    auto one_xxh3 = manifest_checksum(temp / "one");
    ASSERT_TRUE(one_xxh3);
    Manifest two;
    two.set_parent("../one");
    two.set_parent_manifest_xxh3(*one_xxh3);
    auto flip = [&](const std::string& name, long offset) {
        std::fstream file(temp / "one" + "/" + name, std::ios::in | std::ios::out | std::ios::binary);
        file.seekg(offset);
        char byte = static_cast<char>(file.get());
        file.seekp(offset);
        file.put(static_cast<char>(byte ^ 1));
    };
    flip(pages_name(kPid), 5000);
    auto whole = ParentChain::open(temp / "two", two);
    ASSERT_FALSE(whole);
    EXPECT_NE(whole.error().message().find("checksum mismatch"), std::string::npos) << whole.error().message();
    EXPECT_TRUE(ParentChain::open(temp / "two", two, ChainVerify::ChunkedPagesLater));
    EXPECT_TRUE(ParentChain::open(temp / "two", two, ChainVerify::MetadataOnly));
    flip(pages_name(kPid), 5000);
    flip(pagemap_name(kPid), 20);
    EXPECT_FALSE(ParentChain::open(temp / "two", two, ChainVerify::ChunkedPagesLater));
    EXPECT_FALSE(ParentChain::open(temp / "two", two, ChainVerify::MetadataOnly));
    EXPECT_TRUE(ParentChain::open(temp / "two", two, ChainVerify::LinksOnly));
}

TEST(ImageChain, ChainFieldsAreChecked)
{
    Manifest manifest;
    EXPECT_TRUE(check_chain_fields(manifest));
    manifest.set_parent("../one");
    EXPECT_NE(error_of(check_chain_fields(manifest)).find("without the checksum"), std::string::npos);
    manifest.set_parent_manifest_xxh3(1);
    EXPECT_TRUE(check_chain_fields(manifest));
    manifest.set_deduped_by(std::string("../t\0wo", 7));
    EXPECT_NE(error_of(check_chain_fields(manifest)).find("deduped_by is not a usable path"), std::string::npos);
}

} // namespace
} // namespace cryo::image
