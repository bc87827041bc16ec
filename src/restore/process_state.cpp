// See process_state.h.
#include "restore/process_state.h"

#include "ptrace/kernel_abi.h"

#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
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

Result<void> restore_sigactions(const StateRestore& restore)
{
    // The new process inherited cryo's dispositions; every signal the image
    // does not list goes back to the default.
    std::vector<const image::SignalAction*> actions(kSignalCount + 1, nullptr);
    for (const auto& action : restore.core->sigactions())
        if (action.signal() >= 1 && action.signal() <= kSignalCount)
            actions[action.signal()] = &action;
    // Every signal in one batch (62 calls): the actions first in the
    // scratch area, then the table of calls.
    std::vector<KernelSigaction> values;
    std::vector<int> signals;
    for (int signal = 1; signal <= kSignalCount; ++signal) {
        if (signal == SIGKILL || signal == SIGSTOP)
            continue;
        KernelSigaction action {};
        if (const auto* saved = actions[signal])
            action = { saved->handler(), saved->flags(), saved->restorer(), saved->mask() };
        values.push_back(action);
        signals.push_back(signal);
    }
    uint64_t base = TRY(restore.scratch->put(std::as_bytes(std::span(values))));
    std::vector<ptrace::BatchCall> calls;
    for (size_t i = 0; i < signals.size(); ++i)
        calls.push_back({ SYS_rt_sigaction,
                          { static_cast<uint64_t>(signals[i]), base + i * sizeof(KernelSigaction), 0, 8, 0, 0 },
                          "rt_sigaction" });
    uint64_t table_offset = (values.size() * sizeof(KernelSigaction) + 63) / 64 * 64;
    auto results = TRY(restore.injector->batch(calls, *restore.scratch, table_offset));
    for (size_t i = 0; i < signals.size(); ++i) {
        int signal = signals[i];
        if (results[i] < 0 && !(results[i] == -EINVAL && !actions[signal]))
            return fail_errno(fmt::format("injected rt_sigaction({})", signal), static_cast<int>(-results[i]));
    }
    return {};
}

} // namespace

Result<void> restore_thread_state(const StateRestore& restore, const image::ThreadCore& thread)
{
    auto& injector = *restore.injector;
    const auto& scratch = *restore.scratch;

    if (thread.has_altstack() && !(thread.altstack().flags() & SS_DISABLE)) {
        stack_t stack {};
        stack.ss_sp = reinterpret_cast<void*>(thread.altstack().sp());
        stack.ss_size = thread.altstack().size();
        stack.ss_flags = thread.altstack().flags() & ~SS_ONSTACK;
        TRY(injector.call("sigaltstack", SYS_sigaltstack, TRY(scratch.put_value(stack)), 0));
    } else {
        stack_t disabled {};
        disabled.ss_flags = SS_DISABLE;
        TRY(injector.call("sigaltstack", SYS_sigaltstack, TRY(scratch.put_value(disabled)), 0));
    }
    TRY(injector.call("set_tid_address", SYS_set_tid_address, thread.clear_child_tid()));
    TRY(injector.call("set_robust_list", SYS_set_robust_list, thread.robust_list_head(),
                      thread.robust_list_length() ? thread.robust_list_length() : 24));
    TRY(injector.call("prctl(PR_SET_NAME)", SYS_prctl, PR_SET_NAME, TRY(scratch.put_string(thread.comm()))));
    TRY(injector.call("prctl(PR_SET_PDEATHSIG)", SYS_prctl, PR_SET_PDEATHSIG, static_cast<uint64_t>(thread.pdeath_signal())));
    // Another policy than SCHED_OTHER (SCHED_BATCH, SCHED_IDLE, real-time),
    // with its priority and SCHED_RESET_ON_FORK.
    if (thread.sched_policy() != SCHED_OTHER) {
        struct sched_param param {};
        param.sched_priority = thread.sched_priority();
        TRY(injector.call("sched_setscheduler", SYS_sched_setscheduler, 0, static_cast<uint64_t>(thread.sched_policy()),
                          TRY(scratch.put_value(param))));
    }
    if (thread.has_rseq())
        TRY(injector.call("rseq register", __NR_rseq, thread.rseq().address(), thread.rseq().size(), 0,
                          thread.rseq().signature()));
    // Signals still pending at dump time are queued again, while every
    // signal is blocked (the injector blocked them); the final mask decides
    // when they are delivered, as it would have.
    for (const auto& pending : thread.pending()) {
        uint64_t info = TRY(scratch.put(std::as_bytes(std::span(pending.siginfo().data(), pending.siginfo().size()))));
        TRY(injector.call("rt_tgsigqueueinfo", SYS_rt_tgsigqueueinfo, static_cast<uint64_t>(restore.pid),
                          static_cast<uint64_t>(thread.tid()), pending.signal(), info));
    }
    return {};
}

