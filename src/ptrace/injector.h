// Running single system calls inside a stopped thread.
//
// Some state exists only from the point of view of the process itself: its
// signal handlers, interval timers, alternate signal stack, the address the
// kernel clears when the thread exits, and on restore, everything it maps
// and registers. cryo gets at it by borrowing a stopped thread: it saves the
// registers, points the instruction pointer at a `syscall` instruction with
// the arguments in the registers, lets the thread run exactly that one
// instruction, reads the result from rax and puts everything back.
//
// Two kinds of gadget exist. On dump the `syscall` is found in the target's
// own vDSO (so nothing in its memory is changed) and cryo stops the thread at
// syscall entry and exit. On restore cryo maps a trampoline page holding
// `syscall; int3`, so one PTRACE_CONT runs the call and the int3 stops it.
//
// While injecting, every signal is blocked through PTRACE_SETSIGMASK (a
// pending signal would otherwise turn into a delivery stop and be lost) and
// orig_rax is -1 so the kernel never "restarts" the borrowed call. On dump
// the thread gets its own registers and mask back after every call, so that
// if cryo dies (is killed) between two calls the kernel's detach lets it run
// on exactly as it was; only during one call (microseconds) is it not.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "ptrace/tracee.h"

namespace cryo::ptrace {

enum class Gadget {
    SyscallThenTrap,  // `syscall; int3` at the address (restore trampoline)
    SyscallOnly,      // a bare `syscall` (found in the vDSO on dump)
};

// The code of the restore trampoline: `syscall; int3` at its start and, at
// kBatchEntry, a loop that runs a table of calls in one go (Injector::batch):
// a ptrace round trip costs far more than a system call, and restoring one
// process's signal handlers alone takes 62 calls.
inline constexpr uint64_t kBatchEntry = 16;
std::span<const unsigned char> trampoline_code();

class ScratchArea;

// One call of a batch and, once run, its raw result (-errno on failure).
struct BatchCall {
    long number;
    std::array<uint64_t, 6> args;
    std::string_view name;   // for errors and the fault switch's steps
};

// A call of a batch and what its failure means (run_queued()).
struct QueuedCall {
    BatchCall call;
    std::string context;        // prepended to its error or warning, if any
    bool warn_only { false };   // a failure is logged, not an error
};

// Calls per batch of run_queued(), and the size of their table in the
// scratch area (64 bytes a call).
inline constexpr size_t kBatchCalls = 512;
inline constexpr size_t kBatchTableSize = kBatchCalls * 64;

class Injector {
public:
    static Result<Injector> create(Tracee& tracee, uint64_t gadget, Gadget kind);

    Injector(Injector&&) noexcept = default;
    Injector& operator=(Injector&&) noexcept = default;

    // Runs the system call and returns the raw result (-errno on failure).
    Result<long> raw(long number, std::array<uint64_t, 6> args);
    // Runs it and turns a -errno result into an error naming `name`.
    Result<uint64_t> call(std::string_view name, long number, uint64_t a1 = 0, uint64_t a2 = 0,
                          uint64_t a3 = 0, uint64_t a4 = 0, uint64_t a5 = 0, uint64_t a6 = 0);
    // Runs every call in one trampoline run (restore only), the table at
    // `table_offset` in `scratch`; returns their raw results in order.
    Result<std::vector<long>> batch(std::span<const BatchCall> calls, const ScratchArea& scratch, uint64_t table_offset);
    // Runs a clone3() that creates a thread, with PTRACE_O_TRACECLONE set
    // on the tracee: the new thread starts traced and stopped. Returns its
    // tid once both have stopped.
    Result<pid_t> call_clone_thread(uint64_t clone_args, uint64_t size);
    // Runs the call with syscall stops and leaves the thread in its
    // syscall-exit stop: the last call of a restore (unmapping the
    // trampoline) is made this way so no instruction of it runs afterwards.
    Result<long> call_to_exit_stop(long number, std::array<uint64_t, 6> args);

    // Puts back the registers and the signal mask saved at creation and
    // returns the thread to an event stop, from which it resumes exactly as
    // if nothing had happened (including a pending syscall restart).
    Result<void> restore_thread();

