// `cryo check`: every kernel interface cryo relies on is tried for real, the
// way dump and restore use it, rather than guessed from a version number.
//
// Probes that need a second process (ptrace, /proc/PID/mem, pidfd_getfd)
// fork a throwaway child that only waits to be killed; it is killed and
// reaped when the probe ends, whatever happened, and dies with cryo if cryo
// dies first. Probes that would change cryo itself (moving the vdso,
// clearing soft-dirty bits, unsharing a time namespace) run entirely inside
// a forked child, which sends its verdict back through a pipe.
//
// Each probe returns what it found, or an Error saying why the feature is
// not usable. A missing Required feature makes `cryo check` fail; the
// Optional ones are for later commands (lazy pages, incremental dumps, TCP
// connections) or are only reported (soft-dirty, capabilities).
#include "check/features.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <sstream>
#include <utility>

#include "base/fd.h"
#include "base/kill.h"
#include "base/scope_guard.h"
#include "base/syscalls.h"
#include "mem/dirty_tracking.h"
#include "proc/maps.h"

#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1ull << 15)
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CAP_CHECKPOINT_RESTORE
#define CAP_CHECKPOINT_RESTORE 40
#endif

namespace cryo::check {

namespace {

// What a probe found (shown as the detail), or why the feature is missing.
using Probe = Result<std::string>;

// A forked child that does nothing but wait to be killed. Dropping it
// detaches it if it was seized, kills it and reaps it.
class PausedChild {
public:
    static Result<PausedChild> start()
    {
        pid_t parent = ::getpid();
        pid_t pid = ::fork();
        if (pid < 0)
            return fail_errno("fork");
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent)
                ::_exit(0);
            for (;;)
                ::pause();
        }
        return PausedChild(pid);
    }
    PausedChild(PausedChild&& other) noexcept
        : m_pid(std::exchange(other.m_pid, -1))
        , m_seized(std::exchange(other.m_seized, false))
    {
    }
    PausedChild& operator=(PausedChild&&) = delete;
    ~PausedChild()
    {
        if (m_pid <= 1)
            return;
        if (m_seized)
            ::ptrace(PTRACE_DETACH, m_pid, nullptr, nullptr);
        kill_quietly(m_pid);
        while (::waitpid(m_pid, nullptr, __WALL) < 0 && errno == EINTR) { }
    }

    pid_t pid() const { return m_pid; }

    // Freezes the child the way a dump freezes a thread: seized without a
    // signal, then interrupted into a PTRACE_EVENT_STOP.
    Result<void> seize_and_interrupt()
    {
        if (::ptrace(PTRACE_SEIZE, m_pid, nullptr, 0) < 0)
            return fail_errno("PTRACE_SEIZE");
        m_seized = true;
        if (::ptrace(PTRACE_INTERRUPT, m_pid, nullptr, nullptr) < 0)
            return fail_errno("PTRACE_INTERRUPT");
        int status = 0;
        if (::waitpid(m_pid, &status, __WALL) < 0)
            return fail_errno("waitpid after PTRACE_INTERRUPT");
        if (!WIFSTOPPED(status) || (status >> 16) != PTRACE_EVENT_STOP)
            return fail("PTRACE_INTERRUPT: expected a PTRACE_EVENT_STOP, got wait status {:#x}", status);
        return {};
    }

private:
    explicit PausedChild(pid_t pid) : m_pid(pid) { }

    pid_t m_pid { -1 };
    bool m_seized { false };
};

// Runs `body` in a forked child and returns its verdict, for probes that
// would change cryo itself. The verdict travels as "+detail" or "-error".
Probe in_child(const std::function<Probe()>& body)
{
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) < 0)
        return fail_errno("pipe2");
    UniqueFd reader(pipe_fds[0]);
    UniqueFd writer(pipe_fds[1]);
    pid_t pid = ::fork();
    if (pid < 0)
        return fail_errno("fork");
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        Probe verdict = body();
        std::string message(1, verdict ? '+' : '-');
        message += verdict ? *verdict : verdict.error().message();
        (void)write_all(writer.get(), message, "verdict pipe");
        ::_exit(0);
    }
    writer.reset();
    auto message = read_all(reader.get(), "verdict pipe");
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) { }
    if (!message || message->empty())
        return fail("the probe's child died without an answer (wait status {:#x})", status);
    if ((*message)[0] == '+')
        return message->substr(1);
    return fail(Error::plain(message->substr(1)));
}

