// Preparing a process for lazy restore and starting the server; see
// lazy_pages.h.
#include "lazy/lazy_pages.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "base/syscalls.h"
#include "lazy/server.h"
#include "mem/dirty_tracking.h"
#include "mem/dump_pages.h"

namespace cryo::lazy {

namespace {

// Forks, remaps, madvise(MADV_DONTNEED/REMOVE) and munmaps by the program
// change what the server must put where; it hears of each before the
// program goes on.
constexpr uint64_t kEvents = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE
    | UFFD_FEATURE_EVENT_UNMAP;

Result<void> enable_missing_mode(int uffd)
{
    uffdio_api api {};
    api.api = UFFD_API;
    api.features = kEvents;
    if (::ioctl(uffd, UFFDIO_API, &api) < 0)
        return fail_errno("UFFDIO_API (fork, remap, remove and unmap events)");
    return {};
}

Result<void> register_missing(int uffd, uint64_t start, uint64_t end)
{
    uffdio_register registration {};
    registration.range = { start, end - start };
    registration.mode = UFFDIO_REGISTER_MODE_MISSING;
    if (::ioctl(uffd, UFFDIO_REGISTER, &registration) < 0)
        return fail_errno(fmt::format("UFFDIO_REGISTER (missing) {:#x}-{:#x}", start, end));
    if (!(registration.ioctls & (1ull << _UFFDIO_COPY)))
        return fail("mapping {:#x}-{:#x}: the kernel offers no UFFDIO_COPY for it", start, end);
    return {};
}

// The stored pages of [start, end), clipped to it.
void add_pending(PendingMap& pending, const image::PageMap& page_map, uint64_t start, uint64_t end, int page_fd,
                 const std::vector<int>& ancestor_page_fds)
{
    for (const auto& run : page_map.runs()) {
        uint64_t run_start = std::max(run.address(), start);
        uint64_t run_end = std::min(run.address() + run.page_count() * kPageSize, end);
        if (run_start >= run_end)
            continue;
        int fd = run.ancestor() == 0 ? page_fd : ancestor_page_fds.at(run.ancestor() - 1);
        pending[run_start] = { run_end, fd, run.file_offset() + (run_start - run.address()) };
    }
}

// Pages of the lazy VMAs that cryo's own steps made present (as the zero
// page, or written by the kernel) would make UFFDIO_COPY fail with EEXIST
// and keep their wrong content: they get the image's content now, written
// through /proc/PID/mem, and are no longer pending.
Result<void> fill_touched_pages(LazyProcess& process, const image::MemoryImage& memory, PageSource& source)
{
    using namespace page_category;
    auto pagemap = TRY(open_file(fmt::format("/proc/{}/pagemap", process.pid), O_RDONLY | O_CLOEXEC));
    auto process_memory = TRY(open_file(fmt::format("/proc/{}/mem", process.pid), O_RDWR | O_CLOEXEC));
    std::vector<std::byte> page(kPageSize);
    for (const auto& vma : memory.vmas()) {
        if (std::ranges::count(process.lazy_vmas, vma.start()) == 0)
            continue;
        PagemapScanArgs args {};
        args.start = vma.start();
        args.end = vma.end();
        args.category_anyof_mask = kPresent | kSwapped;
        args.return_mask = kPresent | kSwapped;
        for (const auto& range : TRY(mem::scan_pages(pagemap.get(), args))) {
            for (uint64_t address = range.start; address < range.end; address += kPageSize) {
                auto pieces = pieces_of(process.pending, address, address + kPageSize);
                if (pieces.empty())
                    std::ranges::fill(page, std::byte { 0 });
                else
                    TRY(source.read(pieces[0].second.fd, page, pieces[0].second.offset));
                TRY(pwrite_all(process_memory.get(), page, address, fmt::format("memory at {:#x}", address)));
            }
            carve(process.pending, range.start, range.end);
        }
    }
    return {};
}

} // namespace

Result<LazyProcess> create_lazy_process(pid_t pid, ptrace::Injector& injector, std::vector<uint64_t> lazy_vmas)
{
    auto pidfd = TRY_CTX(pidfd_open(pid), "pid {}", pid);
    // Without UFFD_USER_MODE_ONLY: the kernel's own accesses (a read(2)
    // into lazy memory, a signal frame on a lazy stack) must wait for the
    // page as well. That takes CAP_SYS_PTRACE, which the process still has
    // here (credentials are set later).
    LazyProcess process;
    process.pid = pid;
    process.lazy_vmas = std::move(lazy_vmas);
    process.uffd = TRY_CTX(mem::take_new_userfaultfd(pid, pidfd.get(), injector, O_CLOEXEC | O_NONBLOCK),
                           "lazy pages (needs CAP_SYS_PTRACE)");
    TRY_CTX(enable_missing_mode(process.uffd.get()), "pid {}: lazy pages", pid);
    return process;
}

Result<void> arm_lazy_process(LazyProcess& process, const image::MemoryImage& memory, const image::PageMap& page_map,
                              int page_fd, const std::vector<int>& ancestor_page_fds, PageSource& source)
{
    pid_t pid = process.pid;
    for (const auto& vma : memory.vmas())
        if (std::ranges::count(process.lazy_vmas, vma.start()) > 0)
            add_pending(process.pending, page_map, vma.start(), vma.end(), page_fd, ancestor_page_fds);
    TRY_CTX(fill_touched_pages(process, memory, source), "pid {}: lazy pages", pid);
    for (const auto& vma : memory.vmas())
        if (std::ranges::count(process.lazy_vmas, vma.start()) > 0)
            TRY_CTX(register_missing(process.uffd.get(), vma.start(), vma.end()), "pid {}: lazy pages", pid);
    return {};
}

Result<pid_t> spawn_lazy_server(std::vector<LazyProcess>& processes, const std::vector<int>& files,
                                PageSource& source, const std::string& directory, int report_fd)
{
    auto log = open_file(directory + "/lazy-pages.log", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (!log)
        log = open_file("/dev/null", O_WRONLY | O_CLOEXEC);
    auto null = TRY(open_file("/dev/null", O_RDWR | O_CLOEXEC));
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) < 0)
        return fail_errno("pipe2 for the lazy-pages server");
    UniqueFd pid_reader(pipe_fds[0]);
    UniqueFd pid_writer(pipe_fds[1]);
    std::vector<int> keep { 0, 1, 2, log ? log->get() : -1 };
    for (const auto& process : processes)
        keep.push_back(process.uffd.get());
    keep.insert(keep.end(), files.begin(), files.end());
    if (source.connection() >= 0)
        keep.push_back(source.connection());
    if (report_fd >= 0)
        keep.push_back(report_fd);

