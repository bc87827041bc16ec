// Write tracking with userfaultfd WP_ASYNC; see dirty_tracking.h.
#include "mem/dirty_tracking.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>

#include "base/syscalls.h"
#include "proc/maps.h"

namespace cryo::mem {

namespace {

// Newer than the system headers.
constexpr uint64_t kFeatureWpUnpopulated = 1ull << 13;
constexpr uint64_t kFeatureWpAsync = 1ull << 15;
constexpr uint64_t kScanWpMatching = 1ull << 0;
constexpr uint64_t kScanCheckWpAsync = 1ull << 1;
constexpr size_t kScanBatch = 1024;

Result<void> enable_wp_async(int uffd)
{
    uffdio_api api {};
    api.api = UFFD_API;
    api.features = kFeatureWpAsync | kFeatureWpUnpopulated;
    if (::ioctl(uffd, UFFDIO_API, &api) < 0)
        return fail_errno("UFFDIO_API (WP_ASYNC | WP_UNPOPULATED)");
    return {};
}

Result<void> register_and_protect(int uffd, uint64_t start, uint64_t end)
{
    uffdio_register registration {};
    registration.range = { start, end - start };
    registration.mode = UFFDIO_REGISTER_MODE_WP;
    if (::ioctl(uffd, UFFDIO_REGISTER, &registration) < 0)
        return fail_errno(fmt::format("UFFDIO_REGISTER {:#x}-{:#x}", start, end));
    uffdio_writeprotect protect {};
    protect.range = { start, end - start };
    protect.mode = UFFDIO_WRITEPROTECT_MODE_WP;
    if (::ioctl(uffd, UFFDIO_WRITEPROTECT, &protect) < 0)
        return fail_errno(fmt::format("UFFDIO_WRITEPROTECT {:#x}-{:#x}", start, end));
    return {};
}

// PAGEMAP_SCAN for written pages of [start, end), protecting them again;
// nullopt when the kernel says part of the range is not tracked.
Result<std::optional<std::vector<PageRange>>> scan_written(int pagemap_fd, uint64_t start, uint64_t end)
{
    using namespace page_category;
    PagemapScanArgs args {};
    args.size = sizeof(args);
    args.flags = kScanWpMatching | kScanCheckWpAsync;
    args.start = start;
    args.end = end;
    args.category_mask = kWritten;
    args.return_mask = kWritten;
    std::vector<PageRegion> regions(kScanBatch);
    std::vector<PageRange> written;
    while (args.start < args.end) {
        args.vec = reinterpret_cast<uint64_t>(regions.data());
        args.vec_len = regions.size();
        long found = ::ioctl(pagemap_fd, kPagemapScanIoctl, &args);
        if (found < 0 && errno == EPERM)
            return std::optional<std::vector<PageRange>>();
        if (found < 0)
            return fail_errno(fmt::format("PAGEMAP_SCAN written pages {:#x}-{:#x}", args.start, args.end));
        for (long i = 0; i < found; ++i)
            append_scanned_region(written, regions[i].start, regions[i].end);
        if (args.walk_end <= args.start)
            break;
        args.start = args.walk_end;
    }
    return std::optional(std::move(written));
}

} // namespace

Result<UniqueFd> take_new_userfaultfd(pid_t pid, int pidfd, ptrace::Injector& injector, uint64_t flags)
{
    uint64_t fd = TRY(injector.call("userfaultfd", SYS_userfaultfd, flags));
    auto copy = pidfd_getfd(pidfd, static_cast<int>(fd));
    // The program must not be left with a userfaultfd it never made: one
    // more try if the first close fails.
    auto closed = injector.call("close userfaultfd", SYS_close, fd);
    if (!closed)
        closed = injector.call("close userfaultfd", SYS_close, fd);
    auto uffd = TRY_CTX(std::move(copy), "pid {}: taking its new userfaultfd", pid);
    TRY(std::move(closed));
    return uffd;
}

Result<ProcessTracking> ProcessTracking::create(pid_t pid, int pidfd, ptrace::Injector& injector)
{
    // UFFD_USER_MODE_ONLY needs no privilege; write-protect faults are
    // resolved by the kernel in WP_ASYNC mode whoever writes (a read(2)
    // into the page too), so the restriction loses nothing here.
    auto uffd = TRY(take_new_userfaultfd(pid, pidfd, injector, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY));
    TRY_CTX(enable_wp_async(uffd.get()), "pid {}", pid);
    return ProcessTracking(pid, std::move(uffd));
}

bool ProcessTracking::track(const image::Vma& vma)
{
    return static_cast<bool>(register_and_protect(m_uffd.get(), vma.start(), vma.end()));
}

Result<std::optional<std::vector<PageRange>>> ProcessTracking::take_written(int pagemap_fd, uint64_t start, uint64_t end)
{
    return TRY_CTX(scan_written(pagemap_fd, start, end), "pid {}", m_pid);
}

bool trackable(const image::Vma& vma)
{
    return vma.kind() == image::VMA_KIND_ANONYMOUS || vma.kind() == image::VMA_KIND_FILE_PRIVATE;
}

Result<std::optional<std::string>> uses_userfaultfd(pid_t pid, bool own_uffd_registered)
{
    std::error_code error;
    auto directory = fmt::format("/proc/{}/fd", pid);
    for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
        auto target = read_link(entry.path().string());
        if (target && *target == "anon_inode:[userfaultfd]")
            return std::optional(fmt::format("pid {} has a userfaultfd open (fd {})", pid, entry.path().filename().string()));
    }
    if (error)
        return fail("list {}: {}", directory, error.message());
    // Later rounds: a registration needs a userfaultfd, which the program
    // would hold (seen above); reading smaps walks every page table, which
    // is frozen time, so it is done only when tracking starts.
    if (own_uffd_registered)
        return std::optional<std::string>();
    for (const auto& map : TRY(proc::read_smaps(pid))) {
        bool registered = map.has_flag("um") || map.has_flag("ui") || map.has_flag("uw");
        if (registered)
            return std::optional(fmt::format("pid {}: mapping {:#x}-{:#x} is registered with a userfaultfd", pid,
                                             map.map.start, map.map.end));
    }
    return std::optional<std::string>();
}

