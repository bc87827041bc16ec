// See threads.h.
#include "restore/threads.h"

#include <linux/sched.h>
#include <signal.h>
#include <sys/ptrace.h>

#include <span>
#include <vector>

namespace cryo::restore {

Result<ptrace::Tracee> create_thread(ptrace::Tracee& leader, ptrace::Injector& injector,
                                     const ptrace::ScratchArea& scratch, const image::ThreadCore& thread_core)
{
    pid_t tid = thread_core.tid();
    if (::ptrace(PTRACE_SETOPTIONS, leader.tid(), nullptr, kRestoreTraceOptions) < 0)
        return fail_errno(fmt::format("ptrace(SETOPTIONS) thread {}", leader.tid()));

    constexpr uint64_t kTidOffset = 512;
    // The tid in every PID namespace level, innermost first.
    std::vector<pid_t> set_tid(thread_core.ns_tids().rbegin(), thread_core.ns_tids().rend());
    if (set_tid.empty())
        set_tid.push_back(tid);
    uint64_t tid_address = TRY(scratch.put(std::as_bytes(std::span(set_tid)), kTidOffset));
    clone_args args {};
    // The thread shares everything a pthread shares; its stack pointer and
    // TLS come with its registers later.
    args.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    args.set_tid = tid_address;
    args.set_tid_size = set_tid.size();
    uint64_t args_address = TRY(scratch.put_value(args));
    auto created = injector.call_clone_thread(args_address, sizeof(args));
    if (!created) {
        if (created.error().code() == EEXIST)
            return fail("tid {} is already in use: cannot restore thread {}", tid, tid);
        return std::unexpected(std::move(created.error()));
    }
    if (*created != tid)
        return fail("the new thread got tid {} instead of {}", *created, tid);

    auto thread = ptrace::Tracee::adopt(tid);
    for (;;) {
        auto stop = TRY(thread.wait_stop());
        if (stop.kind == ptrace::StopKind::EventStop)
            break;
        TRY(thread.resume(PTRACE_CONT));
    }
    return thread;
}

} // namespace cryo::restore
