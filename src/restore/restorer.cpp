// The restorer child and its creation; see restorer.h.
#include "restore/restorer.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/kill.h"
#include "base/syscalls.h"
#include "fds/fd_table.h"

namespace cryo::restore {

namespace {

// What the child tells cryo when its setup is done (or failed).
struct SetupReport {
    int error { 0 };      // errno-like code; 0 on success
    int page_fd { -1 };
    char message[1024] {};
};

constexpr unsigned char kTrampolineCode[] = { 0x0f, 0x05, 0xcc };  // syscall; int3

Result<void> apply_limits(const image::ProcessCore& core)
{
    for (const auto& saved : core.rlimits()) {
        auto resource = static_cast<__rlimit_resource>(saved.resource());
        rlimit current {};
        if (::getrlimit(resource, &current) < 0)
            return fail_errno(fmt::format("getrlimit({})", saved.resource()));
        rlimit wanted { saved.soft(), saved.hard() };
        // Raising a hard limit needs CAP_SYS_RESOURCE, which cryo may lack:
        // keep the current hard limit then, and the soft one within it.
        if (wanted.rlim_max > current.rlim_max && ::setrlimit(resource, &wanted) < 0) {
            wanted.rlim_max = current.rlim_max;
            wanted.rlim_cur = std::min(wanted.rlim_cur, wanted.rlim_max);
        }
        if (::setrlimit(resource, &wanted) < 0)
            return fail_errno(fmt::format("setrlimit({}, {}, {})", saved.resource(), wanted.rlim_cur, wanted.rlim_max));
    }
    return {};
}

Result<void> map_trampoline(uint64_t address)
{
    void* mapped = ::mmap(reinterpret_cast<void*>(address), kTrampolineSize, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (mapped == MAP_FAILED)
        return fail_errno(fmt::format("mmap trampoline at {:#x}", address));
    if (mapped != reinterpret_cast<void*>(address))
        return fail("mmap trampoline: got {} instead of {:#x}", mapped, address);
    std::memcpy(mapped, kTrampolineCode, sizeof(kTrampolineCode));
    if (::mprotect(mapped, kTrampolineCodeSize, PROT_READ | PROT_EXEC) < 0)
        return fail_errno("mprotect trampoline");
    return {};
}

Result<void> set_up_child(const RestorerSetup& setup, int& report_fd, int& page_fd)
{
    const auto& core = *setup.core;
    TRY_CTX(fds::install_fds(*setup.fd_table, *setup.files, { &report_fd, &page_fd }), "files");
    if (!core.root().empty() && core.root() != "/" && ::chroot(core.root().c_str()) < 0)
        return fail_errno(fmt::format("chroot {}", core.root()));
    if (!core.cwd().empty() && ::chdir(core.cwd().c_str()) < 0)
        return fail_errno(fmt::format("chdir {}", core.cwd()));
    ::umask(core.umask());
    TRY_CTX(apply_limits(core), "resource limits");
    TRY(map_trampoline(setup.trampoline));
    return {};
}

[[noreturn]] void run_child(const RestorerSetup& setup, int report_fd)
{
    int page_fd = setup.page_fd;
    SetupReport report;
    if (auto result = set_up_child(setup, report_fd, page_fd); !result) {
        report.error = result.error().code() ? result.error().code() : EINVAL;
        auto message = result.error().message();
        std::memcpy(report.message, message.data(), std::min(message.size(), sizeof(report.message) - 1));
    }
    report.page_fd = page_fd;
    ssize_t written = ::write(report_fd, &report, sizeof(report));
    if (report.error != 0 || written != sizeof(report))
        ::_exit(1);
    ::close(report_fd);
    for (;;)
        ::pause();
}

} // namespace

Result<NewProcess> NewProcess::create(const RestorerSetup& setup)
{
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) < 0)
        return fail_errno("pipe for the restorer's report");
    UniqueFd report_read(pipe_fds[0]);
    UniqueFd report_write(pipe_fds[1]);

    pid_t wanted = setup.pid;
    clone_args args {};
    args.exit_signal = SIGCHLD;
    args.set_tid = reinterpret_cast<uint64_t>(&wanted);
    args.set_tid_size = 1;
    long child = raw_clone3(&args);
    if (child < 0) {
        if (errno == EEXIST)
            return fail("pid {} is already in use: cannot restore pid {} (is the original still running?)", wanted, wanted);
        return fail_errno(fmt::format("clone3 with set_tid {}", wanted));
    }
    if (child == 0) {
        report_read.reset();
        run_child(setup, pipe_fds[1]);
    }
    report_write.reset();

    // From here a failure kills and reaps the child (the guard below).
    auto kill_child = [&] {
        kill_quietly(static_cast<pid_t>(child));
        while (::waitpid(static_cast<pid_t>(child), nullptr, __WALL) < 0 && errno == EINTR) { }
    };
    if (::ptrace(PTRACE_SEIZE, child, nullptr, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL) < 0) {
        int saved = errno;
        kill_child();
        return fail_errno(fmt::format("ptrace(SEIZE) restored pid {}", child), saved);
    }
    NewProcess process(static_cast<pid_t>(child), ptrace::Tracee::adopt(static_cast<pid_t>(child)));

    SetupReport report;
    ssize_t got = ::read(report_read.get(), &report, sizeof(report));
    if (got != sizeof(report))
        return fail("pid {}: the new process died while setting up", wanted);
    if (report.error != 0)
        return fail("pid {}: {}", wanted, report.message);
    process.m_child_page_fd = report.page_fd;
    TRY(process.m_tracee.interrupt());
    for (;;) {
        auto stop = TRY(process.m_tracee.wait_stop());
        if (stop.kind == ptrace::StopKind::EventStop)
            break;
        // A signal sent to the new process before the interrupt (it has
        // cryo's handlers and masks for now) is dropped: it was not sent to
        // the program being restored.
        TRY(process.m_tracee.resume(PTRACE_CONT));
    }
    return process;
}

NewProcess::NewProcess(NewProcess&& other) noexcept
    : m_pid(std::exchange(other.m_pid, -1))
    , m_tracee(std::move(other.m_tracee))
    , m_child_page_fd(other.m_child_page_fd)
{
}

NewProcess::~NewProcess()
{
    if (m_pid > 1) {
        m_tracee.release();
        kill_quietly(m_pid);
        while (::waitpid(m_pid, nullptr, __WALL) < 0 && errno == EINTR) { }
    }
}

} // namespace cryo::restore
