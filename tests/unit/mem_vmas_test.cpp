// Tests for the classification of mappings (mem/vmas.h), fed smaps header
// and VmFlags lines as Linux 6.18 prints them for memfds, deleted files,
// memfd_secret, System V shared memory and hugetlbfs.
#include <sys/mman.h>
#include <sys/shm.h>

#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "mem/sysv_shm.h"
#include "mem/vmas.h"
#include "proc/maps.h"

namespace cryo::mem {
namespace {

proc::SmapsEntry entry(const std::string& header, const std::string& flags)
{
    auto parsed = proc::parse_smaps(header + "\nVmFlags: " + flags + "\n");
    EXPECT_TRUE(parsed.has_value()) << header;
    EXPECT_EQ(parsed->size(), 1u) << header;
    return parsed->front();
}

Result<image::Vma> classify(const std::string& header, const std::string& flags)
{
    return classify_vma(entry(header, flags));
}

TEST(ClassifyVma, SharedMemfd)
{
    auto vma = classify("7fa92197b000-7fa92197d000 rw-s 00001000 00:01 30 /memfd:foo (deleted)", "rd wr sh mr mw me ms");
    ASSERT_TRUE(vma.has_value()) << vma.error().message();
    EXPECT_EQ(vma->kind(), image::VMA_KIND_MEMFD_SHARED);
    EXPECT_EQ(vma->path(), "/memfd:foo");
    EXPECT_EQ(vma->inode(), 30u);
    EXPECT_EQ(vma->pgoff(), 0x1000u);
    EXPECT_TRUE(vma->may_write());
    EXPECT_TRUE(maps_unlinked_file(*vma));
    EXPECT_FALSE(stores_pages(*vma));
}

// A shared mapping made from a read-only open file has no "mw".
TEST(ClassifyVma, ReadOnlySharedMemfdMayNotWrite)
{
    auto vma = classify("7fa92197e000-7fa92197f000 r--s 00001000 00:01 30 /memfd:foo (deleted)", "rd mr me ms");
    ASSERT_TRUE(vma.has_value()) << vma.error().message();
    EXPECT_EQ(vma->kind(), image::VMA_KIND_MEMFD_SHARED);
    EXPECT_FALSE(vma->may_write());
    EXPECT_EQ(vma->prot(), static_cast<uint32_t>(PROT_READ));
}

TEST(ClassifyVma, PrivateMemfdStoresItsChangedPages)
{
    auto vma = classify("7fa92197f000-7fa921981000 rw-p 00000000 00:01 30 /memfd:foo (deleted)", "rd wr mr mw me ac");
    ASSERT_TRUE(vma.has_value()) << vma.error().message();
    EXPECT_EQ(vma->kind(), image::VMA_KIND_MEMFD_PRIVATE);
    EXPECT_TRUE(stores_pages(*vma));
}

TEST(ClassifyVma, DeletedFile)
{
    auto shared = classify("7f03e09fe000-7f03e0a00000 rw-s 00000000 fe:00 10952865 /tmp/cap/gone (deleted)", "rd wr sh mr mw me ms");
    ASSERT_TRUE(shared.has_value()) << shared.error().message();
    EXPECT_EQ(shared->kind(), image::VMA_KIND_DELETED_FILE_SHARED);
    EXPECT_EQ(shared->path(), "/tmp/cap/gone");
    auto copy = classify("7f03e09fe000-7f03e0a00000 rw-p 00000000 fe:00 10952865 /tmp/cap/gone (deleted)", "rd wr mr mw me ac");
    ASSERT_TRUE(copy.has_value()) << copy.error().message();
    EXPECT_EQ(copy->kind(), image::VMA_KIND_DELETED_FILE_PRIVATE);
    EXPECT_TRUE(stores_pages(*copy));
}

TEST(ClassifyVma, SecretMemory)
{
    auto vma = classify("7fa92197d000-7fa92197e000 rw-s 00000000 00:0e 57713 /secretmem (deleted)", "rd wr sh mr mw ms lo dd");
    ASSERT_TRUE(vma.has_value()) << vma.error().message();
    EXPECT_EQ(vma->kind(), image::VMA_KIND_SECRET);
    EXPECT_TRUE(maps_unlinked_file(*vma));
    EXPECT_FALSE(stores_pages(*vma));   // its pages travel as the file's content
    EXPECT_TRUE(vma->locked());
    EXPECT_TRUE(vma->dont_dump());
}

// Shared anonymous memory is a deleted /dev/zero, not a deleted file.
TEST(ClassifyVma, SharedAnonymousIsNotADeletedFile)
{
    auto vma = classify("7f03e09fb000-7f03e09fc000 rw-s 00000000 00:01 24 /dev/zero (deleted)", "rd wr sh mr mw me ms");
    ASSERT_TRUE(vma.has_value()) << vma.error().message();
    EXPECT_EQ(vma->kind(), image::VMA_KIND_SHARED_ANONYMOUS);
}

// A file whose name merely looks like a memfd's is a file.
TEST(ClassifyVma, FileNamedLikeAMemfd)
{
    auto vma = classify("7f03e0a00000-7f03e0a01000 r--p 00000000 fe:00 42 /memfd:not-really", "rd mr mw me");
    ASSERT_TRUE(vma.has_value()) << vma.error().message();
    EXPECT_EQ(vma->kind(), image::VMA_KIND_FILE_PRIVATE);
}

// The "inode" of System V memory is the segment id: 0 for the first.
TEST(ClassifyVma, SystemVSharedMemoryNamesItsSegment)
{
    for (uint64_t id : { 0, 7 }) {
        auto vma = classify(fmt::format("7f9f8f8d3000-7f9f8f8d5000 r--s 00001000 00:01 {} /SYSV43525931 (deleted)", id),
                            "rd sh mr mw me ms");
        ASSERT_TRUE(vma.has_value()) << vma.error().message();
        EXPECT_EQ(vma->kind(), image::VMA_KIND_SYSV_SHM);
        EXPECT_EQ(vma->shmem_id(), id);
        EXPECT_EQ(vma->pgoff(), 0x1000u);
        EXPECT_TRUE(vma->may_write());
    }
}

TEST(SysvAttachment, OneShmatPerBaseWithTheHolesUnmapped)
{
    image::MemoryImage image;
    auto add = [&](uint64_t start, uint64_t end, uint64_t offset, uint32_t prot, bool may_write) {
        auto* vma = image.add_vmas();
        vma->set_kind(image::VMA_KIND_SYSV_SHM);
        vma->set_start(start);
        vma->set_end(end);
        vma->set_pgoff(offset);
        vma->set_prot(prot);
        vma->set_may_write(may_write);
        vma->set_shmem_id(3);
        vma->set_shmem_size(4 * 4096 - 100);
        return *vma;
    };
    // Pages 1 and 3 of a four-page segment at 0x10000; page 0 and 2 unmapped.
    auto first = add(0x11000, 0x12000, 0x1000, PROT_READ, false);
    add(0x13000, 0x14000, 0x3000, PROT_READ | PROT_EXEC, false);
    auto attachment = sysv_attachment(image, first);
    ASSERT_TRUE(attachment.has_value()) << attachment.error().message();
    EXPECT_EQ(attachment->base, 0x10000u);
    EXPECT_EQ(attachment->size, 0x4000u);
    EXPECT_EQ(attachment->flags, SHM_REMAP | SHM_RDONLY | SHM_EXEC);
    std::vector<std::pair<uint64_t, uint64_t>> holes { { 0x10000, 0x11000 }, { 0x12000, 0x13000 } };
    EXPECT_EQ(attachment->holes, holes);
    // Something else in a hole would be replaced by shmat(): refused.
    auto* other = image.add_vmas();
    other->set_kind(image::VMA_KIND_ANONYMOUS);
    other->set_start(0x12000);
    other->set_end(0x13000);
    auto refused = sysv_attachment(image, first);
    ASSERT_FALSE(refused.has_value());
    EXPECT_NE(refused.error().message().find("where the process mapped something else"), std::string::npos);
}

TEST(ClassifyVma, RefusedMappingsNameThemselves)
{
    struct Case {
        const char* header;
        const char* flags;
        const char* message;
    };
    const Case cases[] = {
        { "7f0000000000-7f0000200000 rw-s 00000000 00:01 7 /SYSV00000000 (deleted)", "rd wr sh mr mw me ms ht",
          "is System V shared memory in huge pages (SHM_HUGETLB)" },
        { "7f0000000000-7f0000200000 rw-s 00000000 00:10 77 /memfd:huge (deleted)", "rd wr sh mr mw me ms ht",
          "is hugetlbfs memory (MAP_HUGETLB or MFD_HUGETLB)" },
        { "7f0000000000-7f0000200000 rw-s 00000000 00:10 78 /anon_hugepage (deleted)", "rd wr sh mr mw me ms ht",
          "is hugetlbfs memory (MAP_HUGETLB or MFD_HUGETLB)" },
    };
    for (const auto& test : cases) {
        auto vma = classify(test.header, test.flags);
        ASSERT_FALSE(vma.has_value()) << test.header;
        EXPECT_NE(vma.error().message().find(test.message), std::string::npos) << vma.error().message();
    }
}

} // namespace
} // namespace cryo::mem
