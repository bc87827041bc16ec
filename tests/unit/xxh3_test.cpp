// cryo's XXH3 (one compilation per instruction set, base/xxh3.h) against
// Debian's libxxhash: image checksums must not depend on the CPU that wrote
// or reads them.
#include <xxhash.h>

#include <algorithm>
#include <cstddef>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/xxh3.h"

namespace cryo::xxh3 {
namespace {

std::vector<std::byte> random_bytes(size_t size)
{
    std::mt19937_64 random(size);
    std::vector<std::byte> bytes(size);
    for (auto& byte : bytes)
        byte = static_cast<std::byte>(random());
    return bytes;
}

// Sizes around each of XXH3's internal boundaries (16, 128, 240 bytes, one
// stripe block of 1 KiB, the 256-byte stream buffer) and some MiB.
const std::vector<size_t> kSizes { 0, 1, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 255, 256, 257, 1023, 1024,
                                   1025, 4096, 65536 + 7, (1 << 20), (3 << 20) + 12345 };

TEST(Xxh3, EveryVariantTheCpuRunsAgreesWithLibxxhash)
{
    auto variants = usable_variants();
    ASSERT_FALSE(variants.empty());
    EXPECT_STREQ(variants.front()->name, instruction_set());
    for (size_t size : kSizes) {
        auto bytes = random_bytes(size);
        uint64_t expected = XXH3_64bits(bytes.data(), bytes.size());
        EXPECT_EQ(hash(bytes), expected) << "size " << size;
        for (const Variant* variant : variants)
            EXPECT_EQ(variant->hash(bytes.data(), bytes.size()), expected) << variant->name << ", size " << size;
    }
}

// The flags the kernel lists for the first CPU (it leaves out what it does
// not save the registers of).
bool kernel_lists_flag(const std::string& flag)
{
    std::ifstream cpuinfo("/proc/cpuinfo");
    for (std::string line; std::getline(cpuinfo, line);)
        if (line.starts_with("flags"))
            return (line + " ").find(" " + flag + " ") != std::string::npos;
    return false;
}

TEST(Xxh3, WidestVariantTheKernelReportsIsChosen)
{
    const char* expected = kernel_lists_flag("avx512f") ? "avx512" : kernel_lists_flag("avx2") ? "avx2" : "sse2";
    EXPECT_STREQ(instruction_set(), expected);
}

TEST(Xxh3, StreamInUnevenPiecesEqualsOneShot)
{
    auto bytes = random_bytes((2 << 20) + 333);
    for (size_t piece : { size_t { 1 }, size_t { 63 }, size_t { 256 }, size_t { 4097 }, size_t { 1 << 20 } }) {
        Stream stream;
        for (size_t at = 0; at < bytes.size(); at += piece)
            stream.update(std::span(bytes).subspan(at, std::min(piece, bytes.size() - at)));
        EXPECT_EQ(stream.digest(), XXH3_64bits(bytes.data(), bytes.size())) << "pieces of " << piece;
    }
}

TEST(Xxh3, SeededStreamAndResetMatchLibxxhash)
{
    auto bytes = random_bytes(5000);
    Stream stream(42);
    stream.update(bytes);
    EXPECT_EQ(stream.digest(), XXH3_64bits_withSeed(bytes.data(), bytes.size(), 42));
    stream.reset();
    stream.update(bytes);
    EXPECT_EQ(stream.digest(), XXH3_64bits(bytes.data(), bytes.size()));
    Stream moved = std::move(stream);
    EXPECT_EQ(moved.digest(), XXH3_64bits(bytes.data(), bytes.size()));
}

} // namespace
} // namespace cryo::xxh3
