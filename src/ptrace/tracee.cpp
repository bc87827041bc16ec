// Seizing, stopping, inspecting and releasing one thread with ptrace.
#include "ptrace/tracee.h"

#include <elf.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <utility>

#include <spdlog/spdlog.h>

namespace cryo::ptrace {

StopStatus decode_stop(int status)
{
    StopStatus stop;
    stop.raw = status;
    if (WIFEXITED(status)) {
        stop.kind = StopKind::Exited;
        stop.signal = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        stop.kind = StopKind::Exited;
        stop.signal = WTERMSIG(status);
    } else if (WIFSTOPPED(status)) {
        stop.signal = WSTOPSIG(status);
        if ((status >> 16) == PTRACE_EVENT_STOP)
            stop.kind = StopKind::EventStop;
        else if (stop.signal == (SIGTRAP | 0x80))
            stop.kind = StopKind::SyscallStop;
        else if ((status >> 16) == 0)
            stop.kind = StopKind::SignalStop;
    }
    return stop;
}

bool is_group_stop(const StopStatus& stop)
{
    if (stop.kind != StopKind::EventStop)
        return false;
    return stop.signal == SIGSTOP || stop.signal == SIGTSTP || stop.signal == SIGTTIN || stop.signal == SIGTTOU;
}

Result<Tracee> Tracee::seize(pid_t tid, unsigned options)
{
    if (::ptrace(PTRACE_SEIZE, tid, nullptr, options) < 0)
        return fail_errno(fmt::format("ptrace(SEIZE) thread {}", tid));
    Tracee tracee(tid);
    TRY(tracee.interrupt());
    // A signal may arrive between seize and interrupt; its delivery stop
    // comes first. Let it through (the thread handles it as it would have)
    // and keep waiting for the event stop we asked for.
    for (;;) {
        auto stop = TRY(tracee.wait_stop());
        if (stop.kind == StopKind::EventStop) {
            if (is_group_stop(stop))
                tracee.m_group_stop_signal = stop.signal;
            return tracee;
        }
        if (stop.kind == StopKind::SignalStop) {
            if (::ptrace(PTRACE_CONT, tid, nullptr, stop.signal) < 0)
                return fail_errno(fmt::format("ptrace(CONT) thread {}", tid));
            TRY(tracee.interrupt());
            continue;
        }
        return fail("thread {}: unexpected stop while freezing (status {:#x})", tid, stop.raw);
    }
}

Tracee::Tracee(Tracee&& other) noexcept
    : m_tid(std::exchange(other.m_tid, -1))
    , m_group_stop_signal(other.m_group_stop_signal)
{
}

Tracee& Tracee::operator=(Tracee&& other) noexcept
{
    if (this != &other) {
        if (m_tid > 0)
            (void)detach();
        m_tid = std::exchange(other.m_tid, -1);
        m_group_stop_signal = other.m_group_stop_signal;
    }
    return *this;
}

Tracee::~Tracee()
{
    if (m_tid > 0) {
        if (auto result = detach(); !result)
            spdlog::warn("{}", result.error().message());
    }
}

Result<Registers> Tracee::registers() const
{
    Registers registers {};
    if (::ptrace(PTRACE_GETREGS, m_tid, nullptr, &registers) < 0)
        return fail_errno(fmt::format("ptrace(GETREGS) thread {}", m_tid));
    return registers;
}

Result<void> Tracee::set_registers(const Registers& registers)
{
    if (::ptrace(PTRACE_SETREGS, m_tid, nullptr, &registers) < 0)
        return fail_errno(fmt::format("ptrace(SETREGS) thread {}", m_tid));
    return {};
}

Result<std::string> Tracee::xstate() const
{
    // The XSAVE area is at most a few KiB today (AVX-512 with AMX tiles is
    // ~11 KiB); the kernel trims iov_len to what it wrote.
    std::string buffer(64 * 1024, '\0');
    iovec iov { buffer.data(), buffer.size() };
    if (::ptrace(PTRACE_GETREGSET, m_tid, reinterpret_cast<void*>(NT_X86_XSTATE), &iov) < 0)
        return fail_errno(fmt::format("ptrace(GETREGSET, NT_X86_XSTATE) thread {}", m_tid));
    buffer.resize(iov.iov_len);
    return buffer;
}

Result<void> Tracee::set_xstate(std::string_view xstate)
{
    std::string buffer(xstate);
    iovec iov { buffer.data(), buffer.size() };
    if (::ptrace(PTRACE_SETREGSET, m_tid, reinterpret_cast<void*>(NT_X86_XSTATE), &iov) < 0)
        return fail_errno(fmt::format("ptrace(SETREGSET, NT_X86_XSTATE) thread {}", m_tid));
    return {};
}

Result<uint64_t> Tracee::signal_mask() const
{
    uint64_t mask = 0;
    if (::ptrace(PTRACE_GETSIGMASK, m_tid, sizeof(mask), &mask) < 0)
        return fail_errno(fmt::format("ptrace(GETSIGMASK) thread {}", m_tid));
    return mask;
}

Result<void> Tracee::set_signal_mask(uint64_t mask)
{
    if (::ptrace(PTRACE_SETSIGMASK, m_tid, sizeof(mask), &mask) < 0)
        return fail_errno(fmt::format("ptrace(SETSIGMASK) thread {}", m_tid));
    return {};
}

Result<StopStatus> Tracee::wait_stop()
{
    int status = 0;
    for (;;) {
        pid_t waited = ::waitpid(m_tid, &status, __WALL);
        if (waited == m_tid)
            break;
        if (waited < 0 && errno == EINTR)
            continue;
        return fail_errno(fmt::format("waitpid thread {}", m_tid));
    }
    auto stop = decode_stop(status);
    if (stop.kind == StopKind::Exited) {
        pid_t gone_tid = std::exchange(m_tid, -1);
        return fail("thread {} exited while frozen (wait status {:#x})", gone_tid, status);
    }
    return stop;
}

Result<StopStatus> Tracee::resume_and_wait(int request)
{
    if (::ptrace(static_cast<__ptrace_request>(request), m_tid, nullptr, 0) < 0)
        return fail_errno(fmt::format("ptrace(resume) thread {}", m_tid));
    return wait_stop();
}

Result<void> Tracee::resume(int request, int signal)
{
    if (::ptrace(static_cast<__ptrace_request>(request), m_tid, nullptr, signal) < 0)
        return fail_errno(fmt::format("ptrace(resume) thread {}", m_tid));
    return {};
}

Result<void> Tracee::interrupt()
{
    if (::ptrace(PTRACE_INTERRUPT, m_tid, nullptr, nullptr) < 0)
        return fail_errno(fmt::format("ptrace(INTERRUPT) thread {}", m_tid));
    return {};
}

Result<void> Tracee::detach()
{
    pid_t tid = std::exchange(m_tid, -1);
    if (tid <= 0)
        return {};
    if (::ptrace(PTRACE_DETACH, tid, nullptr, 0) < 0 && errno != ESRCH)
        return fail_errno(fmt::format("ptrace(DETACH) thread {}", tid));
    return {};
}

} // namespace cryo::ptrace
