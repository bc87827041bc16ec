// memfd_secret(2) memory; see secret_memory.h.
#include "mem/secret_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "base/scope_guard.h"
#include "base/syscalls.h"
#include "proc/maps.h"
#include "ptrace/injector.h"

namespace cryo::mem {

namespace {

// Most bytes one pwrite() moves (the kernel's MAX_RW_COUNT, rounded down).
constexpr uint64_t kMaxWrite = 1ull << 30;

struct VdsoAddresses {
    uint64_t syscall_instruction { 0 };
    uint64_t nul_byte { 0 };
};

// A `syscall` instruction to borrow and a NUL byte to name the memfd with,
// both in the target's vDSO. (dump/collect_core.cpp finds its gadget the
// same way.)
Result<VdsoAddresses> find_in_vdso(pid_t pid, const ptrace::RemoteMemory& memory)
{
    for (const auto& map : TRY(proc::read_maps(pid))) {
        if (map.path != "[vdso]")
            continue;
        std::vector<std::byte> code(map.end - map.start);
        TRY(memory.read(map.start, code));
        VdsoAddresses found;
        for (size_t i = 0; i < code.size(); ++i) {
            if (!found.nul_byte && code[i] == std::byte { 0 })
                found.nul_byte = map.start + i;
            if (!found.syscall_instruction && i + 1 < code.size() && code[i] == std::byte { 0x0f }
                && code[i + 1] == std::byte { 0x05 })
                found.syscall_instruction = map.start + i;
        }
        if (!found.syscall_instruction || !found.nul_byte)
            return fail("pid {}: its vDSO has no syscall instruction or no NUL byte", pid);
        return found;
    }
    return fail("not supported yet: pid {} has no vDSO to run injected system calls from", pid);
}

} // namespace

Result<UniqueFd> copy_out_secret_memory(ptrace::Tracee& leader, const std::vector<SecretPiece>& pieces)
{
    pid_t pid = leader.tid();
    auto memory = TRY(ptrace::RemoteMemory::open(pid));
    auto vdso = TRY(find_in_vdso(pid, memory));
    auto pidfd = TRY(pidfd_open(pid));
    auto injector = TRY(ptrace::Injector::create(leader, vdso.syscall_instruction, ptrace::Gadget::SyscallOnly));
    // Whatever happens below, the thread gets its registers and mask back.
    ScopeGuard put_back([&] { (void)injector.restore_thread(); });

    uint64_t target_fd = TRY(injector.call("memfd_create", SYS_memfd_create, vdso.nul_byte, MFD_CLOEXEC));
    ScopeGuard close_target_fd([&] { (void)injector.raw(SYS_close, { target_fd, 0, 0, 0, 0, 0 }); });
    uint64_t offset = 0;
    for (const auto& piece : pieces) {
        for (uint64_t done = 0; done < piece.length;) {
            uint64_t length = std::min(piece.length - done, kMaxWrite);
            uint64_t written = TRY_CTX(injector.call("pwrite64", SYS_pwrite64, target_fd, piece.address + done, length,
                                                     offset + done),
                                       "copying secret memory at {:#x}", piece.address + done);
            if (written == 0)
                return fail("copying secret memory at {:#x}: pwrite64 wrote nothing", piece.address + done);
            done += written;
        }
        offset += piece.length;
    }
    auto copy = TRY(pidfd_getfd(pidfd.get(), static_cast<int>(target_fd)));
    close_target_fd.dismiss();
    TRY(injector.call("close", SYS_close, target_fd));
    put_back.dismiss();
    TRY(injector.restore_thread());
    return copy;
}

Result<void> read_secret_file(int fd, uint64_t size, const SecretRunVisitor& visit)
{
    uint64_t end = (size + kPageSize - 1) & ~(kPageSize - 1);
    uint64_t window = 8ull << 20;
    std::vector<unsigned char> present;
    for (uint64_t offset = 0; offset < end;) {
        uint64_t length = std::min(window, end - offset);
        void* mapping = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(offset));
        if (mapping == MAP_FAILED) {
            // Over RLIMIT_MEMLOCK: smaller windows, down to one page.
            if (errno == EAGAIN && window > kPageSize) {
                window /= 2;
                continue;
            }
            return fail_errno(fmt::format("mmap {} bytes of the memfd_secret file at offset {} in cryo", length, offset));
        }
        ScopeGuard unmap([&] { ::munmap(mapping, length); });
        present.assign(length / kPageSize, 0);
        if (::mincore(mapping, length, present.data()) < 0)
            return fail_errno("mincore on cryo's mapping of the memfd_secret file");
        const auto* bytes = static_cast<const std::byte*>(mapping);
        for (uint64_t page = 0; page < present.size();) {
            if (!(present[page] & 1)) {
                ++page;
                continue;
            }
            uint64_t first = page;
            while (page < present.size() && (present[page] & 1))
                ++page;
            uint64_t run_start = offset + first * kPageSize;
            uint64_t run_end = std::min(offset + page * kPageSize, size);
            TRY(visit(run_start, std::span(bytes + first * kPageSize, run_end - run_start)));
        }
        offset += length;
    }
    return {};
}

Result<UniqueFd> create_secret_file(uint64_t size, const std::function<Result<void>(std::byte* mapping)>& fill)
{
    long fd = ::syscall(__NR_memfd_secret, O_CLOEXEC);
    if (fd < 0)
        return fail_errno(errno == ENOSYS ? "memfd_secret (needs CONFIG_SECRETMEM and secretmem.enable)"
                                          : "memfd_secret");
    UniqueFd secret(static_cast<int>(fd));
    if (::ftruncate(secret.get(), static_cast<off_t>(size)) < 0)
        return fail_errno(fmt::format("ftruncate memfd_secret to {}", size));
    if (size == 0)
        return secret;
    void* mapping = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, secret.get(), 0);
    if (mapping == MAP_FAILED)
        return fail_errno(fmt::format("mmap memfd_secret of {} bytes", size));
    ScopeGuard unmap([&] { ::munmap(mapping, size); });
    TRY(fill(static_cast<std::byte*>(mapping)));
    return secret;
}

} // namespace cryo::mem
