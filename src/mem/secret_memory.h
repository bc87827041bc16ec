// memfd_secret(2) memory: pages the kernel removes from its own direct map,
// so that nothing but the processes mapping them can read them.
//
// /proc/PID/mem and process_vm_readv() fail on them (EIO/EFAULT) and
// /proc/PID/map_files/ can stat such a file but not open it (ENXIO). The
// process itself reads them like any memory, so cryo has it copy them out:
// through a `syscall` instruction of its vDSO (the same gadget the dump's
// other injected calls use) it runs memfd_create() (the name is a NUL byte
// found in the vDSO, so no scratch memory has to be mapped and the memory
// map stays exactly the program's), one pwrite() per piece of secret memory
// into that memfd, and close(). In between cryo takes the memfd with
// pidfd_getfd(). The thread gets its registers and signal mask back
// whatever happens.
//
// A descriptor of the file is a better way in: any process that has the
// file open may map it (the kernel checks nothing else), and cryo has a
// copy of the target's descriptor from pidfd_getfd(). So a memfd_secret
// file that a descriptor of the tree holds is read by cryo itself, through a
// mapping of its own, whether or not the tree maps it (read_secret_file()):
// mincore() on that mapping tells which pages the file has (they are in its
// page cache whether or not some mapping has them present), so only those
// are touched, and no page is added to the file.
//
// On restore cryo makes the file again with memfd_secret() in itself and
// fills it through a mapping of its own (secret pages are readable by the
// processes that map them, and cryo is one of them for a moment).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "ptrace/tracee.h"

namespace cryo::mem {

// A range of secret memory in the target, page-aligned.
struct SecretPiece {
    uint64_t address { 0 };
    uint64_t length { 0 };
};

// Has the process of the stopped `leader` copy `pieces` of its memory into
// a new memfd, back to back (piece i at the sum of the lengths before it),
// and returns cryo's own descriptor of that memfd; the process's copy is
// closed again.
Result<UniqueFd> copy_out_secret_memory(ptrace::Tracee& leader, const std::vector<SecretPiece>& pieces);

// Visits the pages the memfd_secret file `fd` (of `size` bytes) has, as
// runs of whole pages in ascending order (the last may end at `size`),
// through mappings of it in cryo of at most a few MiB each (a mapping of
// secret memory counts against RLIMIT_MEMLOCK). Pages the file never had
// (holes) are left out and not created.
using SecretRunVisitor = std::function<Result<void>(uint64_t offset, std::span<const std::byte> bytes)>;
Result<void> read_secret_file(int fd, uint64_t size, const SecretRunVisitor& visit);

// A new memfd_secret file of `size` bytes; `fill` writes its content
// through a mapping of the whole file in cryo.
Result<UniqueFd> create_secret_file(uint64_t size, const std::function<Result<void>(std::byte* mapping)>& fill);

} // namespace cryo::mem
