// See seal.h.
#include "image/seal.h"

#include <endian.h>

#include <cstring>
#include <vector>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "base/fd.h"

namespace cryo::image {

namespace {

constexpr std::string_view kFileKeyInfo = "cryo sealed file key v1";
constexpr std::string_view kKeyCheckInfo = "cryo key check v1";

struct CipherContextDeleter {
    void operator()(EVP_CIPHER_CTX* context) const { EVP_CIPHER_CTX_free(context); }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextDeleter>;

// HKDF-SHA256 (RFC 5869) of the user's key.
Result<void> derive(const Key& key, std::span<const std::byte> salt, std::string_view info, std::span<std::byte> out)
{
    EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    if (!kdf)
        return fail("OpenSSL has no HKDF");
    EVP_KDF_CTX* context = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    if (!context)
        return fail("cannot create an HKDF context");
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::byte*>(key.bytes().data()),
                                          key.bytes().size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<std::byte*>(salt.data()), salt.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size()),
        OSSL_PARAM_construct_end(),
    };
    int done = EVP_KDF_derive(context, reinterpret_cast<unsigned char*>(out.data()), out.size(), params);
    EVP_KDF_CTX_free(context);
    if (done <= 0)
        return fail("HKDF key derivation failed");
    return {};
}

Result<std::array<std::byte, 16>> key_check(const Key& key, const CheckpointId& checkpoint_id)
{
    std::array<std::byte, 16> check;
    TRY(derive(key, checkpoint_id, kKeyCheckInfo, check));
    return check;
}

// One file's AES-256-GCM context, keyed with its file key.
Result<CipherContext> file_cipher(const Key& key, const SealHeader& header, bool encrypt)
{
    std::array<std::byte, 32> salt;
    std::memcpy(salt.data(), header.checkpoint_id, 16);
    std::memcpy(salt.data() + 16, header.salt, 16);
    std::array<std::byte, 32> file_key;
    TRY(derive(key, salt, kFileKeyInfo, file_key));
    CipherContext context(EVP_CIPHER_CTX_new());
    auto* raw_key = reinterpret_cast<const unsigned char*>(file_key.data());
    bool ok = context
        && (encrypt ? EVP_EncryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, raw_key, nullptr)
                    : EVP_DecryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, raw_key, nullptr))
            == 1;
    OPENSSL_cleanse(file_key.data(), file_key.size());
    if (!ok)
        return fail("cannot set up AES-256-GCM");
    return context;
}

// The nonce and associated data of chunk `index`.
struct ChunkBinding {
    std::array<unsigned char, 12> nonce {};
    std::vector<unsigned char> aad;
};

ChunkBinding bind_chunk(const SealHeader& header, const std::string& name, uint64_t index, bool final)
{
    ChunkBinding binding;
    uint64_t little = htole64(index);
    std::memcpy(binding.nonce.data(), &little, sizeof(little));
    binding.aad.resize(sizeof(header) + sizeof(little) + 1 + name.size());
    auto* at = binding.aad.data();
    std::memcpy(at, &header, sizeof(header));
    std::memcpy(at + sizeof(header), &little, sizeof(little));
    at[sizeof(header) + sizeof(little)] = final ? 1 : 0;
    std::memcpy(at + sizeof(header) + sizeof(little) + 1, name.data(), name.size());
    return binding;
}

// Encrypts `data` in place and writes its tag; false when OpenSSL fails.
bool encrypt_chunk(EVP_CIPHER_CTX* context, const ChunkBinding& binding, std::span<std::byte> data,
                   std::span<std::byte, kSealTagSize> tag)
{
    int length = 0;
    auto* bytes = reinterpret_cast<unsigned char*>(data.data());
    return EVP_EncryptInit_ex(context, nullptr, nullptr, nullptr, binding.nonce.data()) == 1
        && EVP_EncryptUpdate(context, nullptr, &length, binding.aad.data(), static_cast<int>(binding.aad.size())) == 1
        && EVP_EncryptUpdate(context, bytes, &length, bytes, static_cast<int>(data.size())) == 1
        && EVP_EncryptFinal_ex(context, bytes + length, &length) == 1
        && EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, kSealTagSize, tag.data()) == 1;
}