Probe ptrace_seize_interrupt()
{
    auto child = TRY(PausedChild::start());
    TRY(child.seize_and_interrupt());
    return std::string("stopped without a signal");
}

Probe ptrace_xstate()
{
    auto child = TRY(PausedChild::start());
    TRY(child.seize_and_interrupt());
    std::vector<std::byte> buffer(64 * 1024);
    iovec area { buffer.data(), buffer.size() };
    if (::ptrace(PTRACE_GETREGSET, child.pid(), reinterpret_cast<void*>(NT_X86_XSTATE), &area) < 0)
        return fail_errno("PTRACE_GETREGSET NT_X86_XSTATE");
    return fmt::format("XSAVE area of {} bytes", area.iov_len);
}

Probe ptrace_rseq()
{
    // The child inherited glibc's rseq registration, so there is one to see.
    auto child = TRY(PausedChild::start());
    TRY(child.seize_and_interrupt());
    RseqConfiguration config {};
    auto request = static_cast<__ptrace_request>(PTRACE_GET_RSEQ_CONFIGURATION);
    if (::ptrace(request, child.pid(), sizeof(config), &config) < 0)
        return fail_errno("PTRACE_GET_RSEQ_CONFIGURATION");
    if (config.rseq_abi_pointer == 0)
        return std::string("works; no rseq area registered here (glibc tunable off?)");
    return fmt::format("glibc's rseq area: {} bytes, signature {:#x}", config.rseq_abi_size, config.signature);
}

// A pid that no process or thread of our PID namespace uses right now.
Result<pid_t> free_pid()
{
    long pid_max = 32768;
    if (auto text = read_text_file("/proc/sys/kernel/pid_max"))
        pid_max = std::max(std::atol(text->c_str()), 1000L);
    for (pid_t candidate = static_cast<pid_t>(pid_max - 1); candidate > 300; --candidate)
        if (::access(fmt::format("/proc/{}", candidate).c_str(), F_OK) != 0 && errno == ENOENT)
            return candidate;
    return fail("no free pid below pid_max {}", pid_max);
}

Probe clone3_set_tid()
{
    // A few attempts: another process may take the free pid in between.
    for (int attempt = 0; attempt < 5; ++attempt) {
        pid_t wanted = TRY(free_pid());
        clone_args args {};
        args.exit_signal = SIGCHLD;
        args.set_tid = reinterpret_cast<uint64_t>(&wanted);
        args.set_tid_size = 1;
        long child = raw_clone3(&args);
        if (child == 0)
            ::_exit(0);
        if (child > 0) {
            while (::waitpid(static_cast<pid_t>(child), nullptr, 0) < 0 && errno == EINTR) { }
            if (child != wanted)
                return fail("clone3 ignored set_tid: asked for pid {}, got {}", wanted, child);
            return fmt::format("a child was created as pid {}", wanted);
        }
        switch (errno) {
        case EEXIST:
            continue;
        case ENOSYS:
            return fail("clone3 is not implemented (Linux < 5.3)");
        case E2BIG:
            return fail("clone3 does not know set_tid (Linux < 5.5)");
        case EPERM:
            return fail("set_tid needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN");
        default:
            return fail_errno("clone3 with set_tid");
        }
    }
    return fail("clone3 with set_tid: every chosen pid was taken meanwhile");
}

Probe pidfd_copy()
{
    // The child inherits this descriptor at the same number; cryo takes a
    // copy back and checks that it is the same open file.
    auto null = TRY(open_file("/dev/null", O_RDONLY));
    auto child = TRY(PausedChild::start());
    auto pidfd = TRY(pidfd_open(child.pid()));
    auto copy = TRY(pidfd_getfd(pidfd.get(), null.get()));
    if (::syscall(SYS_kcmp, ::getpid(), ::getpid(), 0 /* KCMP_FILE */, null.get(), copy.get()) != 0)
        return fail("pidfd_getfd returned a different file");
    return std::string("copied a descriptor out of a child");
}