    pid_t tid() const { return m_tracee->tid(); }
    const Registers& saved_registers() const { return m_saved; }
    uint64_t saved_signal_mask() const { return m_saved_mask; }
    int calls() const { return m_calls; }

private:
    Injector(Tracee& tracee, uint64_t gadget, Gadget kind) : m_tracee(&tracee), m_gadget(gadget), m_kind(kind) { }
    // Loads the call's registers; a step of the fault switch (base/fault.h).
    Result<void> load(long number, const std::array<uint64_t, 6>& args, uint64_t rip, std::string_view name);
    Result<long> run(long number, const std::array<uint64_t, 6>& args, std::string_view name);
    Result<long> exit_stop_call(long number, const std::array<uint64_t, 6>& args, std::string_view name);
    // Dump only: the saved registers and signal mask back after each call.
    Result<void> put_back();
    // Resumes the thread with `request` and waits for the stop the call
    // ends in, resuming again past group-stop event stops: a thread seized
    // in a job-control stop reports one more before it runs (tracee.h).
    Result<StopStatus> resume_for_call(int request);

    Tracee* m_tracee;
    uint64_t m_gadget;
    Gadget m_kind;
    Registers m_saved {};
    uint64_t m_saved_mask { 0 };
    bool m_left_event_stop { false };
    int m_calls { 0 };
};

// Reads and writes another process's memory through /proc/PID/mem, which
// (as the tracer) also reaches read-only and PROT_NONE pages.
class RemoteMemory {
public:
    static Result<RemoteMemory> open(pid_t pid);
    Result<void> read(uint64_t address, std::span<std::byte> out) const;
    Result<void> write(uint64_t address, std::span<const std::byte> data) const;
    template <typename T>
    Result<T> read_value(uint64_t address) const
    {
        T value {};
        TRY(read(address, std::as_writable_bytes(std::span(&value, 1))));
        return value;
    }
    template <typename T>
    Result<void> write_value(uint64_t address, const T& value) const
    {
        return write(address, std::as_bytes(std::span(&value, 1)));
    }
    int fd() const { return m_fd.get(); }

private:
    RemoteMemory(pid_t pid, UniqueFd fd) : m_pid(pid), m_fd(std::move(fd)) { }
    pid_t m_pid;
    UniqueFd m_fd;
};

// A small area of the target's memory where cryo puts the arguments of
// injected calls (paths, structures, iovec arrays) and reads their results.
class ScratchArea {
public:
    ScratchArea(const RemoteMemory& memory, uint64_t address, uint64_t size)
        : m_memory(&memory), m_address(address), m_size(size) { }

    // Copies `data` to `offset` in the area and returns its address there.
    Result<uint64_t> put(std::span<const std::byte> data, uint64_t offset = 0) const;
    // As put(), with a terminating NUL.
    Result<uint64_t> put_string(std::string_view text, uint64_t offset = 0) const;
    template <typename T>
    Result<uint64_t> put_value(const T& value, uint64_t offset = 0) const
    {
        return put(std::as_bytes(std::span(&value, 1)), offset);
    }
    template <typename T>
    Result<T> get_value(uint64_t offset = 0) const { return m_memory->read_value<T>(m_address + offset); }
    Result<void> get(std::span<std::byte> out, uint64_t offset) const;
    uint64_t address() const { return m_address; }
    uint64_t size() const { return m_size; }

private:
    const RemoteMemory* m_memory;
    uint64_t m_address;
    uint64_t m_size;
};

// Runs `calls` through injector.batch(), kBatchCalls at a time, their
// table at `table_offset` in `scratch` (the data they point at lies
// elsewhere in it); returns the raw results. Failed warn_only calls are
// logged; the first other failure is the error (the calls after it in its
// batch ran too: a restore that fails is undone whole).
Result<std::vector<long>> run_queued(Injector& injector, const ScratchArea& scratch, std::span<const QueuedCall> calls,
                                     uint64_t table_offset);

// Normalises the registers of a thread stopped inside an interrupted system
// call so that, restored, it makes the call again (or sees EINTR where the
// kernel's restart state cannot be carried over), and sets orig_rax to -1.
void normalise_interrupted_syscall(Registers& registers);

} // namespace cryo::ptrace
