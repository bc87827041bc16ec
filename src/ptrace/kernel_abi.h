// Kernel structures of the x86-64 system call ABI that glibc does not expose
// in the kernel's own layout, shared by the dump and restore sides.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cryo::ptrace {

// struct sigaction as rt_sigaction(2) takes it (not glibc's layout).
struct KernelSigaction {
    uint64_t handler;
    uint64_t flags;
    uint64_t restorer;
    uint64_t mask;
};

// Signals 1..64; rt_sigaction wants the mask size, 8 bytes.
inline constexpr int kSignalCount = 64;
inline constexpr size_t kSiginfoSize = 128;

} // namespace cryo::ptrace
