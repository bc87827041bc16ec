// The user's key for encrypted checkpoints (dump --encrypt, --key on the
// commands that read one).
//
// A key file holds exactly 32 bytes: raw (`head -c 32 /dev/urandom > key`),
// or as 64 hexadecimal digits with an optional final newline (`openssl rand
// -hex 32 > key`). Anything else is refused, so a truncated or mistyped key
// file never silently becomes a weaker key. The key never goes into a
// checkpoint: every file key is derived from it (src/image/seal.h), and the
// bytes are wiped when the Key is dropped.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string>

#include "base/error.h"

namespace cryo::image {

inline constexpr size_t kKeySize = 32;

class Key {
public:
    static Result<Key> load(const std::string& path);
    static Key from_bytes(std::span<const std::byte, kKeySize> bytes);
    Key(const Key& other) : m_bytes(other.m_bytes) { }
    Key& operator=(const Key& other);
    ~Key();

    std::span<const std::byte, kKeySize> bytes() const { return m_bytes; }

private:
    Key() = default;
    std::array<std::byte, kKeySize> m_bytes {};
};

// Fills `out` from the kernel's random generator (getrandom).
Result<void> random_bytes(std::span<std::byte> out);

} // namespace cryo::image
