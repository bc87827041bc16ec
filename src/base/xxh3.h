// XXH3-64, the checksum of every image file and page chunk, with the widest
// vector unit the CPU has.
//
// Debian's libxxhash is built for the x86-64 baseline (SSE2): 19 GB/s on
// this machine, where AVX2 reaches 67 and AVX-512 86 on the same 8 MiB. A
// dump hashes each stored page twice (the file's checksum and its chunk's),
// on the thread that copies the pages, so this bounds a large dump. The
// header's XXH_INLINE_ALL mode is compiled once per instruction set
// (xxh3_variant.inc) and the CPU picks one at the first use. All of them
// give the same values: they are the same function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace cryo::xxh3 {

uint64_t hash(const void* data, size_t size);
inline uint64_t hash(std::span<const std::byte> data) { return hash(data.data(), data.size()); }

// The instruction set in use: "avx512", "avx2" or "sse2".
const char* instruction_set();

// A running checksum of bytes given in pieces.
class Stream {
public:
    explicit Stream(uint64_t seed = 0);
    Stream(Stream&& other) noexcept;
    Stream& operator=(Stream&& other) noexcept;
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    ~Stream();

    void reset(uint64_t seed = 0);
    void update(const void* data, size_t size);
    void update(std::span<const std::byte> data) { update(data.data(), data.size()); }
    uint64_t digest() const;

private:
    void* m_state;
};

// One compilation of the hash (xxh3_variant.inc), for the dispatcher.
struct Variant {
    const char* name;
    uint64_t (*hash)(const void*, size_t);
    void* (*create)();
    void (*destroy)(void*);
    void (*reset)(void*, uint64_t seed);
    void (*update)(void*, const void*, size_t);
    uint64_t (*digest)(const void*);
};

// Every compiled variant this CPU can run, the one in use first (tests
// compare them).
std::vector<const Variant*> usable_variants();

} // namespace cryo::xxh3
