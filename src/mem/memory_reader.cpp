// Reading a frozen process's memory; see memory_reader.h.
#include "mem/memory_reader.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

namespace cryo::mem {

namespace {

constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kPagemapPresent = 1ull << 63;
constexpr uint64_t kPagemapExclusive = 1ull << 56;

bool present_and_mapped_once(uint64_t entry)
{
    return (entry & (kPagemapPresent | kPagemapExclusive)) == (kPagemapPresent | kPagemapExclusive);
}

bool read_whole(pid_t pid, uint64_t address, std::span<std::byte> out)
{
    iovec local { out.data(), out.size() };
    iovec remote { reinterpret_cast<void*>(address), out.size() };
    return ::process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(out.size());
}

} // namespace

Result<MemoryReader> MemoryReader::open(pid_t pid)
{
    auto pagemap = TRY(open_file(fmt::format("/proc/{}/pagemap", pid), O_RDONLY | O_CLOEXEC));
    auto memory = TRY(open_file(fmt::format("/proc/{}/mem", pid), O_RDONLY | O_CLOEXEC));
    return MemoryReader(pid, std::move(memory), std::move(pagemap));
}

Result<void> MemoryReader::copy(uint64_t address, std::span<std::byte> out)
{
    uint64_t first_page = address / kPageSize;
    uint64_t end = address + out.size();
    m_entries.assign((end + kPageSize - 1) / kPageSize - first_page, 0);
    auto entries = std::as_writable_bytes(std::span(m_entries));
    if (::pread(m_pagemap.get(), entries.data(), entries.size(), static_cast<off_t>(first_page * 8))
        != static_cast<ssize_t>(entries.size()))
        std::ranges::fill(m_entries, 0);   // /proc/PID/mem for all
    // Pieces of pages alike: present and mapped once, or not.
    for (uint64_t at = address; at < end;) {
        uint64_t page = at / kPageSize;
        bool once = present_and_mapped_once(m_entries[page - first_page]);
        uint64_t stop = std::min(end, (page + 1) * kPageSize);
        while (stop < end && present_and_mapped_once(m_entries[stop / kPageSize - first_page]) == once)
            stop = std::min(end, stop + kPageSize);
        auto piece = out.subspan(at - address, stop - at);
        if (!once || !read_whole(m_pid, at, piece))
            TRY(pread_exact(m_memory.get(), piece, at, fmt::format("memory of pid {}", m_pid)));
        at = stop;
    }
    return {};
}

} // namespace cryo::mem