Probe proc_mem_write()
{
    // Restore writes read-only and PROT_NONE memory through /proc/PID/mem
    // (the kernel forces the write); proc_mem.force_override=never refuses it.
    void* page = ::mmap(nullptr, kPageSize, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return fail_errno("mmap");
    ScopeGuard unmap([page] { ::munmap(page, kPageSize); });
    auto child = TRY(PausedChild::start());
    TRY(child.seize_and_interrupt());
    auto mem = TRY(open_file(fmt::format("/proc/{}/mem", child.pid()), O_RDWR));
    const uint64_t written = 0x6f797263'6b636568ull;
    uint64_t read_back = 0;
    uint64_t address = reinterpret_cast<uint64_t>(page);
    TRY(pwrite_all(mem.get(), std::as_bytes(std::span(&written, 1)), address, "/proc/PID/mem"));
    TRY(pread_exact(mem.get(), std::as_writable_bytes(std::span(&read_back, 1)), address, "/proc/PID/mem"));
    if (read_back != written)
        return fail("a write through /proc/PID/mem did not reach the page");
    return std::string("writes reach read-only pages");
}

Probe pagemap_scan()
{
    auto pagemap = TRY(open_file("/proc/self/pagemap", O_RDONLY));
    alignas(4096) static char page[4096];
    *static_cast<volatile char*>(page) = 1;
    PageRegion region {};
    PagemapScanArgs args {};
    args.size = sizeof(args);
    args.start = reinterpret_cast<uint64_t>(page);
    args.end = args.start + sizeof(page);
    args.vec = reinterpret_cast<uint64_t>(&region);
    args.vec_len = 1;
    args.category_anyof_mask = page_category::kPresent;
    args.return_mask = page_category::kPresent;
    long regions = ::ioctl(pagemap.get(), kPagemapScanIoctl, &args);
    if (regions < 0)
        return fail_errno("ioctl PAGEMAP_SCAN");
    if (regions != 1 || region.start != args.start)
        return fail("PAGEMAP_SCAN did not report a page just written as present");
    return std::string("");
}

Probe mm_map()
{
    // The size query only answers when the kernel has PR_SET_MM_MAP
    // (CONFIG_CHECKPOINT_RESTORE); without it the call wants CAP_SYS_RESOURCE.
    unsigned size = 0;
    if (::prctl(PR_SET_MM, 15 /* PR_SET_MM_MAP_SIZE */, &size, 0, 0) < 0)
        return fail_errno("prctl PR_SET_MM_MAP_SIZE");
    if (size != sizeof(prctl_mm_map))
        return fail("struct prctl_mm_map is {} bytes in the kernel, {} in cryo", size, sizeof(prctl_mm_map));
    return fmt::format("struct prctl_mm_map of {} bytes", size);
}

Probe proc_children()
{
    auto child = TRY(PausedChild::start());
    auto text = TRY(read_text_file(fmt::format("/proc/self/task/{}/children", ::gettid())));
    std::istringstream children(text);
    for (pid_t pid; children >> pid;)
        if (pid == child.pid())
            return std::string("");
    return fail("a new child is missing from /proc/self/task/TID/children");
}

Probe kcmp_files()
{
    auto first = TRY(open_file("/dev/null", O_RDONLY));
    auto second = TRY(open_file("/dev/null", O_RDONLY));
    UniqueFd duplicate(::fcntl(first.get(), F_DUPFD_CLOEXEC, 0));
    if (!duplicate)
        return fail_errno("dup");
    auto same = [&](int a, int b) { return ::syscall(SYS_kcmp, ::getpid(), ::getpid(), 0 /* KCMP_FILE */, a, b); };
    long shared = same(first.get(), duplicate.get());
    if (shared < 0)
        return fail_errno("kcmp KCMP_FILE");
    if (shared != 0 || same(first.get(), second.get()) == 0)
        return fail("kcmp KCMP_FILE does not tell open files apart");
    return std::string("");
}

Probe move_vdso()
{
    // Restore puts [vvar], [vvar_vclock] and [vdso] back where the image had
    // them, together. Moving our own would break glibc's cached pointer, so
    // a child moves its copy and exits without calling into the vdso.
    return in_child([]() -> Probe {
        auto maps = TRY(proc::read_maps(::getpid()));
        std::vector<proc::MapsEntry> special;
        for (auto& entry : maps)
            if (entry.path == "[vdso]" || entry.path == "[vvar]" || entry.path == "[vvar_vclock]")
                special.push_back(entry);
        if (std::none_of(special.begin(), special.end(), [](auto& e) { return e.path == "[vdso]"; }))
            return fail("no [vdso] mapping");
        uint64_t low = special.front().start;
        uint64_t size = special.back().end - low;
        void* slot = ::mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (slot == MAP_FAILED)
            return fail_errno("mmap");
        uint64_t target = reinterpret_cast<uint64_t>(slot);
        for (auto& entry : special) {
            void* to = reinterpret_cast<void*>(target + entry.start - low);
            if (::mremap(reinterpret_cast<void*>(entry.start), entry.end - entry.start, entry.end - entry.start,
                         MREMAP_MAYMOVE | MREMAP_FIXED, to) == MAP_FAILED)
                return fail_errno(fmt::format("mremap {}", entry.path));
        }
        auto moved = TRY(proc::read_maps(::getpid()));
        for (auto& entry : moved)
            if (entry.path == "[vdso]" && entry.start >= target && entry.end <= target + size)
                return fmt::format("{} mappings moved together", special.size());
        return fail("[vdso] is not where it was moved to");
    });
}

// A userfaultfd from the system call, or from /dev/userfaultfd where the
// system call is restricted (vm.unprivileged_userfaultfd).
Result<std::pair<UniqueFd, std::string>> open_userfaultfd()
{
    long fd = ::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0)
        return std::pair(UniqueFd(static_cast<int>(fd)), std::string("userfaultfd(2)"));
    int syscall_errno = errno;
    auto device = open_file("/dev/userfaultfd", O_RDWR);
    if (!device)
        return fail("userfaultfd: {}; {}", std::strerror(syscall_errno), device.error().message());
    int from_device = ::ioctl(device->get(), USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
    if (from_device < 0)
        return fail_errno("ioctl USERFAULTFD_IOC_NEW");
    return std::pair(UniqueFd(from_device), std::string("/dev/userfaultfd"));
}

Probe userfaultfd_api(uint64_t features)
{
    auto [uffd, source] = TRY(open_userfaultfd());
    uffdio_api api {};
    api.api = UFFD_API;
    api.features = features;
    if (::ioctl(uffd.get(), UFFDIO_API, &api) < 0)
        return fail_errno(features ? "UFFDIO_API requesting UFFD_FEATURE_WP_ASYNC" : "UFFDIO_API");
    return fmt::format("through {}", source);
}

Probe memfd_secret()
{
    long fd = ::syscall(__NR_memfd_secret, 0);
    if (fd < 0)
        return fail_errno(errno == ENOSYS ? "memfd_secret (needs CONFIG_SECRETMEM)" : "memfd_secret");
    UniqueFd secret(static_cast<int>(fd));
    if (::ftruncate(secret.get(), kPageSize) < 0)
        return fail_errno("ftruncate memfd_secret");
    void* page = ::mmap(nullptr, kPageSize, PROT_READ | PROT_WRITE, MAP_SHARED, secret.get(), 0);
    if (page == MAP_FAILED)
        return fail_errno("mmap memfd_secret");
    ::munmap(page, kPageSize);
    return std::string("");
}

Probe tcp_repair()
{
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail_errno("socket AF_INET");
    UniqueFd socket(fd);
    int on = 1;
    if (::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on)) < 0)
        return fail_errno("setsockopt TCP_REPAIR (needs CAP_NET_ADMIN)");
    return std::string("");
}