// Decrypts `data` in place; false when the tag does not match.
bool decrypt_chunk(EVP_CIPHER_CTX* context, const ChunkBinding& binding, std::span<std::byte> data,
                   std::span<std::byte, kSealTagSize> tag)
{
    int length = 0;
    auto* bytes = reinterpret_cast<unsigned char*>(data.data());
    return EVP_DecryptInit_ex(context, nullptr, nullptr, nullptr, binding.nonce.data()) == 1
        && EVP_DecryptUpdate(context, nullptr, &length, binding.aad.data(), static_cast<int>(binding.aad.size())) == 1
        && EVP_DecryptUpdate(context, bytes, &length, bytes, static_cast<int>(data.size())) == 1
        && EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, kSealTagSize, tag.data()) == 1
        && EVP_DecryptFinal_ex(context, bytes + length, &length) == 1;
}

std::string hex(std::span<const std::byte> bytes)
{
    std::string text;
    for (std::byte byte : bytes)
        text += fmt::format("{:02x}", static_cast<unsigned>(byte));
    return text;
}

} // namespace

bool looks_sealed(std::span<const std::byte> prefix)
{
    return prefix.size() >= sizeof(kSealMagic) && std::memcmp(prefix.data(), kSealMagic, sizeof(kSealMagic)) == 0;
}

CheckpointId header_checkpoint_id(const SealHeader& header)
{
    CheckpointId id;
    std::memcpy(id.data(), header.checkpoint_id, id.size());
    return id;
}

struct SealWriter::State {
    SealHeader header;
    std::string name;
    ByteSink out;
    CipherContext cipher;
    std::vector<std::byte> pending;   // plaintext of the chunk being filled, then its tag
    size_t filled { 0 };
    uint64_t index { 0 };
    bool finished { false };
};

SealWriter::SealWriter(std::unique_ptr<State> state, SealSalt salt)
    : m_state(std::move(state))
    , m_salt(salt)
{
}

SealWriter::~SealWriter()
{
    if (m_state)
        OPENSSL_cleanse(m_state->pending.data(), m_state->pending.size());
}

Result<std::unique_ptr<SealWriter>> SealWriter::create(const Key& key, const CheckpointId& checkpoint_id,
                                                      std::string name, ByteSink out)
{
    auto state = std::make_unique<State>();
    auto& header = state->header;
    std::memset(&header, 0, sizeof(header));
    std::memcpy(header.magic, kSealMagic, sizeof(kSealMagic));
    header.version = htole32(kSealVersion);
    header.chunk_size = htole32(kSealChunkSize);
    std::memcpy(header.checkpoint_id, checkpoint_id.data(), checkpoint_id.size());
    SealSalt salt;
    TRY(random_bytes(salt));
    std::memcpy(header.salt, salt.data(), salt.size());
    auto check = TRY(key_check(key, checkpoint_id));
    std::memcpy(header.key_check, check.data(), check.size());
    state->cipher = TRY(file_cipher(key, header, true));
    state->name = std::move(name);
    state->out = std::move(out);
    state->pending.resize(kSealChunkSize + kSealTagSize);
    TRY(state->out(std::as_bytes(std::span(&header, 1))));
    return std::unique_ptr<SealWriter>(new SealWriter(std::move(state), salt));
}

Result<void> SealWriter::seal_pending(bool final)
{
    auto& state = *m_state;
    auto binding = bind_chunk(state.header, state.name, state.index, final);
    std::span<std::byte> data(state.pending.data(), state.filled);
    std::span<std::byte, kSealTagSize> tag(state.pending.data() + state.filled, kSealTagSize);
    if (!encrypt_chunk(state.cipher.get(), binding, data, tag))
        return fail("{}: AES-256-GCM encryption of chunk {} failed", state.name, state.index);
    TRY(state.out(std::span<const std::byte>(state.pending.data(), state.filled + kSealTagSize)));
    state.filled = 0;
    ++state.index;
    return {};
}

Result<void> SealWriter::write(std::span<const std::byte> data)
{
    auto& state = *m_state;
    while (!data.empty()) {
        // A full chunk waits until more data comes: only finish() knows
        // which chunk is the final one.
        if (state.filled == kSealChunkSize)
            TRY(seal_pending(false));
        size_t take = std::min(data.size(), kSealChunkSize - state.filled);
        std::memcpy(state.pending.data() + state.filled, data.data(), take);
        state.filled += take;
        data = data.subspan(take);
    }
    return {};
}

