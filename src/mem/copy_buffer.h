// A page-aligned buffer from mmap, for copies into the page file: whole,
// aligned pages are what O_DIRECT writes need.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "base/error.h"

namespace cryo::mem {

class CopyBuffer {
public:
    // Aligned to 2 MiB where it is that large, so that prefer_huge_pages()
    // can take effect.
    static Result<CopyBuffer> create(size_t size)
    {
        size_t alignment = size >= kHugePage ? kHugePage : 0;
        void* memory = ::mmap(nullptr, size + alignment, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED)
            return fail_errno("mmap page copy buffer");
        auto* start = static_cast<std::byte*>(memory);
        if (alignment) {   // give back what lies outside the aligned part
            uintptr_t address = (reinterpret_cast<uintptr_t>(start) + alignment - 1) & ~(alignment - 1);
            auto* aligned = reinterpret_cast<std::byte*>(address);
            if (aligned > start)
                ::munmap(start, static_cast<size_t>(aligned - start));
            if (size_t tail = alignment - static_cast<size_t>(aligned - start))
                ::munmap(aligned + size, tail);
            start = aligned;
        }
        return CopyBuffer(start, size);
    }
    CopyBuffer(CopyBuffer&& other) noexcept : m_data(std::exchange(other.m_data, nullptr)), m_size(other.m_size) { }
    ~CopyBuffer()
    {
        if (m_data)
            ::munmap(m_data, m_size);
    }
    std::byte* data() const { return m_data; }
    size_t size() const { return m_size; }

    // Backs the pages not touched yet with transparent huge pages where the
    // system allows it (a hint: failure changes nothing). Each first touch
    // of a page is a fault that, in a VM, the host may have to back too: a
    // 2 MiB page is one such fault where 4 KiB pages are 512. Worth it only
    // for a buffer that will be filled.
    void prefer_huge_pages() const { (void)::madvise(m_data, m_size, MADV_HUGEPAGE); }

private:
    static constexpr size_t kHugePage = 2ull << 20;
    CopyBuffer(std::byte* data, size_t size) : m_data(data), m_size(size) { }
    std::byte* m_data;
    size_t m_size;
};

} // namespace cryo::mem