    pid_t middle = ::fork();
    if (middle < 0)
        return fail_errno("fork the lazy-pages server");
    if (middle == 0) {
        // Out of cryo's session, then once more so that the server is
        // nobody's child: cryo reaps this middle process at once.
        ::setsid();
        pid_t server = ::fork();
        if (server == 0) {
            server = ::getpid();
            (void)::write(pid_writer.get(), &server, sizeof(server));
            for (int fd = 0; fd < 3; ++fd)
                ::dup2(null.get(), fd);
            close_all_except(keep);
            ::prctl(PR_SET_NAME, "cryo-lazy-pages");
            run_server(log ? log->get() : -1, processes, source, report_fd);
        }
        ::_exit(server > 0 ? 0 : 1);
    }
    pid_writer.reset();
    pid_t server = -1;
    ssize_t got = ::read(pid_reader.get(), &server, sizeof(server));
    int status = 0;
    while (::waitpid(middle, &status, 0) < 0 && errno == EINTR) { }
    if (got != sizeof(server) || server <= 0)
        return fail("the lazy-pages server did not start");
    auto pidfile = open_file(directory + "/lazy-pages.pid", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (pidfile)
        (void)write_all(pidfile->get(), fmt::format("{}\n", server), "lazy-pages.pid");
    return server;
}

} // namespace cryo::lazy
