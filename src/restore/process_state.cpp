// See process_state.h.
#include "restore/process_state.h"

#include "ptrace/kernel_abi.h"
#include "restore/threads.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <vector>

namespace cryo::restore {

namespace {

using ptrace::KernelSigaction;
using ptrace::kSignalCount;

// Calls run together in one trampoline run (ptrace/injector.h): a ptrace
// round trip costs far more than the calls themselves. What they point at
// is laid out from the start of the scratch area, their table after it.
class CallBatch {
public:
    explicit CallBatch(const StateRestore& restore) : m_restore(restore) { }

    Result<uint64_t> put(std::span<const std::byte> data)
    {
        if (m_used + data.size() > table_offset())
            return fail("{} bytes of arguments do not fit before the table of injected calls", m_used + data.size());
        uint64_t address = TRY(m_restore.scratch->put(data, m_used));
        m_used = (m_used + data.size() + 7) / 8 * 8;
        return address;
    }
    template <typename T>
    Result<uint64_t> put_value(const T& value) { return put(std::as_bytes(std::span(&value, 1))); }
    Result<uint64_t> put_string(std::string_view text)
    {
        std::string copy(text);
        return put(std::as_bytes(std::span(copy.c_str(), copy.size() + 1)));
    }
    enum class OnFailure { Fail, Warn };
    void add(long number, std::array<uint64_t, 6> args, std::string_view name, std::string context = {},
             OnFailure on_failure = OnFailure::Fail)
    {
        m_calls.push_back({ .call = { number, args, name }, .context = std::move(context),
                            .warn_only = on_failure == OnFailure::Warn });
    }
    void add(ptrace::QueuedCall call) { m_calls.push_back(std::move(call)); }
    Result<void> run()
    {
        TRY(ptrace::run_queued(*m_restore.injector, *m_restore.scratch, m_calls, table_offset()));
        m_calls.clear();
        m_used = 0;
        return {};
    }

private:
    uint64_t table_offset() const { return m_restore.scratch->size() - ptrace::kBatchTableSize; }
    const StateRestore& m_restore;
    uint64_t m_used { 0 };
    std::vector<ptrace::QueuedCall> m_calls;
};

Result<void> queue_sigactions(const StateRestore& restore, CallBatch& batch)
{
    // The new process inherited cryo's dispositions; every signal the image
    // does not list goes back to the default.
    std::vector<const image::SignalAction*> actions(kSignalCount + 1, nullptr);
    for (const auto& action : restore.core->sigactions())
        if (action.signal() >= 1 && action.signal() <= kSignalCount)
            actions[action.signal()] = &action;
    std::vector<KernelSigaction> values;
    for (int signal = 1; signal <= kSignalCount; ++signal) {
        if (signal == SIGKILL || signal == SIGSTOP)
            continue;
        KernelSigaction action {};
        if (const auto* saved = actions[signal])
            action = { saved->handler(), saved->flags(), saved->restorer(), saved->mask() };
        values.push_back(action);
    }
    uint64_t base = TRY(batch.put(std::as_bytes(std::span(values))));
    size_t index = 0;
    for (int signal = 1; signal <= kSignalCount; ++signal) {
        if (signal == SIGKILL || signal == SIGSTOP)
            continue;
        // A number the kernel does not offer only matters when the image
        // has an action for it.
        batch.add(SYS_rt_sigaction, { static_cast<uint64_t>(signal), base + index++ * sizeof(KernelSigaction), 0, 8, 0, 0 },
                  "rt_sigaction", fmt::format("signal handlers: signal {}", signal),
                  actions[signal] ? CallBatch::OnFailure::Fail : CallBatch::OnFailure::Warn);
    }
    return {};
}

// The thread's own state that needs no result of another call.
Result<void> queue_thread_state(const image::ThreadCore& thread, CallBatch& batch)
{
    std::string context = fmt::format("thread {}", thread.tid());
    stack_t stack {};
    if (thread.has_altstack() && !(thread.altstack().flags() & SS_DISABLE)) {
        stack.ss_sp = reinterpret_cast<void*>(thread.altstack().sp());
        stack.ss_size = thread.altstack().size();
        stack.ss_flags = thread.altstack().flags() & ~SS_ONSTACK;
    } else {
        stack.ss_flags = SS_DISABLE;
    }
    batch.add(SYS_sigaltstack, { TRY(batch.put_value(stack)), 0, 0, 0, 0, 0 }, "sigaltstack", context);
    batch.add(SYS_set_tid_address, { thread.clear_child_tid(), 0, 0, 0, 0, 0 }, "set_tid_address", context);
    batch.add(SYS_set_robust_list,
              { thread.robust_list_head(), thread.robust_list_length() ? thread.robust_list_length() : 24, 0, 0, 0, 0 },
              "set_robust_list", context);
    batch.add(SYS_prctl, { PR_SET_NAME, TRY(batch.put_string(thread.comm())), 0, 0, 0, 0 }, "prctl(PR_SET_NAME)", context);
    batch.add(SYS_prctl, { PR_SET_PDEATHSIG, static_cast<uint64_t>(thread.pdeath_signal()), 0, 0, 0, 0 },
              "prctl(PR_SET_PDEATHSIG)", context);
    // Another policy than SCHED_OTHER (SCHED_BATCH, SCHED_IDLE, real-time),
    // with its priority and SCHED_RESET_ON_FORK.
    if (thread.sched_policy() != SCHED_OTHER) {
        struct sched_param param {};
        param.sched_priority = thread.sched_priority();
        batch.add(SYS_sched_setscheduler, { 0, static_cast<uint64_t>(thread.sched_policy()), TRY(batch.put_value(param)), 0, 0, 0 },
                  "sched_setscheduler", context);
    }
    if (thread.has_rseq())
        batch.add(__NR_rseq, { thread.rseq().address(), thread.rseq().size(), 0, thread.rseq().signature(), 0, 0 },
                  "rseq register", context);
    return {};
}

// Signals still pending at dump time are queued again, while every signal
// is blocked (the injector blocked them); the final mask decides when they
// are delivered, as it would have. One call each: each siginfo is 128
// bytes, and a thread may have many.
Result<void> queue_pending(const StateRestore& restore, const image::ThreadCore& thread)
{
    for (const auto& pending : thread.pending()) {
        uint64_t info = TRY(restore.scratch->put(std::as_bytes(std::span(pending.siginfo().data(), pending.siginfo().size()))));
        TRY(restore.injector->call("rt_tgsigqueueinfo", SYS_rt_tgsigqueueinfo, static_cast<uint64_t>(restore.pid),
                                   static_cast<uint64_t>(thread.tid()), pending.signal(), info));
    }
    return {};
}

Result<void> queue_process_settings(const StateRestore& restore, CallBatch& batch)
{
    const auto& core = *restore.core;
    batch.add(SYS_personality, { core.personality(), 0, 0, 0, 0, 0 }, "personality");
    if (core.child_subreaper())
        batch.add(SYS_prctl, { PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0, 0 }, "prctl(PR_SET_CHILD_SUBREAPER)");
    if (core.dumpable() == 0 || core.dumpable() == 1)
        batch.add(SYS_prctl, { PR_SET_DUMPABLE, static_cast<uint64_t>(core.dumpable()), 0, 0, 0, 0 }, "prctl(PR_SET_DUMPABLE)");
    if (core.thp_disabled())
        batch.add(SYS_prctl, { PR_SET_THP_DISABLE, 1, 0, 0, 0, 0 }, "prctl(PR_SET_THP_DISABLE)");
    if (core.timer_slack_ns() != 0)
        batch.add(SYS_prctl, { PR_SET_TIMERSLACK, core.timer_slack_ns(), 0, 0, 0, 0 }, "prctl(PR_SET_TIMERSLACK)");
    if (core.cpu_affinity_size() > 0) {
        std::vector<uint64_t> words(core.cpu_affinity().begin(), core.cpu_affinity().end());
        uint64_t mask = TRY(batch.put(std::as_bytes(std::span(words))));
        batch.add(SYS_sched_setaffinity, { 0, words.size() * sizeof(uint64_t), mask, 0, 0, 0 }, "sched_setaffinity",
                  "CPU affinity not restored (CPUs missing here?)", CallBatch::OnFailure::Warn);
    }
    batch.add(SYS_setpriority, { PRIO_PROCESS, 0, static_cast<uint64_t>(core.nice()), 0, 0, 0 }, "setpriority",
              fmt::format("nice value {} not restored", core.nice()), CallBatch::OnFailure::Warn);
    return {};
}

} // namespace

Result<void> restore_thread_state(const StateRestore& restore, const image::ThreadCore& thread)
{
    CallBatch batch(restore);
    TRY(queue_thread_state(thread, batch));
    TRY(batch.run());
    return queue_pending(restore, thread);
}

namespace {

// timer_create() with the id of the image: Linux 6.13's
// PR_TIMER_CREATE_RESTORE_IDS makes the kernel take the id from the
// timer_t the caller passes in.
Result<void> restore_posix_timers(const StateRestore& restore)
{
    constexpr uint64_t kRestoreIds = 77;   // PR_TIMER_CREATE_RESTORE_IDS
    const auto& timers = restore.core->posix_timers();
    if (timers.empty())
        return {};
    TRY(restore.injector->call("prctl(PR_TIMER_CREATE_RESTORE_IDS, ON)", SYS_prctl, kRestoreIds, 1));
    for (const auto& timer : timers) {
        sigevent event {};
        event.sigev_notify = timer.notify();
        event.sigev_signo = timer.signal();
        event.sigev_value.sival_ptr = reinterpret_cast<void*>(timer.value());
        if (timer.notify() & SIGEV_THREAD_ID) {
            // The thread's tid as the process itself sees it.
            pid_t tid = timer.notify_tid();
            for (const auto& thread : restore.core->threads())
                if (thread.tid() == tid && thread.ns_tids_size() > 0)
                    tid = thread.ns_tids(thread.ns_tids_size() - 1);
            event._sigev_un._tid = tid;
        }
        uint64_t event_address = TRY(restore.scratch->put_value(event));
        int id = timer.id();
        uint64_t id_address = TRY(restore.scratch->put_value(id, 256));
        TRY_CTX(restore.injector->call("timer_create", SYS_timer_create, static_cast<uint64_t>(timer.clock_id()),
                                       event_address, id_address),
                "timer {}", timer.id());
        if (TRY(restore.scratch->get_value<int>(256)) != timer.id())
            return fail("timer {} came back as timer {}", timer.id(), TRY(restore.scratch->get_value<int>(256)));
        if (timer.value_ns() == 0)
            continue;
        itimerspec spec {};
        spec.it_interval.tv_sec = static_cast<time_t>(timer.interval_ns() / 1'000'000'000);
        spec.it_interval.tv_nsec = static_cast<long>(timer.interval_ns() % 1'000'000'000);
        spec.it_value.tv_sec = static_cast<time_t>(timer.value_ns() / 1'000'000'000);
        spec.it_value.tv_nsec = static_cast<long>(timer.value_ns() % 1'000'000'000);
        uint64_t spec_address = TRY(restore.scratch->put_value(spec, 512));
        TRY_CTX(restore.injector->call("timer_settime", SYS_timer_settime, static_cast<uint64_t>(timer.id()), 0, spec_address, 0),
                "timer {}", timer.id());
    }
    TRY(restore.injector->call("prctl(PR_TIMER_CREATE_RESTORE_IDS, OFF)", SYS_prctl, kRestoreIds, 0));
    return {};
}

} // namespace

Result<void> restore_itimers(const StateRestore& restore)
{
    TRY_CTX(restore_posix_timers(restore), "POSIX timers");
    for (const auto& timer : restore.core->itimers()) {
        itimerval value {};
        value.it_interval.tv_sec = static_cast<time_t>(timer.interval_us() / 1'000'000);
        value.it_interval.tv_usec = static_cast<suseconds_t>(timer.interval_us() % 1'000'000);
        value.it_value.tv_sec = static_cast<time_t>(timer.value_us() / 1'000'000);
        value.it_value.tv_usec = static_cast<suseconds_t>(timer.value_us() % 1'000'000);
        uint64_t address = TRY(restore.scratch->put_value(value));
        TRY(restore.injector->call("setitimer", SYS_setitimer, static_cast<uint64_t>(timer.which()), address, 0));
    }
    return {};
}

namespace {

// The supplementary groups of the image are cryo's (which a new process
// inherited).
bool same_groups(const image::Credentials& saved)
{
    std::vector<gid_t> groups(static_cast<size_t>(std::max(::getgroups(0, nullptr), 0)));
    ::getgroups(static_cast<int>(groups.size()), groups.data());
    std::ranges::sort(groups);
    std::vector<gid_t> wanted(saved.groups().begin(), saved.groups().end());
    std::ranges::sort(wanted);
    return groups == wanted;
}

bool same_credentials(const image::Credentials& saved)
{
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    ::getresuid(&ruid, &euid, &suid);
    ::getresgid(&rgid, &egid, &sgid);
    if (saved.uids_size() < 3 || saved.gids_size() < 3)
        return true;
    if (saved.uids(0) != ruid || saved.uids(1) != euid || saved.uids(2) != suid)
        return false;
    if (saved.gids(0) != rgid || saved.gids(1) != egid || saved.gids(2) != sgid)
        return false;
    if (!same_groups(saved))
        return false;
    __user_cap_header_struct header { _LINUX_CAPABILITY_VERSION_3, 0 };
    __user_cap_data_struct data[2] {};
    if (::syscall(SYS_capget, &header, data) < 0)
        return false;
    auto join = [](uint32_t low, uint32_t high) { return static_cast<uint64_t>(high) << 32 | low; };
    return join(data[0].effective, data[1].effective) == saved.cap_effective()
        && join(data[0].permitted, data[1].permitted) == saved.cap_permitted()
        && join(data[0].inheritable, data[1].inheritable) == saved.cap_inheritable()
        && saved.cap_ambient() == 0 && !saved.no_new_privs();
}

} // namespace

Result<void> restore_credentials(const StateRestore& restore, const image::ThreadCore& thread)
{
    const auto& saved = restore.core->credentials();
    if (same_credentials(saved))
        return {};
    auto& injector = *restore.injector;
    const auto& scratch = *restore.scratch;

    // Bounding set first: dropping from it needs CAP_SETPCAP, which the
    // process may be about to lose. The process has cryo's bounding set;
    // only what is in it can be dropped (and a cryo without root may lack
    // CAP_SETPCAP, which check_process_privileges() made sure is not needed).
    int last_cap = 40;
    if (auto text = read_text_file("/proc/sys/kernel/cap_last_cap"))
        last_cap = std::stoi(*text);
    for (int cap = 0; cap <= last_cap; ++cap)
        if (!(saved.cap_bounding() & (1ull << cap)) && ::prctl(PR_CAPBSET_READ, cap) == 1)
            TRY(injector.call("prctl(PR_CAPBSET_DROP)", SYS_prctl, PR_CAPBSET_DROP, static_cast<uint64_t>(cap)));
    // Keep the permitted set across the uid change; capset() below sets it.
    TRY(injector.call("prctl(PR_SET_KEEPCAPS)", SYS_prctl, PR_SET_KEEPCAPS, 1));
    // setgroups() needs CAP_SETGID even to set the same groups again.
    std::vector<gid_t> groups(saved.groups().begin(), saved.groups().end());
    if (!same_groups(saved)) {
        uint64_t groups_address = TRY(scratch.put(std::as_bytes(std::span(groups))));
        TRY(injector.call("setgroups", SYS_setgroups, groups.size(), groups_address));
    }
    TRY(injector.call("setresgid", SYS_setresgid, saved.gids(0), saved.gids(1), saved.gids(2)));
    // The filesystem gid while CAP_SETGID is still effective: it may be none
    // of the three gids, and setresuid() to another user drops the
    // effective capabilities. The filesystem uid after it, which resets it
    // to the effective uid.
    if (saved.gids_size() > 3)
        TRY(injector.raw(SYS_setfsgid, { saved.gids(3), 0, 0, 0, 0, 0 }));
    TRY(injector.call("setresuid", SYS_setresuid, saved.uids(0), saved.uids(1), saved.uids(2)));
    if (saved.uids_size() > 3)
        TRY(injector.raw(SYS_setfsuid, { saved.uids(3), 0, 0, 0, 0, 0 }));

    struct {
        __user_cap_header_struct header;
        __user_cap_data_struct data[2];
    } caps {};
    caps.header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    caps.data[0] = { static_cast<uint32_t>(saved.cap_effective()), static_cast<uint32_t>(saved.cap_permitted()),
                     static_cast<uint32_t>(saved.cap_inheritable()) };
    caps.data[1] = { static_cast<uint32_t>(saved.cap_effective() >> 32), static_cast<uint32_t>(saved.cap_permitted() >> 32),
                     static_cast<uint32_t>(saved.cap_inheritable() >> 32) };
    uint64_t caps_address = TRY(scratch.put_value(caps));
    TRY(injector.call("capset", SYS_capset, caps_address, caps_address + sizeof(caps.header)));
    for (int cap = 0; cap <= last_cap; ++cap)
        if (saved.cap_ambient() & (1ull << cap))
            TRY(injector.call("prctl(PR_CAP_AMBIENT_RAISE)", SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE,
                              static_cast<uint64_t>(cap), 0, 0));
    long result = TRY(injector.raw(SYS_prctl, { PR_SET_SECUREBITS, saved.securebits(), 0, 0, 0, 0 }));
    if (result < 0 && saved.securebits() != 0)
        return fail_errno("injected prctl(PR_SET_SECUREBITS)", static_cast<int>(-result));
    if (result < 0)
        TRY(injector.call("prctl(PR_SET_KEEPCAPS)", SYS_prctl, PR_SET_KEEPCAPS, 0));
    if (saved.no_new_privs())
        TRY(injector.call("prctl(PR_SET_NO_NEW_PRIVS)", SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    // The kernel (commit_creds) reset both when the ids changed.
    const auto& core = *restore.core;
    if (core.dumpable() == 0 || core.dumpable() == 1)
        TRY(injector.call("prctl(PR_SET_DUMPABLE)", SYS_prctl, PR_SET_DUMPABLE, static_cast<uint64_t>(core.dumpable())));
    TRY(injector.call("prctl(PR_SET_PDEATHSIG)", SYS_prctl, PR_SET_PDEATHSIG, static_cast<uint64_t>(thread.pdeath_signal())));
    return {};
}

Result<void> restore_seccomp(const StateRestore& restore, const image::ThreadCore& thread)
{
    constexpr uint64_t kSeccompSetModeFilter = 1;
    // Most recent first in the image: install from the end.
    for (int i = thread.seccomp_filters_size() - 1; i >= 0; --i) {
        const auto& program = thread.seccomp_filters(i);
        constexpr uint64_t kProgramOffset = 4096;
        uint64_t instructions = TRY(restore.scratch->put(std::as_bytes(std::span(program.data(), program.size())), kProgramOffset));
        struct {
            uint16_t length;
            uint64_t filter;
        } __attribute__((aligned(8))) header { static_cast<uint16_t>(program.size() / 8), instructions };
        uint64_t prog = TRY(restore.scratch->put_value(header));
        TRY_CTX(restore.injector->call("seccomp(SET_MODE_FILTER)", SYS_seccomp, kSeccompSetModeFilter, 0, prog),
                "thread {}: seccomp filter {}", thread.tid(), i);
    }
    if (!thread.seccomp_strict())
        return {};
    // The leader still unmaps the trampoline by an injected call; detaching
    // clears the suspension, and strict mode holds from the thread's first
    // instruction on.
    pid_t tid = restore.injector->tid();
    if (::ptrace(PTRACE_SETOPTIONS, tid, nullptr, kRestoreTraceOptions | PTRACE_O_SUSPEND_SECCOMP) < 0)
        return fail_errno(fmt::format("thread {}: suspend seccomp for the rest of the restore "
                                      "(ptrace(SETOPTIONS, PTRACE_O_SUSPEND_SECCOMP))", thread.tid()));
    TRY_CTX(restore.injector->call("prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT)", SYS_prctl, PR_SET_SECCOMP,
                                   SECCOMP_MODE_STRICT),
            "thread {}: seccomp strict mode", thread.tid());
    return {};
}

namespace {

// The process inherited cryo's value at fork. Written from outside: a
// process may raise its own value but lowering it needs
// CAP_SYS_RESOURCE, which a cryo without root may lack, so a failure only
// warns.
void restore_oom_score_adj(pid_t pid, int value)
{
    std::string path = fmt::format("/proc/{}/oom_score_adj", pid);
    auto current = read_text_file(path);
    if (current && !current->empty() && std::stoi(*current) == value)
        return;
    auto written = [&]() -> Result<void> {
        auto fd = TRY(open_file(path, O_WRONLY | O_CLOEXEC));
        return write_all(fd.get(), std::to_string(value), path);
    }();
    if (!written)
        spdlog::warn("pid {}: oom_score_adj {} not restored: {}", pid, value, written.error().message());
}

} // namespace

Result<void> restore_process_state(const StateRestore& restore, const image::ThreadCore& leader,
                                   std::vector<ptrace::QueuedCall> first)
{
    CallBatch batch(restore);
    for (auto& call : first)
        batch.add(std::move(call));
    TRY(queue_sigactions(restore, batch));
    TRY(queue_process_settings(restore, batch));
    // The root directory now that no file is opened by path any more (the
    // working directory, set by the restorer, stays where it is).
    const auto& root = restore.core->root();
    if (!root.empty() && root != "/")
        batch.add(SYS_chroot, { TRY(batch.put_string(root)), 0, 0, 0, 0, 0 }, "chroot", fmt::format("root {}", root));
    TRY(queue_thread_state(leader, batch));
    TRY(batch.run());
    restore_oom_score_adj(restore.pid, restore.core->oom_score_adj());
    for (const auto& pending : restore.core->shared_pending()) {
        uint64_t info = TRY(restore.scratch->put(std::as_bytes(std::span(pending.siginfo().data(), pending.siginfo().size()))));
        TRY(restore.injector->call("rt_sigqueueinfo", SYS_rt_sigqueueinfo, static_cast<uint64_t>(restore.pid), pending.signal(), info));
    }
    return queue_pending(restore, leader);
}

} // namespace cryo::restore