Probe soft_dirty()
{
    // Clear the soft-dirty bits (which also write-protects every page of the
    // child), write a page, and look at bit 55 of its pagemap entry.
    return in_child([]() -> Probe {
        alignas(4096) static char page[4096];
        *static_cast<volatile char*>(page) = 1;
        auto clear_refs = TRY(open_file("/proc/self/clear_refs", O_WRONLY));
        TRY(write_all(clear_refs.get(), std::string_view("4"), "/proc/self/clear_refs"));
        *static_cast<volatile char*>(page) = 2;
        auto pagemap = TRY(open_file("/proc/self/pagemap", O_RDONLY));
        uint64_t entry = 0;
        uint64_t offset = reinterpret_cast<uint64_t>(page) / kPageSize * sizeof(entry);
        TRY(pread_exact(pagemap.get(), std::as_writable_bytes(std::span(&entry, 1)), offset, "/proc/self/pagemap"));
        if (!(entry >> 63 & 1))
            return fail("the page written is not present in pagemap");
        if (!(entry >> 55 & 1))
            return fail("bit 55 stays clear after a write (kernel without CONFIG_MEM_SOFT_DIRTY);"
                        " dirty pages are tracked with userfaultfd WP_ASYNC instead");
        return std::string("");
    });
}

Probe time_namespace()
{
    return in_child([]() -> Probe {
        if (::unshare(CLONE_NEWTIME) < 0)
            return fail_errno(errno == EINVAL ? "unshare CLONE_NEWTIME (needs CONFIG_TIME_NS)" : "unshare CLONE_NEWTIME");
        auto current = TRY(read_link("/proc/self/ns/time"));
        auto for_children = TRY(read_link("/proc/self/ns/time_for_children"));
        if (current == for_children)
            return fail("unshare CLONE_NEWTIME made no new time namespace");
        return std::string("");
    });
}