Result<std::string> probe_dirty_tracking()
{
    constexpr size_t kPages = 4;
    void* memory = ::mmap(nullptr, kPages * kPageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED)
        return fail_errno("mmap");
    auto* bytes = static_cast<volatile char*>(memory);
    for (size_t page = 0; page < kPages; ++page)
        bytes[page * kPageSize] = 1;
    long fd = ::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0)
        return fail_errno("userfaultfd");
    UniqueFd uffd(static_cast<int>(fd));
    TRY(enable_wp_async(uffd.get()));
    uint64_t start = reinterpret_cast<uint64_t>(memory);
    TRY(register_and_protect(uffd.get(), start, start + kPages * kPageSize));
    bytes[2 * kPageSize] = 2;
    auto pagemap = TRY(open_file("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
    auto written = TRY(scan_written(pagemap.get(), start, start + kPages * kPageSize));
    if (!written)
        return fail("PAGEMAP_SCAN refused the registered range (PM_SCAN_CHECK_WPASYNC)");
    if (written->size() != 1 || (*written)[0].start != start + 2 * kPageSize || (*written)[0].end != start + 3 * kPageSize)
        return fail("PAGEMAP_SCAN reported {} written ranges, expected exactly the page written", written->size());
    // The scan protected the page again: nothing is written now.
    auto again = TRY(scan_written(pagemap.get(), start, start + kPages * kPageSize));
    if (!again || !again->empty())
        return fail("a second PAGEMAP_SCAN still reports written pages: PM_SCAN_WP_MATCHING did not protect them");
    return std::string("userfaultfd WP_ASYNC + PAGEMAP_SCAN (used by pre-dump; soft-dirty is not used)");
}

} // namespace cryo::mem
