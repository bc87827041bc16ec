// Tests of image/chain.h and of the chain-aware page map check: parents are
// found relative to the child, verified by their manifest checksum, and
// runs that refer to ancestors are checked against the ancestors' files.
#include <gtest/gtest.h>

#include "image/chain.h"
#include "image/validate.h"
#include "image/writer.h"
#include "temp_dir.h"

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

} // namespace
} // namespace cryo::image
