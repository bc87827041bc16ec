// Reading a frozen process's memory without changing it.
//
// Pages are read with process_vm_readv() (one copy, the pages looked up in
// batches) where the pagemap says they are present and mapped by this
// process alone; through /proc/PID/mem (a copy into a kernel page, then one
// to cryo, a lookup per page) otherwise. process_vm_readv() pins the pages
// (FOLL_PIN), and pinning a page shared copy-on-write with another process
// makes the kernel unshare it: dumping a tree (or with --leave-running)
// would silently double its memory, and the frames compared by mem/cow.h
// would change. A page mapped once is not copied by that (the kernel only
// marks it exclusive again). /proc/PID/mem also reaches swapped-out pages,
// which process_vm_readv() would have to fault in anyway.
//
// Used by the dump (mem/dump_pages.h) and by migrate --lazy, which serves
// the pages of the frozen tree (migrate/live_pages.h).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace cryo::mem {

class MemoryReader {
public:
    // `pid` as cryo's /proc sees it.
    static Result<MemoryReader> open(pid_t pid);

    // Copies the memory at [address, address + out.size()) into `out`.
    Result<void> copy(uint64_t address, std::span<std::byte> out);

    int pagemap_fd() const { return m_pagemap.get(); }
    pid_t pid() const { return m_pid; }

private:
    MemoryReader(pid_t pid, UniqueFd memory, UniqueFd pagemap)
        : m_pid(pid), m_memory(std::move(memory)), m_pagemap(std::move(pagemap))
    {
    }

    pid_t m_pid;
    UniqueFd m_memory;    // /proc/PID/mem
    UniqueFd m_pagemap;   // /proc/PID/pagemap
    std::vector<uint64_t> m_entries;   // pagemap entries, reused
};

} // namespace cryo::mem
