// Tests for loading page files into cryo's memory while verifying them
// (mem/prefill.h), on a memfd page file and VMAs at addresses free in the
// test process.
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include <string>

#include <gtest/gtest.h>

#include "base/fd.h"
#include "mem/prefill.h"

namespace cryo::mem {
namespace {

constexpr uint64_t kPage = 4096;

// Four pages of address space free in this process, in two VMAs of two
// pages each.
struct Layout {
    uint64_t base { 0 };
    image::MemoryImage memory;
};

Layout free_layout()
{
    Layout layout;
    void* probe = ::mmap(nullptr, 4 * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(probe, MAP_FAILED);
    ::munmap(probe, 4 * kPage);
    layout.base = reinterpret_cast<uint64_t>(probe);
    for (uint64_t start : { layout.base, layout.base + 2 * kPage }) {
        auto* vma = layout.memory.add_vmas();
        vma->set_start(start);
        vma->set_end(start + 2 * kPage);
        vma->set_kind(image::VMA_KIND_ANONYMOUS);
        vma->set_stored_bytes(2 * kPage);
    }
    return layout;
}

void add_run(image::PageMap& map, uint64_t address, uint64_t file_offset, uint32_t ancestor)
{
    auto* run = map.add_runs();
    run->set_address(address);
    run->set_page_count(1);
    run->set_file_offset(file_offset);
    run->set_ancestor(ancestor);
}

// A page file of three pages filled with 'a', 'b' and 'c'.
std::string page_bytes()
{
    return std::string(kPage, 'a') + std::string(kPage, 'b') + std::string(kPage, 'c');
}

UniqueFd page_file(const std::string& bytes)
{
    UniqueFd fd(::memfd_create("cryo-prefill-test", MFD_CLOEXEC));
    EXPECT_GE(fd.get(), 0);
    EXPECT_EQ(::pwrite(fd.get(), bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
    return fd;
}

bool mapped(uint64_t address)
{
    unsigned char resident = 0;
    return ::mincore(reinterpret_cast<void*>(address), kPage, &resident) == 0;
}

// An incremental checkpoint's run in an ancestor's page file: its offset
// is in that other file, so the VMA holding it must not be loaded from this
// one, even where the offset happens to be valid here too.
TEST(Prefill, VmaWithARunInAnAncestorsFileIsNotLoaded)
{
    Layout layout = free_layout();
    image::PageMap map;
    add_run(map, layout.base, 0, 0);
    add_run(map, layout.base + kPage, kPage, 0);
    add_run(map, layout.base + 2 * kPage, 2 * kPage, 1);
    std::string bytes = page_bytes();
    UniqueFd fd = page_file(bytes);
    Prefill prefill;
    Prefill::PageFile file { fd.get(), "pages-test.img", bytes.size(), XXH3_64bits(bytes.data(), bytes.size()) };
    auto loaded = prefill.load(0, file, layout.memory, map, [](const image::Vma&) { return true; });
    ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
    ASSERT_EQ(prefill.vmas().size(), 1u);
    EXPECT_EQ(prefill.vmas()[0].start, layout.base);
    EXPECT_EQ(prefill.bytes(), 2 * kPage);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(layout.base), kPage), std::string(kPage, 'a'));
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(layout.base + kPage), kPage), std::string(kPage, 'b'));
    EXPECT_FALSE(mapped(layout.base + 2 * kPage));
    prefill.unmap();
    EXPECT_FALSE(mapped(layout.base));
}

// Enough 4 MiB pieces for two populating threads (every other piece each),
// and a last piece that is not whole: every page lands where it belongs.
TEST(Prefill, LargeFileLandsPageByPageWithTwoPopulatingThreads)
{
    constexpr uint64_t kPages = (40ull << 20) / kPage + 3;
    std::string bytes;
    bytes.reserve(kPages * kPage);
    for (uint64_t page = 0; page < kPages; ++page)
        bytes.append(kPage, static_cast<char>(page * 7 + 3));
    UniqueFd fd = page_file(bytes);
    // Free address space, found after the large allocations above.
    void* probe = ::mmap(nullptr, kPages * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(probe, MAP_FAILED);
    ::munmap(probe, kPages * kPage);
    uint64_t base = reinterpret_cast<uint64_t>(probe);
    image::MemoryImage memory;
    auto* vma = memory.add_vmas();
    vma->set_start(base);
    vma->set_end(base + kPages * kPage);
    vma->set_kind(image::VMA_KIND_ANONYMOUS);
    vma->set_stored_bytes(kPages * kPage);
    image::PageMap map;
    auto* run = map.add_runs();
    run->set_address(base);
    run->set_page_count(kPages);
    run->set_file_offset(0);
    Prefill prefill;
    Prefill::PageFile file { fd.get(), "pages-large.img", bytes.size(), XXH3_64bits(bytes.data(), bytes.size()) };
    auto loaded = prefill.load(0, file, memory, map, [](const image::Vma&) { return true; });
    ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
    EXPECT_EQ(prefill.bytes(), kPages * kPage);
    const char* loaded_bytes = reinterpret_cast<const char*>(base);
    uint64_t wrong = 0;
    for (uint64_t page = 0; page < kPages; ++page)
        if (loaded_bytes[page * kPage] != static_cast<char>(page * 7 + 3)
            || loaded_bytes[page * kPage + kPage - 1] != static_cast<char>(page * 7 + 3))
            ++wrong;
    EXPECT_EQ(wrong, 0u);
    prefill.unmap();
}

TEST(Prefill, ChecksumMismatchIsRefused)
{
    Layout layout = free_layout();
    image::PageMap map;
    add_run(map, layout.base, 0, 0);
    std::string bytes = page_bytes();
    UniqueFd fd = page_file(bytes);
    Prefill prefill;
    Prefill::PageFile file { fd.get(), "pages-test.img", bytes.size(), XXH3_64bits(bytes.data(), bytes.size()) + 1 };
    auto loaded = prefill.load(0, file, layout.memory, map, [](const image::Vma&) { return true; });
    ASSERT_FALSE(loaded.has_value());
    EXPECT_NE(loaded.error().message().find("pages-test.img: checksum mismatch"), std::string::npos)
        << loaded.error().message();
}

} // namespace
} // namespace cryo::mem
