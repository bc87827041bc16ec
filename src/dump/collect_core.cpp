// See collect_core.h. The injected calls need a little memory in the target
// for their results: a few bytes of its stack below the red zone, put back
// afterwards (see ScratchArea), so the memory that is dumped afterwards is
// the process's own and nothing is left if cryo dies midway.
#include "dump/collect_core.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <string_view>

#include "base/scope_guard.h"
#include "base/syscalls.h"
#include "proc/limits.h"
#include "proc/maps.h"
#include "proc/parse_util.h"
#include "proc/stat.h"
#include "proc/status.h"
#include "ptrace/injector.h"
#include "ptrace/same_cpu.h"
#include "ptrace/kernel_abi.h"
#include "ptrace/registers.h"

namespace cryo::dump {

namespace {

using ptrace::KernelSigaction;
using ptrace::kSignalCount;
using ptrace::kSiginfoSize;

} // namespace

Result<uint64_t> find_syscall_gadget(pid_t pid, const ptrace::RemoteMemory& memory)
{
    for (const auto& map : TRY(proc::read_maps(pid))) {
        if (map.path != "[vdso]")
            continue;
        std::vector<std::byte> code(map.end - map.start);
        TRY(memory.read(map.start, code));
        for (size_t i = 0; i + 1 < code.size(); ++i)
            if (code[i] == std::byte { 0x0f } && code[i + 1] == std::byte { 0x05 })
                return map.start + i;
        return fail("pid {}: no syscall instruction in its vDSO", pid);
    }
    return fail("not supported yet: pid {} has no vDSO to run injected system calls from", pid);
}

namespace {

// Where the injected calls leave their results: 256 bytes of the leader's
// stack below its red zone, where the kernel itself would write a signal
// frame (so the program keeps nothing there), their old content put back
// afterwards. Unlike a mapped page this leaves nothing behind if cryo dies
// (is killed) midway. A stack without room for it (or not writable and
// private) gets a scratch page mapped and unmapped by injected calls.
class ScratchArea {
public:
    static Result<ScratchArea> take(pid_t pid, ptrace::Injector& injector, const ptrace::RemoteMemory& memory)
    {
        constexpr uint64_t kRedZone = 128;
        uint64_t rsp = injector.saved_registers().rsp;
        uint64_t start = (rsp - kRedZone - kBytes) & ~uint64_t { 15 };
        for (const auto& map : TRY(proc::read_maps(pid))) {
            if (map.start > start || rsp > map.end || rsp < kRedZone + kBytes + 16)
                continue;
            if (!map.read || !map.write || map.shared)
                break;
            ScratchArea area(start, false);
            TRY(memory.read(start, area.m_saved));
            return area;
        }
        uint64_t page = TRY(injector.call("mmap scratch page", SYS_mmap, 0, kPageSize, PROT_READ | PROT_WRITE,
                                          MAP_PRIVATE | MAP_ANONYMOUS, static_cast<uint64_t>(-1), 0));
        return ScratchArea(page, true);
    }

    Result<void> give_back(ptrace::Injector& injector, const ptrace::RemoteMemory& memory)
    {
        if (m_mapped) {
            TRY(injector.call("munmap scratch page", SYS_munmap, m_address, kPageSize));
            return {};
        }
        return memory.write(m_address, m_saved);
    }