Result<void> SealWriter::finish()
{
    if (std::exchange(m_state->finished, true))
        return fail("{}: sealed twice", m_state->name);
    return seal_pending(true);
}

Result<SealHeader> read_seal_header(int fd, uint64_t size)
{
    SealHeader header;
    if (size < sizeof(header) + kSealTagSize)
        return fail("truncated: {} bytes, too short for a sealed file", size);
    TRY(pread_exact(fd, std::as_writable_bytes(std::span(&header, 1)), 0, "sealed header"));
    if (std::memcmp(header.magic, kSealMagic, sizeof(kSealMagic)) != 0)
        return fail("not a sealed (encrypted) file");
    if (le32toh(header.version) != kSealVersion)
        return fail("sealed format version {} is not supported (this cryo reads version {})", le32toh(header.version),
                    kSealVersion);
    uint32_t chunk_size = le32toh(header.chunk_size);
    if (chunk_size < kSealMinChunkSize || chunk_size > kSealMaxChunkSize)
        return fail("sealed chunk size {} is out of range", chunk_size);
    return header;
}

Result<void> unseal(int fd, uint64_t size, const std::string& name, const Key& key, const SealExpectation& expect,
                    const ByteSink& out)
{
    SealHeader header = TRY(read_seal_header(fd, size));
    CheckpointId id = header_checkpoint_id(header);
    if (expect.checkpoint_id && id != *expect.checkpoint_id)
        return fail("belongs to another checkpoint (checkpoint id {}, this one is {}): swapped in?", hex(id),
                    hex(*expect.checkpoint_id));
    auto check = TRY(key_check(key, id));
    if (std::memcmp(check.data(), header.key_check, check.size()) != 0)
        return fail("encrypted with another key (wrong key?)");
    if (!expect.salt.empty()
        && (expect.salt.size() != sizeof(header.salt) || std::memcmp(expect.salt.data(), header.salt, sizeof(header.salt)) != 0))
        return fail("is not the version of the file the manifest lists (salt {}, expected {}): replaced?",
                    hex(std::span(header.salt)), hex(expect.salt));

    auto cipher = TRY(file_cipher(key, header, false));
    uint64_t chunk_size = le32toh(header.chunk_size);
    uint64_t stride = chunk_size + kSealTagSize;
    uint64_t body = size - sizeof(header);
    uint64_t chunks = (body + stride - 1) / stride;
    uint64_t last = body - (chunks - 1) * stride;
    if (last < kSealTagSize)
        return fail("truncated: the last chunk ({} bytes) is shorter than its tag", last);
    std::vector<std::byte> buffer(static_cast<size_t>(std::min(stride, body)));
    for (uint64_t index = 0; index < chunks; ++index) {
        bool final = index + 1 == chunks;
        size_t length = static_cast<size_t>(final ? last : stride);
        TRY(pread_exact(fd, std::span(buffer.data(), length), sizeof(header) + index * stride, name));
        auto binding = bind_chunk(header, name, index, final);
        std::span<std::byte> data(buffer.data(), length - kSealTagSize);
        std::span<std::byte, kSealTagSize> tag(buffer.data() + data.size(), kSealTagSize);
        if (!decrypt_chunk(cipher.get(), binding, data, tag)) {
            OPENSSL_cleanse(buffer.data(), buffer.size());
            return fail("chunk {} of {} fails authentication (tampered, truncated, reordered or from another file)",
                        index, chunks);
        }
        TRY(out(data));
    }
    OPENSSL_cleanse(buffer.data(), buffer.size());
    return {};
}

Result<SealedBytes> seal_bytes(const Key& key, const CheckpointId& checkpoint_id, const std::string& name,
                               std::string_view plain)
{
    SealedBytes sealed;
    auto writer = TRY(SealWriter::create(key, checkpoint_id, name, [&](std::span<const std::byte> bytes) -> Result<void> {
        sealed.bytes.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        return {};
    }));
    TRY(writer->write(std::as_bytes(std::span(plain.data(), plain.size()))));
    TRY(writer->finish());
    sealed.salt = writer->salt();
    return sealed;
}

} // namespace cryo::image
