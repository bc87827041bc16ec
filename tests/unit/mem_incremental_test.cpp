// Tests of mem/incremental.h and mem/dirty_tracking.h on this test process's
// own memory: a region tracked with a userfaultfd of its own, some pages
// written, a made-up parent page map; plan_pages() must take from the parent
// exactly the pages that were neither written nor missing from the parent.
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "mem/incremental.h"

namespace cryo::mem {
namespace {

constexpr uint64_t kPage = 4096;
constexpr int kPages = 16;

struct Region {
    Region()
    {
        memory = static_cast<char*>(::mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        for (int i = 0; i < kPages; ++i)
            memory[i * kPage] = static_cast<char>(i + 1);
    }
    ~Region() { ::munmap(memory, kPages * kPage); }
    uint64_t start() const { return reinterpret_cast<uint64_t>(memory); }
    image::Vma vma() const
    {
        image::Vma vma;
        vma.set_start(start());
        vma.set_end(start() + kPages * kPage);
        vma.set_prot(PROT_READ | PROT_WRITE);
        vma.set_kind(image::VMA_KIND_ANONYMOUS);
        return vma;
    }
    char* memory;
};

// A userfaultfd of this process, with WP_ASYNC (as cryo's copy of a
// target's would be).
std::optional<ProcessTracking> own_tracking()
{
    long fd = ::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0)
        return std::nullopt;
    uffdio_api api {};
    api.api = UFFD_API;
    api.features = (1ull << 15) | (1ull << 13);   // WP_ASYNC, WP_UNPOPULATED
    if (::ioctl(static_cast<int>(fd), UFFDIO_API, &api) < 0) {
        ::close(static_cast<int>(fd));
        return std::nullopt;
    }
    return ProcessTracking::adopt(::getpid(), UniqueFd(static_cast<int>(fd)));
}

TEST(MemIncremental, OnlyUnwrittenPagesTheParentHasComeFromIt)
{
    Region region;
    auto tracking = own_tracking();
    if (!tracking)
        GTEST_SKIP() << "userfaultfd WP_ASYNC is not available here";
    std::vector<image::Vma> vmas { region.vma() };
    ASSERT_TRUE(tracking->track(vmas[0]));
    region.memory[3 * kPage] = 'w';    // written since
    region.memory[9 * kPage] = 'w';
    // The parent has pages 0-11, at offsets 0x10000 + ..., in its own
    // page file (ancestor 0 there): 1 up here.
    image::PageMap parent;
    auto* run = parent.add_runs();
    run->set_address(region.start());
    run->set_page_count(12);
    run->set_file_offset(0x10000);

    image::PageMap map;
    auto plan = plan_pages(::getpid(), vmas, { .tracking = &*tracking, .parent_map = &parent }, 0, map);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_EQ(plan->stored_bytes, (2 + 4) * kPage);    // pages 3, 9 and 12-15
    EXPECT_EQ(plan->parent_bytes, 10 * kPage);
    EXPECT_EQ(vmas[0].stored_bytes(), kPages * kPage);
    // Runs: 0-2 parent, 3 stored, 4-8 parent, 9 stored, 10-11 parent, 12-15 stored.
    ASSERT_EQ(map.runs_size(), 6);
    auto expect_run = [&](int index, int first, int count, uint32_t ancestor, uint64_t offset) {
        const auto& got = map.runs(index);
        EXPECT_EQ(got.address(), region.start() + first * kPage) << "run " << index;
        EXPECT_EQ(got.page_count(), static_cast<uint64_t>(count)) << "run " << index;
        EXPECT_EQ(got.ancestor(), ancestor) << "run " << index;
        EXPECT_EQ(got.file_offset(), offset) << "run " << index;
    };
    expect_run(0, 0, 3, 1, 0x10000);
    expect_run(1, 3, 1, 0, 0);
    expect_run(2, 4, 5, 1, 0x10000 + 4 * kPage);
    expect_run(3, 9, 1, 0, kPage);
    expect_run(4, 10, 2, 1, 0x10000 + 10 * kPage);
    expect_run(5, 12, 4, 0, 2 * kPage);
    ASSERT_EQ(plan->copies.size(), 3u);

    // The scan re-protected the written pages: a second plan finds none.
    image::PageMap again;
    auto second = plan_pages(::getpid(), vmas, { .tracking = &*tracking, .parent_map = &parent }, 0, again);
    ASSERT_TRUE(second);
    EXPECT_EQ(second->parent_bytes, 12 * kPage);
}

TEST(MemIncremental, UntrackedMemoryIsStoredInFull)
{
    Region region;
    auto tracking = own_tracking();
    if (!tracking)
        GTEST_SKIP() << "userfaultfd WP_ASYNC is not available here";
    std::vector<image::Vma> vmas { region.vma() };
    image::PageMap parent;
    auto* run = parent.add_runs();
    run->set_address(region.start());
    run->set_page_count(kPages);
    // Never registered: the kernel refuses the scan, so nothing comes from
    // the parent; likewise without any tracking.
    for (ProcessTracking* source : { &*tracking, static_cast<ProcessTracking*>(nullptr) }) {
        image::PageMap map;
        auto plan = plan_pages(::getpid(), vmas, { .tracking = source, .parent_map = &parent }, 0, map);
        ASSERT_TRUE(plan) << plan.error().message();
        EXPECT_EQ(plan->stored_bytes, kPages * kPage);
        EXPECT_EQ(plan->parent_bytes, 0u);
    }
}

} // namespace
} // namespace cryo::mem
