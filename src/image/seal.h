// Sealed files: authenticated encryption of one checkpoint file, streamed
// in chunks (AES-256-GCM, OpenSSL's libcrypto).
//
// A sealed file is a 64-byte header followed by chunks. Each chunk holds
// `chunk_size` bytes of plaintext (the last one fewer, possibly none)
// encrypted, then its 16-byte GCM tag:
//
//   header   "CRYOSEAL", version 1, chunk_size (u32, little endian),
//            checkpoint id (16), salt (16), key check (16)
//   chunk 0  ciphertext (chunk_size) | tag (16)
//   ...
//   chunk n  ciphertext (0..chunk_size) | tag (16)     the final chunk
//
// Keys: the file key is HKDF-SHA256 of the user's key with the checkpoint id
// and the file's random salt as salt, so every file of every checkpoint has
// a key of its own even when a file is written again under the same name
// (cryo encode): a nonce is never reused under one key. The nonce of chunk i
// is i (64 bits, little endian) followed by four zero bytes. The key check
// is 16 bytes derived from the user's key and the checkpoint id alone; it
// tells "wrong key" apart from "tampered".
//
// The associated data of chunk i is the header, i, a byte that is 1 only
// for the final chunk, and the file's name. So a chunk moved within its
// file (reordered), the file cut at a chunk boundary (truncated: its new
// last chunk was not sealed as final), a chunk or file taken from another
// file or from another checkpoint made with the same key (swapped), and any
// changed byte all fail authentication. Plaintext is only handed on once
// its chunk is authenticated; memory stays constant (one chunk).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "base/error.h"
#include "image/key.h"

namespace cryo::image {

inline constexpr char kSealMagic[8] = { 'C', 'R', 'Y', 'O', 'S', 'E', 'A', 'L' };
inline constexpr uint32_t kSealVersion = 1;
inline constexpr uint32_t kSealChunkSize = 1u << 20;
// What a reader accepts from a header: memory stays bounded.
inline constexpr uint32_t kSealMinChunkSize = 4096;
inline constexpr uint32_t kSealMaxChunkSize = 16u << 20;
inline constexpr size_t kSealTagSize = 16;
inline constexpr std::string_view kSealCipher = "aes-256-gcm";

using CheckpointId = std::array<std::byte, 16>;
using SealSalt = std::array<std::byte, 16>;

struct SealHeader {
    char magic[8];
    uint32_t version;      // little endian, as every field
    uint32_t chunk_size;
    std::byte checkpoint_id[16];
    std::byte salt[16];
    std::byte key_check[16];
};
static_assert(sizeof(SealHeader) == 64);

// Where plaintext or sealed bytes go, piece by piece.
using ByteSink = std::function<Result<void>(std::span<const std::byte>)>;

// True when `prefix` (the first bytes of a file) starts like a sealed file.
bool looks_sealed(std::span<const std::byte> prefix);

// Encrypts one file as a stream: write() as often as needed, then finish().
class SealWriter {
public:
    static Result<std::unique_ptr<SealWriter>> create(const Key& key, const CheckpointId& checkpoint_id,
                                                     std::string name, ByteSink out);
    ~SealWriter();
    Result<void> write(std::span<const std::byte> data);
    Result<void> finish();
    const SealSalt& salt() const { return m_salt; }

private:
    struct State;
    explicit SealWriter(std::unique_ptr<State> state, SealSalt salt);
    Result<void> seal_pending(bool final);

    std::unique_ptr<State> m_state;
    SealSalt m_salt;
};

// What the reader of a sealed file expects of its header (from the
// manifest); unset fields are not checked.
struct SealExpectation {
    const CheckpointId* checkpoint_id { nullptr };
    std::span<const std::byte> salt;
};

// Reads the header of a sealed file of `size` bytes at `fd`.
Result<SealHeader> read_seal_header(int fd, uint64_t size);

// Authenticates and decrypts the sealed file of `size` bytes at `fd`, whose
// name in the checkpoint is `name`, handing each authenticated chunk of
// plaintext to `out`. Errors say what is wrong (wrong key, another
// checkpoint's file, truncated, which chunk failed); the caller adds the path.
Result<void> unseal(int fd, uint64_t size, const std::string& name, const Key& key, const SealExpectation& expect,
                    const ByteSink& out);

// The checkpoint id a sealed header holds.
CheckpointId header_checkpoint_id(const SealHeader& header);

// Seals a whole file held in memory; returns the sealed bytes.
struct SealedBytes {
    std::string bytes;
    SealSalt salt;
};
Result<SealedBytes> seal_bytes(const Key& key, const CheckpointId& checkpoint_id, const std::string& name,
                               std::string_view plain);

} // namespace cryo::image
