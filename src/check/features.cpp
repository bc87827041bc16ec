// `cryo check`: every feature is tried for real, mostly on a throwaway
// child process that pauses until it is killed, rather than trusted from a
// version number. A feature cryo cannot work without is Required; the others
// enable later commands (lazy pages, incremental dumps, TCP connections).
#include "check/features.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <elf.h>

#include <functional>

#include "base/fd.h"
#include "base/kill.h"
#include "base/syscalls.h"

namespace cryo::check {

namespace {

// A child that waits to be killed; killed and reaped when dropped.
class PausedChild {
public:
    PausedChild()
    {
        m_pid = ::fork();
        if (m_pid == 0) {
            for (;;)
                ::pause();
        }
    }
    ~PausedChild()
    {
        if (m_pid > 1) {
            kill_quietly(m_pid);
            ::waitpid(m_pid, nullptr, __WALL);
        }
    }
    pid_t pid() const { return m_pid; }

private:
    pid_t m_pid;
};

std::string errno_text(int code = errno) { return std::strerror(code); }

FeatureResult probe(std::string name, Need need, const std::function<std::string()>& test)
{
    // The test returns an empty string on success, else why not.
    std::string problem = test();
    return { std::move(name), need, problem.empty(), problem };
}

std::string seize_interrupt(bool with_xstate, bool with_rseq)
{
    PausedChild child;
    if (child.pid() < 0)
        return "fork: " + errno_text();
    if (::ptrace(PTRACE_SEIZE, child.pid(), nullptr, 0) < 0)
        return "PTRACE_SEIZE: " + errno_text();
    if (::ptrace(PTRACE_INTERRUPT, child.pid(), nullptr, nullptr) < 0)
        return "PTRACE_INTERRUPT: " + errno_text();
    int status = 0;
    if (::waitpid(child.pid(), &status, __WALL) < 0 || (status >> 16) != PTRACE_EVENT_STOP)
        return "no event stop after PTRACE_INTERRUPT";
    if (with_xstate) {
        std::string buffer(64 * 1024, '\0');
        iovec iov { buffer.data(), buffer.size() };
        if (::ptrace(PTRACE_GETREGSET, child.pid(), reinterpret_cast<void*>(NT_X86_XSTATE), &iov) < 0)
            return "PTRACE_GETREGSET(NT_X86_XSTATE): " + errno_text();
    }
    if (with_rseq) {
        RseqConfiguration rseq {};
        if (::ptrace(static_cast<__ptrace_request>(PTRACE_GET_RSEQ_CONFIGURATION), child.pid(), sizeof(rseq), &rseq) < 0)
            return "PTRACE_GET_RSEQ_CONFIGURATION: " + errno_text();
    }
    return "";
}

std::string clone3_set_tid()
{
    // Ask for a pid that is free right now; EEXIST or a race is still proof
    // that the kernel understood set_tid.
    pid_t wanted = 0;
    for (pid_t candidate = 30000; candidate > 300; --candidate)
        if (::access(("/proc/" + std::to_string(candidate)).c_str(), F_OK) != 0) {
            wanted = candidate;
            break;
        }
    clone_args args {};
    args.exit_signal = SIGCHLD;
    args.set_tid = reinterpret_cast<uint64_t>(&wanted);
    args.set_tid_size = 1;
    long child = raw_clone3(&args);
    if (child == 0)
        ::_exit(0);
    if (child < 0)
        return errno == EEXIST ? "" : "clone3 with set_tid: " + errno_text();
    ::waitpid(static_cast<pid_t>(child), nullptr, 0);
    return child == wanted ? "" : "clone3 ignored set_tid";
}

std::string pidfd_getfd_works()
{
    auto pidfd = pidfd_open(::getpid());
    if (!pidfd)
        return pidfd.error().message();
    auto copy = pidfd_getfd(pidfd->get(), 0);
    return copy ? "" : copy.error().message();
}

std::string proc_mem_write()
{
    PausedChild child;
    int fd = ::open(("/proc/" + std::to_string(child.pid()) + "/mem").c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return "open /proc/PID/mem: " + errno_text();
    UniqueFd mem(fd);
    static int target = 1;
    int value = 2;
    if (::pwrite(fd, &value, sizeof(value), reinterpret_cast<off_t>(&target)) != sizeof(value))
        return "write /proc/PID/mem: " + errno_text();
    return "";
}

std::string pagemap_scan()
{
    int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return "open /proc/self/pagemap: " + errno_text();
    UniqueFd pagemap(fd);
    static char page[4096] __attribute__((aligned(4096)));
    page[0] = 1;
    PageRegion region {};
    PagemapScanArgs args {};
    args.size = sizeof(args);
    args.start = reinterpret_cast<uint64_t>(page);
    args.end = args.start + sizeof(page);
    args.vec = reinterpret_cast<uint64_t>(&region);
    args.vec_len = 1;
    args.category_anyof_mask = page_category::kPresent;
    args.return_mask = page_category::kPresent;
    if (::ioctl(fd, kPagemapScanIoctl, &args) < 0)
        return "PAGEMAP_SCAN: " + errno_text();
    return "";
}

std::string mm_map()
{
    unsigned size = 0;
    if (::prctl(PR_SET_MM, 15 /* PR_SET_MM_MAP_SIZE */, &size, 0, 0) < 0)
        return "PR_SET_MM_MAP_SIZE: " + errno_text();
    return "";
}

std::string proc_children()
{
    return ::access(("/proc/self/task/" + std::to_string(::getpid()) + "/children").c_str(), R_OK) == 0
        ? ""
        : "no /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)";
}

std::string userfaultfd_wp_async()
{
    int fd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    if (fd < 0)
        return "userfaultfd: " + errno_text();
    UniqueFd uffd(fd);
    uffdio_api api {};
    api.api = UFFD_API;
    api.features = 1ull << 15;   // UFFD_FEATURE_WP_ASYNC
    if (::ioctl(fd, UFFDIO_API, &api) < 0)
        return "UFFDIO_API with WP_ASYNC: " + errno_text();
    return "";
}

std::string memfd_secret()
{
    int fd = static_cast<int>(::syscall(__NR_memfd_secret, 0));
    if (fd < 0)
        return "memfd_secret: " + errno_text();
    ::close(fd);
    return "";
}

std::string tcp_repair()
{
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return "socket: " + errno_text();
    UniqueFd socket(fd);
    int on = 1;
    if (::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on)) < 0)
        return "TCP_REPAIR: " + errno_text();
    return "";
}

std::string kcmp_files()
{
    if (::syscall(SYS_kcmp, ::getpid(), ::getpid(), 0 /* KCMP_FILE */, 0, 0) < 0)
        return "kcmp: " + errno_text();
    return "";
}

std::string capability(int cap)
{
    __user_cap_header_struct header { _LINUX_CAPABILITY_VERSION_3, 0 };
    __user_cap_data_struct data[2] {};
    if (::syscall(SYS_capget, &header, data) < 0)
        return "capget: " + errno_text();
    bool present = data[cap / 32].effective & (1u << (cap % 32));
    return present ? "" : "not in the effective set";
}

} // namespace