Probe capability(int cap)
{
    __user_cap_header_struct header { _LINUX_CAPABILITY_VERSION_3, 0 };
    __user_cap_data_struct data[2] {};
    if (::syscall(SYS_capget, &header, data) < 0)
        return fail_errno("capget");
    if (!(data[cap / 32].effective & (1u << (cap % 32))))
        return fail("not in the effective set");
    return std::string("in the effective set");
}

FeatureResult run(std::string name, Need need, const std::function<Probe()>& probe)
{
    Probe found = probe();
    if (found)
        return { std::move(name), need, true, *found };
    return { std::move(name), need, false, found.error().message() };
}

} // namespace

std::vector<FeatureResult> probe_features()
{
    constexpr Need required = Need::Required;
    constexpr Need optional = Need::Optional;
    std::vector<FeatureResult> results;
    results.push_back(run("ptrace seize + interrupt", required, ptrace_seize_interrupt));
    results.push_back(run("ptrace NT_X86_XSTATE", required, ptrace_xstate));
    results.push_back(run("ptrace rseq configuration", required, ptrace_rseq));
    results.push_back(run("clone3 with set_tid", required, clone3_set_tid));
    results.push_back(run("pidfd_open + pidfd_getfd", required, pidfd_copy));
    results.push_back(run("/proc/PID/mem write", required, proc_mem_write));
    results.push_back(run("PAGEMAP_SCAN", required, pagemap_scan));
    results.push_back(run("prctl PR_SET_MM_MAP", required, mm_map));
    results.push_back(run("/proc/PID/task/TID/children", required, proc_children));
    results.push_back(run("kcmp", required, kcmp_files));
    // Restore always moves the vdso: cryo's own is elsewhere than the image's.
    results.push_back(run("mremap of [vdso] and [vvar]", required, move_vdso));
    results.push_back(run("userfaultfd", optional, [] { return userfaultfd_api(0); }));
    results.push_back(run("userfaultfd WP_ASYNC", optional, [] { return userfaultfd_api(UFFD_FEATURE_WP_ASYNC); }));
    results.push_back(run("memfd_secret", optional, memfd_secret));
    results.push_back(run("TCP_REPAIR", optional, tcp_repair));
    results.push_back(run("time namespaces", optional, time_namespace));
    results.push_back(run("soft-dirty bits", optional, soft_dirty));
    // Without root, these two are what cryo needs (README, "Without root").
    results.push_back(run("dirty-page tracking (pre-dump)", optional, [] { return in_child(mem::probe_dirty_tracking); }));
    results.push_back(run("CAP_CHECKPOINT_RESTORE", optional, [] { return capability(CAP_CHECKPOINT_RESTORE); }));
    results.push_back(run("CAP_SYS_PTRACE", optional, [] { return capability(CAP_SYS_PTRACE); }));
    results.push_back(run("CAP_SYS_RESOURCE", optional, [] { return capability(CAP_SYS_RESOURCE); }));
    return results;
}

} // namespace cryo::check