    uint64_t address() const { return m_address; }

private:
    static constexpr uint64_t kBytes = 256;
    ScratchArea(uint64_t address, bool mapped) : m_address(address), m_mapped(mapped) { }
    uint64_t m_address;
    bool m_mapped;
    std::array<std::byte, kBytes> m_saved {};
};

Result<std::vector<image::PendingSignal>> peek_pending(pid_t tid, bool shared)
{
    std::vector<image::PendingSignal> pending;
    for (uint64_t offset = 0;; ) {
        struct {
            uint64_t off;
            uint32_t flags;
            int32_t nr;
        } args { offset, shared ? 1u /* PTRACE_PEEKSIGINFO_SHARED */ : 0u, 32 };
        std::vector<std::byte> buffer(kSiginfoSize * 32);
        long count = ::ptrace(PTRACE_PEEKSIGINFO, tid, &args, buffer.data());
        if (count < 0)
            return fail_errno(fmt::format("ptrace(PEEKSIGINFO) thread {}", tid));
        if (count == 0)
            break;
        for (long i = 0; i < count; ++i) {
            const std::byte* info = buffer.data() + i * kSiginfoSize;
            siginfo_t parsed;
            std::memcpy(&parsed, info, sizeof(parsed));
            auto* signal = pending.emplace_back().mutable_siginfo();
            signal->assign(reinterpret_cast<const char*>(info), kSiginfoSize);
            pending.back().set_signal(static_cast<uint32_t>(parsed.si_signo));
        }
        offset += static_cast<uint64_t>(count);
    }
    return pending;
}

// Each filter of the thread as its BPF program, index 0 being the one
// installed last; ENOENT ends the list.
Result<void> collect_seccomp_filters(pid_t tid, image::ThreadCore& core)
{
    constexpr int kSeccompGetFilter = 0x420c;   // PTRACE_SECCOMP_GET_FILTER
    constexpr size_t kInstructionSize = 8;      // struct sock_filter
    for (long index = 0;; ++index) {
        long count = ::ptrace(static_cast<__ptrace_request>(kSeccompGetFilter), tid, index, nullptr);
        if (count < 0) {
            if (errno == ENOENT)
                break;
            // The kernel lets only CAP_SYS_ADMIN read filters.
            if (errno == EACCES)
                return fail("thread {} has seccomp filters; reading them needs CAP_SYS_ADMIN (run cryo as root)", tid);
            return fail_errno(fmt::format("ptrace(SECCOMP_GET_FILTER) thread {} filter {}", tid, index));
        }
        std::string program(static_cast<size_t>(count) * kInstructionSize, '\0');
        if (::ptrace(static_cast<__ptrace_request>(kSeccompGetFilter), tid, index, program.data()) != count)
            return fail_errno(fmt::format("ptrace(SECCOMP_GET_FILTER) thread {} filter {}", tid, index));
        core.add_seccomp_filters(std::move(program));
    }
    return {};
}

// The scheduling policy and static priority, read from outside.
// SCHED_DEADLINE's runtime, deadline and period would need sched_getattr and
// a way to admit them again: refused.
Result<void> collect_scheduling(pid_t tid, image::ThreadCore& core)
{
    int policy = ::sched_getscheduler(tid);
    if (policy < 0)
        return fail_errno(fmt::format("sched_getscheduler thread {}", tid));
    if ((policy & ~SCHED_RESET_ON_FORK) == SCHED_DEADLINE)
        return fail("thread {}: the SCHED_DEADLINE scheduling policy is not supported", tid);
    struct sched_param param {};
    if (::sched_getparam(tid, &param) < 0)
        return fail_errno(fmt::format("sched_getparam thread {}", tid));
    core.set_sched_policy(policy);
    core.set_sched_priority(param.sched_priority);
    return {};
}

// `status`: /proc/TID/status of the thread.
Result<void> collect_thread(ptrace::Tracee& thread, const ptrace::Injector& injector, const proc::ProcStatus& status,
                            image::ThreadCore& core)
{
    pid_t tid = thread.tid();
    core.set_tid(tid);
    ptrace::Registers registers = injector.saved_registers();
    core.set_interrupted_syscall(static_cast<int64_t>(registers.orig_rax));
    core.set_interrupted_result(static_cast<int64_t>(registers.rax));
    ptrace::normalise_interrupted_syscall(registers);
    ptrace::registers_to_image(registers, *core.mutable_registers());
    core.set_xstate(TRY(thread.xstate()));
    core.set_blocked_signals(injector.saved_signal_mask());
    for (auto& signal : TRY(peek_pending(tid, false)))
        *core.add_pending() = std::move(signal);

    RseqConfiguration rseq {};
    if (::ptrace(static_cast<__ptrace_request>(PTRACE_GET_RSEQ_CONFIGURATION), tid, sizeof(rseq), &rseq) < 0)
        return fail_errno(fmt::format("ptrace(GET_RSEQ_CONFIGURATION) thread {}", tid));
    if (rseq.rseq_abi_pointer != 0) {
        core.mutable_rseq()->set_address(rseq.rseq_abi_pointer);
        core.mutable_rseq()->set_size(rseq.rseq_abi_size);
        core.mutable_rseq()->set_signature(rseq.signature);
    }

    uint64_t robust_head = 0;
    size_t robust_length = 0;
    if (::syscall(SYS_get_robust_list, tid, &robust_head, &robust_length) < 0)
        return fail_errno(fmt::format("get_robust_list thread {}", tid));
    core.set_robust_list_head(robust_head);
    core.set_robust_list_length(robust_length);

    auto comm = TRY(read_text_file(fmt::format("/proc/{}/comm", tid)));
    if (!comm.empty() && comm.back() == '\n')
        comm.pop_back();
    core.set_comm(comm);
    for (pid_t ns_tid : status.ns_pid)
        core.add_ns_tids(ns_tid);
    if (status.seccomp_mode == SECCOMP_MODE_FILTER)
        TRY(collect_seccomp_filters(tid, core));
    core.set_seccomp_strict(status.seccomp_mode == SECCOMP_MODE_STRICT);
    TRY(collect_scheduling(tid, core));
    return {};
}

// Per-thread state only the thread itself can report.
Result<void> collect_thread_by_injection(ptrace::Injector& injector, const ptrace::RemoteMemory& memory,
                                         uint64_t scratch, image::ThreadCore& thread)
{
    TRY(injector.call("sigaltstack", SYS_sigaltstack, 0, scratch));
    auto stack = TRY(memory.read_value<stack_t>(scratch));
    thread.mutable_altstack()->set_sp(reinterpret_cast<uint64_t>(stack.ss_sp));
    thread.mutable_altstack()->set_size(stack.ss_size);
    thread.mutable_altstack()->set_flags(stack.ss_flags);
    TRY(injector.call("prctl(PR_GET_TID_ADDRESS)", SYS_prctl, PR_GET_TID_ADDRESS, scratch));
    thread.set_clear_child_tid(TRY(memory.read_value<uint64_t>(scratch)));
    TRY(injector.call("prctl(PR_GET_PDEATHSIG)", SYS_prctl, PR_GET_PDEATHSIG, scratch));
    thread.set_pdeath_signal(TRY(memory.read_value<int>(scratch)));
    return {};
}

// POSIX timers: /proc/PID/timers lists each one (ID, signal/value, how it
// notifies, clock); the time left and the interval come from an injected
// timer_gettime().
Result<void> collect_posix_timers(pid_t pid, ptrace::Injector& injector, const ptrace::RemoteMemory& memory,
                                  uint64_t scratch, image::ProcessCore& core)
{
    auto text = TRY(read_text_file(fmt::format("/proc/{}/timers", pid)));
    image::PosixTimer* timer = nullptr;
    for (auto line : proc::detail::split_lines(text)) {
        auto pair = proc::detail::split_key_value(line);
        if (!pair)
            continue;
        auto [key, value] = *pair;
        std::string text_value(value);
        if (key == "ID") {
            timer = core.add_posix_timers();
            timer->set_id(std::stoi(text_value));
        } else if (!timer) {
            return fail("/proc/{}/timers: '{}' before any ID", pid, line);
        } else if (key == "signal") {
            size_t slash = text_value.find('/');
            timer->set_signal(std::stoi(text_value.substr(0, slash)));
            if (slash != std::string::npos)
                timer->set_value(std::stoull(text_value.substr(slash + 1), nullptr, 16));
        } else if (key == "notify") {
            // "HOW/pid.N" or "HOW/tid.N": a timer aimed at one thread
            // (SIGEV_THREAD_ID, glibc's SIGEV_THREAD timers too) says tid.
            size_t dot = text_value.find('.');
            int notify = 0;
            if (text_value.starts_with("signal"))
                notify = SIGEV_SIGNAL;
            else if (text_value.starts_with("none"))
                notify = SIGEV_NONE;
            else if (text_value.starts_with("thread"))
                notify = SIGEV_THREAD;
            else
                return fail("/proc/{}/timers: unknown notification '{}'", pid, text_value);
            if (text_value.find("/tid.") != std::string::npos)
                notify |= SIGEV_THREAD_ID;
            timer->set_notify(notify);
            if (dot != std::string::npos)
                timer->set_notify_tid(std::stoi(text_value.substr(dot + 1)));
        } else if (key == "ClockID") {
            timer->set_clock_id(std::stoi(text_value));
        }
    }
    for (auto& saved : *core.mutable_posix_timers()) {
        TRY(injector.call("timer_gettime", SYS_timer_gettime, static_cast<uint64_t>(saved.id()), scratch));
        auto spec = TRY(memory.read_value<itimerspec>(scratch));
        saved.set_interval_ns(static_cast<uint64_t>(spec.it_interval.tv_sec) * 1'000'000'000 + spec.it_interval.tv_nsec);
        saved.set_value_ns(static_cast<uint64_t>(spec.it_value.tv_sec) * 1'000'000'000 + spec.it_value.tv_nsec);
    }
    return {};
}

// The signals whose action must be read by an injected rt_sigaction(): the
// caught and the ignored ones (/proc/PID/status SigCgt, SigIgn: one set
// for all threads of a process), and SIGCHLD, whose SA_NOCLDSTOP and
// SA_NOCLDWAIT change what the kernel does even with SIG_DFL. Any other
// signal has SIG_DFL and is saved as the plain default: the flags, mask
// and restorer a program may have set along with SIG_DFL are not kept
// (restored, sigaction() reports them as 0); the kernel ignores them for
// a default action, and a query of each signal would cost 60 injected
// calls per process.
uint64_t signals_to_query(const proc::ProcStatus& status)
{
    return status.sig_caught | status.sig_ignored | (uint64_t { 1 } << (SIGCHLD - 1));
}

// Process-wide state only the process can report.
Result<void> collect_process_by_injection(ptrace::Injector& injector, const ptrace::RemoteMemory& memory,
                                          uint64_t scratch, const proc::ProcStatus& status,
                                          image::ProcessCore& core, image::MmFields& mm)
{
    uint64_t query = signals_to_query(status);
    for (int signal = 1; signal <= kSignalCount; ++signal) {
        if (signal == SIGKILL || signal == SIGSTOP || !(query & (uint64_t { 1 } << (signal - 1))))
            continue;
        long result = TRY(injector.raw(SYS_rt_sigaction, { static_cast<uint64_t>(signal), 0, scratch, 8, 0, 0 }));
        if (result == -EINVAL)
            continue;   // numbers the kernel does not offer
        if (result < 0)
            return fail_errno(fmt::format("injected rt_sigaction({})", signal), static_cast<int>(-result));
        auto action = TRY(memory.read_value<KernelSigaction>(scratch));
        auto* saved = core.add_sigactions();
        saved->set_signal(static_cast<uint32_t>(signal));
        saved->set_handler(action.handler);
        saved->set_flags(action.flags);
        saved->set_restorer(action.restorer);
        saved->set_mask(action.mask);
    }

    for (int which : { ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF }) {
        TRY(injector.call("getitimer", SYS_getitimer, static_cast<uint64_t>(which), scratch));
        auto timer = TRY(memory.read_value<itimerval>(scratch));
        if (timer.it_value.tv_sec == 0 && timer.it_value.tv_usec == 0 && timer.it_interval.tv_sec == 0
            && timer.it_interval.tv_usec == 0)
            continue;
        auto* saved = core.add_itimers();
        saved->set_which(which);
        saved->set_interval_us(static_cast<uint64_t>(timer.it_interval.tv_sec) * 1'000'000 + timer.it_interval.tv_usec);
        // A timer about to fire reads as 0 s left; keep it armed.
        uint64_t value = static_cast<uint64_t>(timer.it_value.tv_sec) * 1'000'000 + timer.it_value.tv_usec;
        saved->set_value_us(value == 0 ? 1 : value);
    }

    // From /proc/PID/limits (proc/limits.h); asked by the process itself
    // if that cannot be read: prlimit() on another process needs
    // CAP_SYS_RESOURCE when it runs as another user, which root in a
    // container often lacks.
    auto limits = proc::read_limits(injector.tid());
    for (int resource = 0; resource < RLIM_NLIMITS; ++resource) {
        rlimit limit {};
        if (limits) {
            limit = (*limits)[static_cast<size_t>(resource)];
        } else {
            TRY(injector.call("prlimit64", SYS_prlimit64, 0, static_cast<uint64_t>(resource), 0, scratch));
            limit = TRY(memory.read_value<rlimit>(scratch));
        }
        auto* saved = core.add_rlimits();
        saved->set_resource(resource);
        saved->set_soft(limit.rlim_cur);
        saved->set_hard(limit.rlim_max);
    }

    TRY(injector.call("prctl(PR_GET_CHILD_SUBREAPER)", SYS_prctl, PR_GET_CHILD_SUBREAPER, scratch));
    core.set_child_subreaper(TRY(memory.read_value<int>(scratch)) != 0);
    core.set_dumpable(static_cast<int>(TRY(injector.call("prctl(PR_GET_DUMPABLE)", SYS_prctl, PR_GET_DUMPABLE))));
    core.set_thp_disabled(TRY(injector.call("prctl(PR_GET_THP_DISABLE)", SYS_prctl, PR_GET_THP_DISABLE)) != 0);
    // /proc/PID/timerslack_ns spares an injected call; reading it needs
    // CAP_SYS_NICE, which a cryo without root may lack.
    auto slack = read_text_file(fmt::format("/proc/{}/timerslack_ns", core.pid()));
    if (slack && !slack->empty() && std::isdigit(static_cast<unsigned char>(slack->front())))
        core.set_timer_slack_ns(std::stoull(*slack));
    else
        core.set_timer_slack_ns(TRY(injector.call("prctl(PR_GET_TIMERSLACK)", SYS_prctl, PR_GET_TIMERSLACK)));
    // Readable by anyone; kept in the mm, so one value per process.
    auto oom_score_adj = read_text_file(fmt::format("/proc/{}/oom_score_adj", core.pid()));
    if (oom_score_adj && !oom_score_adj->empty())
        core.set_oom_score_adj(std::stoi(*oom_score_adj));
    core.mutable_credentials()->set_securebits(
        static_cast<uint32_t>(TRY(injector.call("prctl(PR_GET_SECUREBITS)", SYS_prctl, PR_GET_SECUREBITS))));
    mm.set_brk(TRY(injector.call("brk(0)", SYS_brk, 0)));
    return {};
}

Result<void> collect_identity(pid_t pid, const proc::ProcStatus& status, image::ProcessCore& core)
{
    auto* credentials = core.mutable_credentials();
    for (auto uid : status.uids)
        credentials->add_uids(uid);
    for (auto gid : status.gids)
        credentials->add_gids(gid);
    for (auto group : status.groups)
        credentials->add_groups(group);
    credentials->set_cap_inheritable(status.cap_inheritable);
    credentials->set_cap_permitted(status.cap_permitted);
    credentials->set_cap_effective(status.cap_effective);
    credentials->set_cap_bounding(status.cap_bounding);
    credentials->set_cap_ambient(status.cap_ambient);
    credentials->set_no_new_privs(status.no_new_privs);
    core.set_umask(status.umask);

    auto personality = TRY(read_text_file(fmt::format("/proc/{}/personality", pid)));
    core.set_personality(static_cast<uint32_t>(std::stoul(personality, nullptr, 16)));
    core.set_cwd(TRY(read_link(fmt::format("/proc/{}/cwd", pid))));
    core.set_root(TRY(read_link(fmt::format("/proc/{}/root", pid))));
    // Restore enters the root by path: a deleted one would fail it after
    // the dump. A deleted working directory is made again, empty.
    if (core.root().ends_with(" (deleted)"))
        return fail("its root directory {} was deleted: not supported", core.root());
    if (core.cwd().ends_with(" (deleted)")) {
        struct stat status {};
        std::string cwd_link = fmt::format("/proc/{}/cwd", pid);
        if (::stat(cwd_link.c_str(), &status) < 0)
            return fail_errno(fmt::format("stat {}", cwd_link));
        auto& deleted = *core.mutable_deleted_cwd();
        deleted.set_device(status.st_dev);
        deleted.set_inode(status.st_ino);
        deleted.set_mode(status.st_mode & 07777);
        deleted.set_uid(status.st_uid);
        deleted.set_gid(status.st_gid);
        core.set_cwd(core.cwd().substr(0, core.cwd().size() - std::string_view(" (deleted)").size()));
    }

    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    if (::sched_getaffinity(pid, sizeof(cpus), &cpus) < 0)
        return fail_errno(fmt::format("sched_getaffinity of pid {}", pid));
    for (size_t word = 0; word < sizeof(cpus) / sizeof(uint64_t); ++word) {
        uint64_t bits = 0;
        std::memcpy(&bits, reinterpret_cast<const char*>(&cpus) + word * sizeof(uint64_t), sizeof(bits));
        core.add_cpu_affinity(bits);
    }
    while (core.cpu_affinity_size() > 1 && core.cpu_affinity(core.cpu_affinity_size() - 1) == 0)
        core.mutable_cpu_affinity()->RemoveLast();
    errno = 0;
    int nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(pid));
    if (nice == -1 && errno != 0)
        return fail_errno(fmt::format("getpriority of pid {}", pid));
    core.set_nice(nice);
    return {};
}

Result<void> collect_mm_fields(pid_t pid, image::MmFields& mm)
{
    auto stat = TRY(proc::read_stat(pid));
    mm.set_start_code(stat.start_code);
    mm.set_end_code(stat.end_code);
    mm.set_start_data(stat.start_data);
    mm.set_end_data(stat.end_data);
    mm.set_start_brk(stat.start_brk);
    mm.set_start_stack(stat.start_stack);
    mm.set_arg_start(stat.arg_start);
    mm.set_arg_end(stat.arg_end);
    mm.set_env_start(stat.env_start);
    mm.set_env_end(stat.env_end);
    auto auxv_fd = TRY(open_file(fmt::format("/proc/{}/auxv", pid), O_RDONLY | O_CLOEXEC));
    auto auxv = TRY(read_all(auxv_fd.get(), fmt::format("/proc/{}/auxv", pid)));
    for (size_t offset = 0; offset + sizeof(uint64_t) <= auxv.size(); offset += sizeof(uint64_t)) {
        uint64_t word = 0;
        std::memcpy(&word, auxv.data() + offset, sizeof(word));
        mm.add_auxv(word);
    }
    mm.set_exe_path(TRY(read_link(fmt::format("/proc/{}/exe", pid))));
    return {};
}

// A leader that exited while its threads run on (a zombie thread) has no
// state to save, but the restored process is made of it: it comes first
// (restore creates the others from it), with a live thread's state and its
// registers at a syscall instruction of the vDSO with SYS_exit(0), every
// signal blocked so that none reaches it on the way, and nothing a thread
// of its own would leave behind (robust list, rseq, tid address).
Result<void> add_exited_leader(pid_t pid, uint64_t gadget, image::ProcessCore& core)
{
    image::ThreadCore leader = core.threads(0);
    leader.set_tid(pid);
    leader.set_exited(true);
    leader.clear_pending();
    leader.clear_altstack();
    leader.clear_rseq();
    leader.set_robust_list_head(0);
    leader.set_robust_list_length(0);
    leader.set_clear_child_tid(0);
    leader.set_pdeath_signal(0);
    leader.clear_seccomp_filters();
    leader.set_seccomp_strict(false);
    leader.set_sched_policy(SCHED_OTHER);
    leader.set_sched_priority(0);
    leader.set_interrupted_syscall(-1);
    leader.set_interrupted_result(0);
    leader.set_blocked_signals(~uint64_t { 0 });
    auto comm = TRY(read_text_file(fmt::format("/proc/{}/comm", pid)));
    if (!comm.empty() && comm.back() == '\n')
        comm.pop_back();
    leader.set_comm(comm);
    leader.clear_ns_tids();
    for (pid_t ns_tid : TRY(proc::read_status(pid)).ns_pid)
        leader.add_ns_tids(ns_tid);
    auto* registers = leader.mutable_registers();
    registers->set_rip(gadget);
    registers->set_rax(SYS_exit);
    registers->set_rdi(0);
    registers->set_orig_rax(static_cast<uint64_t>(-1));
    auto* threads = core.mutable_threads();
    *threads->Add() = std::move(leader);
    for (int i = threads->size() - 1; i > 0; --i)
        threads->SwapElements(i, i - 1);
    return {};
}

// NUL-separated strings of a /proc file (cmdline, environ), at most 64 KiB
// of them; unreadable means none.
void add_strings(const std::string& path, google::protobuf::RepeatedPtrField<std::string>& out)
{
    auto text = read_text_file(path);
    if (!text)
        return;
    std::string_view rest(*text);
    rest = rest.substr(0, 64 << 10);
    while (!rest.empty()) {
        size_t end = rest.find('\0');
        out.Add(std::string(rest.substr(0, end)));
        if (end == std::string_view::npos)
            break;
        rest.remove_prefix(end + 1);
    }
}

} // namespace

Result<void> collect_core(FrozenProcess& process, image::ProcessCore& core, image::MmFields& mm)
{
    core.set_pid(process.pid());
    // /proc of the process as its first live thread sees it (the leader
    // unless it exited); errors name the process.
    pid_t pid = process.proc_pid();
    add_strings(fmt::format("/proc/{}/cmdline", pid), *core.mutable_cmdline());
    add_strings(fmt::format("/proc/{}/environ", pid), *core.mutable_environ());
    // Read once: identity, the leader's thread state, the signals to query.
    auto status = TRY_CTX(proc::read_status(pid), "pid {}", process.pid());
    TRY_CTX(collect_identity(pid, status, core), "pid {}", process.pid());
    TRY_CTX(collect_mm_fields(pid, mm), "pid {}", process.pid());

    auto memory = TRY(ptrace::RemoteMemory::open(pid));
    uint64_t gadget = TRY_CTX(find_syscall_gadget(pid, memory), "pid {}", process.pid());
    auto& leader = process.leader();
    ptrace::SameCpu beside(leader.tid(), ptrace::SameCpu::Hold::both);   // until its calls are done
    auto injector = TRY(ptrace::Injector::create(leader, gadget, ptrace::Gadget::SyscallOnly));
    // Whatever happens below, the thread gets its registers and mask back.
    ScopeGuard put_back([&] { (void)injector.restore_thread(); });

    auto scratch_area = TRY_CTX(ScratchArea::take(pid, injector, memory), "pid {}", pid);
    uint64_t scratch = scratch_area.address();
    ScopeGuard give_back_scratch([&] { (void)scratch_area.give_back(injector, memory); });

    for (auto& thread : process.threads()) {
        auto* thread_core = core.add_threads();
        if (&thread == &leader) {
            TRY_CTX(collect_thread(thread, injector, status, *thread_core), "pid {}", pid);
            TRY_CTX(collect_thread_by_injection(injector, memory, scratch, *thread_core), "pid {}", pid);
            continue;
        }
        // Other threads run their own injected calls (the scratch page is
        // shared: one address space).
        beside.follow(thread.tid());
        auto thread_injector = TRY(ptrace::Injector::create(thread, gadget, ptrace::Gadget::SyscallOnly));
        ScopeGuard put_thread_back([&] { (void)thread_injector.restore_thread(); });
        auto thread_status = TRY_CTX(proc::read_status(thread.tid()), "pid {} thread {}", pid, thread.tid());
        TRY_CTX(collect_thread(thread, thread_injector, thread_status, *thread_core), "pid {} thread {}", pid,
                thread.tid());
        TRY_CTX(collect_thread_by_injection(thread_injector, memory, scratch, *thread_core), "pid {} thread {}",
                pid, thread.tid());
        put_thread_back.dismiss();
        TRY_CTX(thread_injector.restore_thread(), "pid {} thread {}", pid, thread.tid());
    }
    beside.follow(leader.tid());
    if (process.leader_exited())
        TRY_CTX(add_exited_leader(process.pid(), gadget, core), "pid {}: its exited leader", process.pid());
    for (auto& signal : TRY_CTX(peek_pending(pid, true), "pid {}", pid))
        *core.add_shared_pending() = std::move(signal);
    TRY_CTX(collect_process_by_injection(injector, memory, scratch, status, core, mm), "pid {}", pid);
    TRY_CTX(collect_posix_timers(pid, injector, memory, scratch, core), "pid {}: POSIX timers", pid);

    give_back_scratch.dismiss();
    TRY_CTX(scratch_area.give_back(injector, memory), "pid {}", pid);
    put_back.dismiss();
    TRY_CTX(injector.restore_thread(), "pid {}", pid);
    return {};
}

} // namespace cryo::dump
