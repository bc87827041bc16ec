// The syscall-injection engine; see injector.h for the mechanism.
#include "ptrace/injector.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "base/fault.h"
#include "base/scope_guard.h"

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
    // A restorer is killed if cryo fails or dies: its signals stay blocked
    // for as long as cryo drives it. A thread being dumped gets its mask
    // back after every call (see put_back()).
    if (kind == Gadget::SyscallThenTrap)
        TRY(tracee.set_signal_mask(kAllSignals));
    return injector;
}

namespace {

// Names for the calls made through raw(), for the fault switch's steps.
std::string syscall_name(long number)
{
    switch (number) {
    case SYS_rt_sigaction: return "rt_sigaction";
    case SYS_munmap: return "munmap";
    case SYS_close: return "close";
    case SYS_madvise: return "madvise";
    case SYS_mlock: return "mlock";
    case SYS_sched_setaffinity: return "sched_setaffinity";
    case SYS_setpriority: return "setpriority";
    case SYS_setfsuid: return "setfsuid";
    case SYS_setfsgid: return "setfsgid";
    case SYS_prctl: return "prctl";
    case SYS_clone3: return "clone3";
    default: return fmt::format("syscall {}", number);
    }
}

} // namespace

Result<void> Injector::load(long number, const std::array<uint64_t, 6>& args, uint64_t rip, std::string_view name)
{
    // A step of the fault switch: the call fails (or cryo stalls) before
    // anything of it is done to the thread, as a failed resume would.
    TRY(fault::step([&] { return fmt::format("syscall {} in thread {}", name, m_tracee->tid()); }));
    // A thread being dumped must not take a signal in the middle of a call
    // (it would turn into a signal-delivery stop): block them just for it.
    if (m_kind == Gadget::SyscallOnly)
        TRY(m_tracee->set_signal_mask(kAllSignals));
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

Result<StopStatus> Injector::resume_for_call(int request)
{
    for (;;) {
        auto stop = TRY(m_tracee->resume_and_wait(request));
        if (is_group_stop(stop))
            continue;
        // A thread in a job-control stop that was sent SIGSTOP once more
        // (kill(2) twice) keeps the second one pending; with every other
        // signal blocked it is the one delivered as soon as the thread runs
        // an injected call. Resuming with no signal discards it, which
        // changes nothing the program can see: the thread stays stopped and
        // the SIGCONT that ends the stop would discard it anyway.
        if (stop.kind == StopKind::SignalStop && stop.signal == SIGSTOP)
            continue;
        return stop;
    }
}

Result<void> Injector::put_back()
{
    if (m_kind != Gadget::SyscallOnly)
        return {};
    TRY(m_tracee->set_registers(m_saved));
    return m_tracee->set_signal_mask(m_saved_mask);
}

Result<long> Injector::raw(long number, std::array<uint64_t, 6> args)
{
    return run(number, args, syscall_name(number));
}

Result<long> Injector::run(long number, const std::array<uint64_t, 6>& args, std::string_view name)
{
    if (m_kind == Gadget::SyscallOnly)
        return exit_stop_call(number, args, name);

    m_left_event_stop = true;
    TRY(load(number, args, m_gadget, name));
    auto stop = TRY(resume_for_call(PTRACE_CONT));
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

namespace {

// `syscall; int3`, then at kBatchEntry, with r12 pointing at a table of
// 64-byte entries (number, six arguments, result) and r13 their count:
//     loop: test r13, r13; je done
//           mov rax, [r12]; mov rdi, [r12+8]; mov rsi, [r12+16]
//           mov rdx, [r12+24]; mov r10, [r12+32]; mov r8, [r12+40]
//           mov r9, [r12+48]; syscall; mov [r12+56], rax
//           add r12, 64; dec r13; jmp loop
//     done: int3
constexpr unsigned char kTrampolineCode[] = {
    0x0f, 0x05, 0xcc, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90,
    0x4d, 0x85, 0xed, 0x74, 0x32, 0x49, 0x8b, 0x04, 0x24, 0x49, 0x8b, 0x7c, 0x24, 0x08, 0x49, 0x8b,
    0x74, 0x24, 0x10, 0x49, 0x8b, 0x54, 0x24, 0x18, 0x4d, 0x8b, 0x54, 0x24, 0x20, 0x4d, 0x8b, 0x44,
    0x24, 0x28, 0x4d, 0x8b, 0x4c, 0x24, 0x30, 0x0f, 0x05, 0x49, 0x89, 0x44, 0x24, 0x38, 0x49, 0x83,
    0xc4, 0x40, 0x49, 0xff, 0xcd, 0xeb, 0xc9, 0xcc,
};
constexpr uint64_t kBatchEnd = sizeof(kTrampolineCode);   // just past the int3
static_assert(kTrampolineCode[kBatchEntry] == 0x4d);

struct BatchEntry {
    uint64_t number;
    std::array<uint64_t, 6> args;
    int64_t result;
};
static_assert(sizeof(BatchEntry) * kBatchCalls == kBatchTableSize);

} // namespace

std::span<const unsigned char> trampoline_code() { return kTrampolineCode; }

Result<std::vector<long>> Injector::batch(std::span<const BatchCall> calls, const ScratchArea& scratch, uint64_t table_offset)
{
    if (m_kind != Gadget::SyscallThenTrap)
        return fail("thread {}: batches of calls need the restore trampoline", m_tracee->tid());
    if (calls.empty())
        return std::vector<long> {};
    // Each call is a step of the fault switch, as when made one by one.
    for (const auto& call : calls)
        TRY(fault::step([&] { return fmt::format("syscall {} in thread {}", call.name, m_tracee->tid()); }));
    std::vector<BatchEntry> table;
    for (const auto& call : calls)
        table.push_back({ static_cast<uint64_t>(call.number), call.args, -ENOSYS });
    uint64_t address = TRY(scratch.put(std::as_bytes(std::span(table)), table_offset));

    m_left_event_stop = true;
    Registers registers = m_saved;
    registers.rip = m_gadget + kBatchEntry;
    registers.orig_rax = static_cast<uint64_t>(-1);
    registers.r12 = address;
    registers.r13 = table.size();
    TRY(m_tracee->set_registers(registers));
    auto stop = TRY(resume_for_call(PTRACE_CONT));
    if (stop.kind != StopKind::SignalStop || stop.signal != SIGTRAP)
        return fail("thread {}: a batch of {} injected calls ended in an unexpected stop (status {:#x})",
                    m_tracee->tid(), calls.size(), stop.raw);
    registers = TRY(m_tracee->registers());
    if (registers.rip != m_gadget + kBatchEnd)
        return fail("thread {}: a batch of injected calls stopped at {:#x}, not at its end", m_tracee->tid(),
                    registers.rip);
    TRY(scratch.get(std::as_writable_bytes(std::span(table)), table_offset));
    std::vector<long> results;
    for (const auto& entry : table)
        results.push_back(static_cast<long>(entry.result));
    m_calls += static_cast<int>(calls.size());
    return results;
}

Result<std::vector<long>> run_queued(Injector& injector, const ScratchArea& scratch, std::span<const QueuedCall> calls,
                                     uint64_t table_offset)
{
    std::vector<long> results;
    for (size_t first = 0; first < calls.size(); first += kBatchCalls) {
        std::vector<BatchCall> batch;
        for (size_t i = first; i < std::min(calls.size(), first + kBatchCalls); ++i)
            batch.push_back(calls[i].call);
        auto done = TRY(injector.batch(batch, scratch, table_offset));
        results.insert(results.end(), done.begin(), done.end());
    }
    for (size_t i = 0; i < calls.size(); ++i) {
        long result = results[i];
        if (result >= 0 || result <= -4096)
            continue;
        const auto& call = calls[i];
        if (call.warn_only) {
            spdlog::warn("pid {}: {}: {} failed: {}", injector.tid(), call.context, call.call.name,
                         std::strerror(static_cast<int>(-result)));
            continue;
        }
        Error error = Error::from_errno(fmt::format("injected {} in thread {}", call.call.name, injector.tid()),
                                        static_cast<int>(-result));
        if (!call.context.empty())
            error.add_context(call.context);
        return fail(std::move(error));
    }
    return results;
}

Result<long> Injector::call_to_exit_stop(long number, std::array<uint64_t, 6> args)
{
    return exit_stop_call(number, args, syscall_name(number));
}

// On dump, between two calls the thread holds its own registers and signal
// mask again, in a syscall-exit stop: if cryo dies there (killed), the
// kernel detaches the thread, which then resumes exactly as from the stop
// cryo found it in (the pending syscall restart included). Only while one
// call runs does it hold injected registers and a full signal mask.
Result<long> Injector::exit_stop_call(long number, const std::array<uint64_t, 6>& args, std::string_view name)
{
    m_left_event_stop = true;
    ScopeGuard put_back_on_error([&] { (void)put_back(); });
    TRY(load(number, args, m_gadget, name));
    for (int stage = 0; stage < 2; ++stage) {
        auto stop = TRY(resume_for_call(PTRACE_SYSCALL));
        if (stop.kind != StopKind::SyscallStop)
            return fail("thread {}: injected syscall {} ended in an unexpected stop (status {:#x})",
                        m_tracee->tid(), number, stop.raw);
    }
    auto registers = TRY(m_tracee->registers());
    put_back_on_error.dismiss();
    TRY(put_back());
    ++m_calls;
    return static_cast<long>(registers.rax);
}

Result<pid_t> Injector::call_clone_thread(uint64_t clone_args, uint64_t size)
{
    if (m_kind != Gadget::SyscallThenTrap)
        return fail("thread {}: threads can only be created through a trampoline", m_tracee->tid());
    m_left_event_stop = true;
    TRY(load(SYS_clone3, { clone_args, size, 0, 0, 0, 0 }, m_gadget, "clone3 (thread)"));
    auto stop = TRY(resume_for_call(PTRACE_CONT));
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
    stop = TRY(resume_for_call(PTRACE_CONT));
    if (stop.kind != StopKind::SignalStop || stop.signal != SIGTRAP)
        return fail("thread {}: injected clone3 ended in an unexpected stop (status {:#x})", m_tracee->tid(), stop.raw);
    ++m_calls;
    return static_cast<pid_t>(new_tid);
}

Result<uint64_t> Injector::call(std::string_view name, long number, uint64_t a1, uint64_t a2,
                                uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6)
{
    long result = TRY(run(number, { a1, a2, a3, a4, a5, a6 }, name));
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

Result<void> ScratchArea::get(std::span<std::byte> out, uint64_t offset) const
{
    if (offset + out.size() > m_size)
        return fail("{} bytes do not fit in the {}-byte scratch area", offset + out.size(), m_size);
    return m_memory->read(m_address + offset, out);
}

Result<uint64_t> ScratchArea::put_string(std::string_view text, uint64_t offset) const
{
    std::string copy(text);
    return put(std::as_bytes(std::span(copy.c_str(), copy.size() + 1)), offset);
}

} // namespace cryo::ptrace