namespace {

Result<void> restore_process_settings(const StateRestore& restore)
{
    auto& injector = *restore.injector;
    const auto& core = *restore.core;
    const auto& scratch = *restore.scratch;

    for (const auto& pending : core.shared_pending()) {
        uint64_t info = TRY(scratch.put(std::as_bytes(std::span(pending.siginfo().data(), pending.siginfo().size()))));
        TRY(injector.call("rt_sigqueueinfo", SYS_rt_sigqueueinfo, static_cast<uint64_t>(restore.pid), pending.signal(), info));
    }
    TRY(injector.call("personality", SYS_personality, core.personality()));
    if (core.child_subreaper())
        TRY(injector.call("prctl(PR_SET_CHILD_SUBREAPER)", SYS_prctl, PR_SET_CHILD_SUBREAPER, 1));
    if (core.dumpable() == 0 || core.dumpable() == 1)
        TRY(injector.call("prctl(PR_SET_DUMPABLE)", SYS_prctl, PR_SET_DUMPABLE, static_cast<uint64_t>(core.dumpable())));
    if (core.thp_disabled())
        TRY(injector.call("prctl(PR_SET_THP_DISABLE)", SYS_prctl, PR_SET_THP_DISABLE, 1, 0, 0, 0));
    if (core.timer_slack_ns() != 0)
        TRY(injector.call("prctl(PR_SET_TIMERSLACK)", SYS_prctl, PR_SET_TIMERSLACK, core.timer_slack_ns()));
    if (core.cpu_affinity_size() > 0) {
        std::vector<uint64_t> words(core.cpu_affinity().begin(), core.cpu_affinity().end());
        uint64_t mask = TRY(scratch.put(std::as_bytes(std::span(words))));
        long result = TRY(injector.raw(SYS_sched_setaffinity, { 0, words.size() * sizeof(uint64_t), mask, 0, 0, 0 }));
        if (result < 0)
            spdlog::warn("pid {}: CPU affinity not restored (CPUs missing here?): {}", restore.pid,
                         std::strerror(static_cast<int>(-result)));
    }
    long result = TRY(injector.raw(SYS_setpriority, { PRIO_PROCESS, 0, static_cast<uint64_t>(core.nice()), 0, 0, 0 }));
    if (result < 0)
        spdlog::warn("pid {}: nice value {} not restored: {}", restore.pid, core.nice(), std::strerror(static_cast<int>(-result)));
    return {};
}

} // namespace

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
        if (timer.notify() == SIGEV_THREAD_ID) {
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
    return {};
}

Result<void> restore_process_state(const StateRestore& restore)
{
    TRY_CTX(restore_sigactions(restore), "signal handlers");
    TRY(restore_process_settings(restore));
    // The root directory now that no file is opened by path any more (the
    // working directory, set by the restorer, stays where it is).
    const auto& root = restore.core->root();
    if (!root.empty() && root != "/")
        TRY_CTX(restore.injector->call("chroot", SYS_chroot, TRY(restore.scratch->put_string(root))), "root {}", root);
    return {};
}

} // namespace cryo::restore
