// The syscall-injection engine; see injector.h for the mechanism.
#include "ptrace/injector.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include <cstring>

namespace cryo::ptrace {

namespace {

// Kernel-internal restart codes a thread stopped in a system call may show.
constexpr long kErestartSys = 512;
constexpr long kErestartNoIntr = 513;
constexpr long kErestartNoHand = 514;
constexpr long kErestartRestartBlock = 516;
constexpr uint64_t kAllSignals = ~0ull;

} // namespace

void normalise_interrupted_syscall(Registers& registers)
{
    auto syscall_number = static_cast<long>(registers.orig_rax);
    auto result = static_cast<long>(registers.rax);
    if (syscall_number >= 0) {
        switch (-result) {
        case kErestartSys:
        case kErestartNoIntr:
        case kErestartNoHand:
            // Rewind to the `syscall` instruction (2 bytes) with the number
            // back in rax: the restored thread simply makes the call again.
            registers.rax = registers.orig_rax;
            registers.rip -= 2;
            break;
        case kErestartRestartBlock:
            // The restart block (remaining sleep time and the like) lives in
            // the kernel and is not carried over: the call fails with EINTR,
            // which every caller of such calls must handle anyway.
            registers.rax = static_cast<uint64_t>(-EINTR);
            break;
        default:
            break;
        }
    }
    registers.orig_rax = static_cast<uint64_t>(-1);
}

Result<Injector> Injector::create(Tracee& tracee, uint64_t gadget, Gadget kind)
{
    Injector injector(tracee, gadget, kind);
    injector.m_saved = TRY(tracee.registers());
    injector.m_saved_mask = TRY(tracee.signal_mask());
    TRY(tracee.set_signal_mask(kAllSignals));
    return injector;
}

Result<void> Injector::load(long number, const std::array<uint64_t, 6>& args, uint64_t rip)
{
    Registers registers = m_saved;
    registers.rip = rip;
    registers.rax = static_cast<uint64_t>(number);
    registers.orig_rax = static_cast<uint64_t>(-1);
    registers.rdi = args[0];
    registers.rsi = args[1];
    registers.rdx = args[2];
    registers.r10 = args[3];
    registers.r8 = args[4];
    registers.r9 = args[5];
    return m_tracee->set_registers(registers);
}

Result<long> Injector::raw(long number, std::array<uint64_t, 6> args)
{
    if (m_kind == Gadget::SyscallOnly)
        return call_to_exit_stop(number, args);

    TRY(load(number, args, m_gadget));
    m_left_event_stop = true;
    auto stop = TRY(m_tracee->resume_and_wait(PTRACE_CONT));
    if (stop.kind != StopKind::SignalStop || stop.signal != SIGTRAP)
        return fail("thread {}: injected syscall {} ended in an unexpected stop (status {:#x})",
                    m_tracee->tid(), number, stop.raw);
    auto registers = TRY(m_tracee->registers());
    if (registers.rip != m_gadget + 3)
        return fail("thread {}: injected syscall {} stopped at {:#x}, not after the trampoline",
                    m_tracee->tid(), number, registers.rip);
    ++m_calls;
    return static_cast<long>(registers.rax);
}

Result<long> Injector::call_to_exit_stop(long number, std::array<uint64_t, 6> args)
{
    TRY(load(number, args, m_gadget));
    m_left_event_stop = true;
    for (int stage = 0; stage < 2; ++stage) {
        auto stop = TRY(m_tracee->resume_and_wait(PTRACE_SYSCALL));
        if (stop.kind != StopKind::SyscallStop)
            return fail("thread {}: injected syscall {} ended in an unexpected stop (status {:#x})",
                        m_tracee->tid(), number, stop.raw);
    }
    auto registers = TRY(m_tracee->registers());
    ++m_calls;
    return static_cast<long>(registers.rax);
}

Result<pid_t> Injector::call_clone_thread(uint64_t clone_args, uint64_t size)
{
    if (m_kind != Gadget::SyscallThenTrap)
        return fail("thread {}: threads can only be created through a trampoline", m_tracee->tid());
    TRY(load(SYS_clone3, { clone_args, size, 0, 0, 0, 0 }, m_gadget));
    m_left_event_stop = true;
    auto stop = TRY(m_tracee->resume_and_wait(PTRACE_CONT));
    if ((stop.raw >> 16) != PTRACE_EVENT_CLONE) {
        auto registers = TRY(m_tracee->registers());
        long result = static_cast<long>(registers.rax);
        if (result < 0 && result > -4096)
            return fail_errno(fmt::format("injected clone3 in thread {}", m_tracee->tid()), static_cast<int>(-result));
        return fail("thread {}: injected clone3 ended in an unexpected stop (status {:#x})", m_tracee->tid(), stop.raw);
    }
    unsigned long new_tid = 0;
    if (::ptrace(PTRACE_GETEVENTMSG, m_tracee->tid(), nullptr, &new_tid) < 0)
        return fail_errno(fmt::format("ptrace(GETEVENTMSG) thread {}", m_tracee->tid()));
    stop = TRY(m_tracee->resume_and_wait(PTRACE_CONT));
    if (stop.kind != StopKind::SignalStop || stop.signal != SIGTRAP)
        return fail("thread {}: injected clone3 ended in an unexpected stop (status {:#x})", m_tracee->tid(), stop.raw);
    ++m_calls;
    return static_cast<pid_t>(new_tid);
}

Result<uint64_t> Injector::call(std::string_view name, long number, uint64_t a1, uint64_t a2,
                                uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6)
{
    long result = TRY(raw(number, { a1, a2, a3, a4, a5, a6 }));
    if (result < 0 && result > -4096)
        return fail_errno(fmt::format("injected {} in thread {}", name, m_tracee->tid()), static_cast<int>(-result));
    return static_cast<uint64_t>(result);
}

Result<void> Injector::restore_thread()
{
    TRY(m_tracee->set_registers(m_saved));
    if (m_left_event_stop) {
        // The thread now sits in a syscall-exit or signal stop. Ask for an
        // interrupt and let it run into the event stop: the kernel then
        // leaves through the signal path with the original registers, which
        // performs the syscall restart they may call for.
        TRY(m_tracee->interrupt());
        for (;;) {
            auto stop = TRY(m_tracee->resume_and_wait(PTRACE_CONT));
            if (stop.kind == StopKind::EventStop)
                break;
            if (stop.kind != StopKind::SyscallStop && stop.kind != StopKind::SignalStop)
                return fail("thread {}: unexpected stop while putting it back (status {:#x})",
                            m_tracee->tid(), stop.raw);
        }
        m_left_event_stop = false;
    }
    TRY(m_tracee->set_signal_mask(m_saved_mask));
    return {};
}

Result<RemoteMemory> RemoteMemory::open(pid_t pid)
{
    auto fd = TRY(open_file(fmt::format("/proc/{}/mem", pid), O_RDWR | O_CLOEXEC));
    return RemoteMemory(pid, std::move(fd));
}

Result<void> RemoteMemory::read(uint64_t address, std::span<std::byte> out) const
{
    return pread_exact(m_fd.get(), out, address, fmt::format("memory of pid {} at {:#x}", m_pid, address));
}

Result<void> RemoteMemory::write(uint64_t address, std::span<const std::byte> data) const
{
    return pwrite_all(m_fd.get(), data, address, fmt::format("memory of pid {} at {:#x}", m_pid, address));
}

Result<uint64_t> ScratchArea::put(std::span<const std::byte> data, uint64_t offset) const
{
    if (offset + data.size() > m_size)
        return fail("{} bytes do not fit in the {}-byte scratch area", offset + data.size(), m_size);
    TRY(m_memory->write(m_address + offset, data));
    return m_address + offset;
}

Result<uint64_t> ScratchArea::put_string(std::string_view text, uint64_t offset) const
{
    std::string copy(text);
    return put(std::as_bytes(std::span(copy.c_str(), copy.size() + 1)), offset);
}

} // namespace cryo::ptrace
