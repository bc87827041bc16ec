// migrate::LivePages, the source of `cryo migrate --lazy`: the memory of a
// forked child is listed in a page map without being copied, and served
// over a socketpair to a net::PageFetcher. What comes back must be exactly
// the stored bytes of the page file followed by the child's memory, also
// in a range that crosses from one to the other and spans pages the child
// shares copy-on-write with this process and pages of its own. Serving
// must not unshare the shared pages (their frames stay this process's).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/kill.h"
#include "image/format.h"
#include "image/reader.h"
#include "image/writer.h"
#include "manifest.pb.h"
#include "mem/vmas.h"
#include "migrate/live_pages.h"
#include "net/page_fetch.h"
#include "temp_dir.h"

namespace cryo {

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kShared = 32;   // written before the fork: shared copy-on-write
constexpr size_t kOwn = 16;      // written by the child after the fork
constexpr size_t kPages = kShared + kOwn + 16;   // the last 16 never touched
constexpr size_t kStored = 2 * kPage;            // bytes in the page file before the memory

std::byte pattern(size_t page, size_t at, bool child)
{
    return static_cast<std::byte>((page * 131 + at * 7 + (child ? 3 : 0)) & 0xff);
}

uint64_t frame_of(pid_t pid, const std::byte* address)
{
    auto pagemap = open_file(fmt::format("/proc/{}/pagemap", pid), O_RDONLY | O_CLOEXEC);
    uint64_t entry = 0;
    if (!pagemap || ::pread(pagemap->get(), &entry, sizeof(entry), static_cast<off_t>(
                                reinterpret_cast<uint64_t>(address) / kPage * 8)) != sizeof(entry))
        return 0;
    return entry & ((1ull << 55) - 1);
}

// A child with the region, pages [kShared, kShared + kOwn) rewritten, that
// waits to be killed.
pid_t start_child(std::byte* region)
{
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = ::fork();
    if (pid == 0) {
        for (size_t page = kShared; page < kShared + kOwn; ++page)
            for (size_t at = 0; at < kPage; ++at)
                region[page * kPage + at] = pattern(page, at, true);
        (void)::write(ready[1], "r", 1);
        for (;;)
            ::pause();
    }
    char byte;
    ::close(ready[1]);
    bool ok = pid > 0 && ::read(ready[0], &byte, 1) == 1;
    ::close(ready[0]);
    return ok ? pid : -1;
}

} // namespace

TEST(MigrateLivePages, ServesTheStoredBytesThenTheMemoryWithoutUnsharingIt)
{
    // Between two PROT_NONE pages: a VMA of its own.
    auto* base = static_cast<std::byte*>(
        ::mmap(nullptr, (kPages + 2) * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(base, MAP_FAILED);
    std::byte* region = base + kPage;
    ASSERT_EQ(::mprotect(region, kPages * kPage, PROT_READ | PROT_WRITE), 0);
    for (size_t page = 0; page < kShared; ++page)
        for (size_t at = 0; at < kPage; ++at)
            region[page * kPage + at] = pattern(page, at, false);
    pid_t child = start_child(region);
    ASSERT_GT(child, 1);
    struct Reap {
        pid_t pid;
        ~Reap()
        {
            kill_quietly(pid);
            ::waitpid(pid, nullptr, 0);
        }
    } reap { child };

    // The dump's part: the page file holds kStored bytes, the memory is listed.
    test::TempDir temp;
    std::string directory = temp / "checkpoint";
    auto writer = image::ImageWriter::create(directory, image::SyncMode::NoSync);
    ASSERT_TRUE(writer) << writer.error().message();
    auto pages = writer->create_file(image::pages_name(child));
    ASSERT_TRUE(pages) << pages.error().message();
    std::vector<std::byte> stored(kStored, std::byte { 0xab });
    ASSERT_TRUE(pages->write(stored));
    auto vmas = mem::collect_vmas(child);
    ASSERT_TRUE(vmas) << vmas.error().message();
    std::erase_if(*vmas, [&](const image::Vma& vma) { return vma.start() != reinterpret_cast<uint64_t>(region); });
    ASSERT_EQ(vmas->size(), 1u);
    migrate::LivePages live;
    image::PageMap map;
    ASSERT_TRUE(live.record(child, child, *vmas, pages->size(), map));
    ASSERT_TRUE(writer->finish_file(std::move(*pages)));
    ASSERT_TRUE(writer->commit(image::Manifest()));
    EXPECT_EQ(live.listed_bytes(), (kShared + kOwn) * kPage);
    EXPECT_EQ(vmas->front().stored_bytes(), (kShared + kOwn) * kPage);
    // Run after run, from the end of the stored bytes on.
    uint64_t offset = kStored;
    for (const auto& run : map.runs()) {
        EXPECT_EQ(run.file_offset(), offset);
        offset += run.page_count() * kPage;
    }
    EXPECT_EQ(offset, kStored + (kShared + kOwn) * kPage);

    ASSERT_TRUE(live.open(directory));
    image::Manifest manifest;
    ASSERT_TRUE(image::decode_image(live.manifest(), image::ImageKind::Manifest, manifest));
    ASSERT_EQ(manifest.files_size(), 1);
    EXPECT_EQ(manifest.files(0).size(), kStored + (kShared + kOwn) * kPage);
    EXPECT_EQ(manifest.files(0).chunk_xxh3_size(), 0);

    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    net::Channel client(UniqueFd(fds[0]), "source");
    net::Channel server(UniqueFd(fds[1]), "destination");
    Result<net::ServeStats> served = fail("not served");
    std::thread serving([&] {
        if (auto sent = server.send_text(net::FrameType::Ready, live.manifest()); !sent)
            served = std::unexpected(sent.error());
        else
            served = live.serve(server, [] {});
    });
    auto fetcher = net::PageFetcher::over(client);
    ASSERT_TRUE(fetcher) << fetcher.error().message();
    // From the last stored page through every listed page.
    std::vector<std::byte> got(kPage + (kShared + kOwn) * kPage);
    ASSERT_TRUE((*fetcher)->fetch(image::pages_name(child), kStored - kPage, got));
    ASSERT_TRUE((*fetcher)->finish(""));
    serving.join();
    ASSERT_TRUE(served) << served.error().message();
    EXPECT_EQ(served->fetches, 1u);

    EXPECT_TRUE(std::all_of(got.begin(), got.begin() + kPage, [](std::byte b) { return b == std::byte { 0xab }; }));
    size_t wrong = 0;
    for (size_t page = 0; page < kShared + kOwn; ++page)
        for (size_t at = 0; at < kPage; ++at)
            wrong += got[kPage + page * kPage + at] != pattern(page, at, page >= kShared);
    EXPECT_EQ(wrong, 0u);
    // Still shared: the child's frames of the first pages are this process's.
    for (size_t page = 0; page < kShared; ++page) {
        uint64_t mine = frame_of(::getpid(), region + page * kPage);
        ASSERT_NE(mine, 0u) << "no frame numbers in /proc/PID/pagemap (not root?)";
        EXPECT_EQ(frame_of(child, region + page * kPage), mine) << "page " << page << " was unshared";
    }
    ::munmap(base, (kPages + 2) * kPage);
}

} // namespace cryo
