// One thread held by ptrace.
//
// cryo freezes a thread with PTRACE_SEIZE + PTRACE_INTERRUPT: unlike
// PTRACE_ATTACH this sends no SIGSTOP, so the program's own job-control state
// and pending signals are untouched, and the thread stops in a "ptrace event
// stop" from which registers, FPU state and signal masks can be read and
// written. A Tracee detaches in its destructor (which resumes the thread), so
// an error anywhere on the way up leaves the thread running as it was.
//
// A thread already in a job-control stop (SIGSTOP, SIGTSTP, ...) when seized
// reports its first event stop with that stop signal instead of SIGTRAP;
// seize() keeps it as group_stop_signal(). Such a thread, once resumed by
// cryo, runs (ptrace overrides the group stop) but may report one more
// group-stop event stop first; when detached, the kernel puts it back in
// the group stop, which lasts until SIGCONT.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

namespace cryo::ptrace {

using Registers = user_regs_struct;

// How a stopped thread came to stop, decoded from a waitpid() status.
enum class StopKind { EventStop, SyscallStop, SignalStop, Exited, Other };

struct StopStatus {
    StopKind kind { StopKind::Other };
    int signal { 0 };   // the stopping signal, or the exit/kill status
    int raw { 0 };
};

class Tracee {
public:
    // Seizes `tid` and interrupts it; returns once it is in an event stop.
    static Result<Tracee> seize(pid_t tid, unsigned options);
    // Takes ownership of a thread cryo already seized.
    static Tracee adopt(pid_t tid) { return Tracee(tid); }

    Tracee(Tracee&& other) noexcept;
    Tracee& operator=(Tracee&& other) noexcept;
    Tracee(const Tracee&) = delete;
    Tracee& operator=(const Tracee&) = delete;
    ~Tracee();

    pid_t tid() const { return m_tid; }
    // The signal that stopped the thread's group (job control) when it was
    // seized, 0 if it was not stopped.
    int group_stop_signal() const { return m_group_stop_signal; }

    Result<Registers> registers() const;
    Result<void> set_registers(const Registers& registers);
    // The whole XSAVE area (x87, SSE, AVX, AVX-512, PKRU ...) as the kernel
    // lays it out in NT_X86_XSTATE.
    Result<std::string> xstate() const;
    Result<void> set_xstate(std::string_view xstate);
    Result<uint64_t> signal_mask() const;
    Result<void> set_signal_mask(uint64_t mask);

    // Resumes with `request` (PTRACE_CONT, PTRACE_SYSCALL, ...) and waits for
    // the next stop; an exit of the thread is an error.
    Result<StopStatus> resume_and_wait(int request);
    // Resumes without waiting, delivering `signal` (0: none).
    Result<void> resume(int request, int signal = 0);
    Result<void> interrupt();
    Result<StopStatus> wait_stop();

    // Detaches, letting the thread run on.
    Result<void> detach();
    // Forgets the thread without detaching: it is gone (killed) or another
    // owner takes over.
    void release() { m_tid = -1; }

private:
    explicit Tracee(pid_t tid) : m_tid(tid) { }
    pid_t m_tid { -1 };
    int m_group_stop_signal { 0 };
};

StopStatus decode_stop(int status);

// Whether `stop` is an event stop reporting a job-control stop of the
// thread's group (its signal is the stop signal, not SIGTRAP).
bool is_group_stop(const StopStatus& stop);

} // namespace cryo::ptrace