std::vector<FeatureResult> probe_features()
{
    std::vector<FeatureResult> results;
    results.push_back(probe("ptrace seize + interrupt", Need::Required, [] { return seize_interrupt(false, false); }));
    results.push_back(probe("ptrace NT_X86_XSTATE", Need::Required, [] { return seize_interrupt(true, false); }));
    results.push_back(probe("ptrace rseq configuration", Need::Required, [] { return seize_interrupt(false, true); }));
    results.push_back(probe("clone3 with set_tid", Need::Required, clone3_set_tid));
    results.push_back(probe("pidfd_open + pidfd_getfd", Need::Required, pidfd_getfd_works));
    results.push_back(probe("/proc/PID/mem write", Need::Required, proc_mem_write));
    results.push_back(probe("PAGEMAP_SCAN", Need::Required, pagemap_scan));
    results.push_back(probe("prctl PR_SET_MM_MAP", Need::Required, mm_map));
    results.push_back(probe("/proc/PID/task/TID/children", Need::Required, proc_children));
    results.push_back(probe("kcmp", Need::Required, kcmp_files));
    results.push_back(probe("userfaultfd write-protect async", Need::Optional, userfaultfd_wp_async));
    results.push_back(probe("memfd_secret", Need::Optional, memfd_secret));
    results.push_back(probe("TCP_REPAIR", Need::Optional, tcp_repair));
    results.push_back(probe("CAP_CHECKPOINT_RESTORE", Need::Optional, [] { return capability(40); }));
    results.push_back(probe("CAP_SYS_RESOURCE", Need::Optional, [] { return capability(CAP_SYS_RESOURCE); }));
    return results;
}

} // namespace cryo::check
