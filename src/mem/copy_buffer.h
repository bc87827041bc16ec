// A page-aligned buffer from mmap, for copies into the page file: whole,
// aligned pages are what O_DIRECT writes need.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <utility>

#include "base/error.h"

namespace cryo::mem {

class CopyBuffer {
public:
    static Result<CopyBuffer> create(size_t size)
    {
        void* memory = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED)
            return fail_errno("mmap page copy buffer");
        return CopyBuffer(static_cast<std::byte*>(memory), size);
    }
    CopyBuffer(CopyBuffer&& other) noexcept : m_data(std::exchange(other.m_data, nullptr)), m_size(other.m_size) { }
    ~CopyBuffer()
    {
        if (m_data)
            ::munmap(m_data, m_size);
    }
    std::byte* data() const { return m_data; }
    size_t size() const { return m_size; }

private:
    CopyBuffer(std::byte* data, size_t size) : m_data(data), m_size(size) { }
    std::byte* m_data;
    size_t m_size;
};

} // namespace cryo::mem
