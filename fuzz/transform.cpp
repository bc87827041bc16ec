// libFuzzer target: the decoders of compressed and encrypted checkpoint
// files (image/transform.h, seal.h, compress.h), which read files before
// anything about them is trusted.
//
// The first byte of the input chooses what is done with the rest:
//   0  unsealed as a sealed file (fixed key, name and checkpoint id);
//   1  decompressed as a zstd page file whose manifest says 1 MiB;
//   2  decoded as a compressed and sealed page file (decode_to_memfd);
//   3  taken as plaintext: compressed and sealed, then one byte of the result
//      (chosen by the input) changed, or the file cut short.
// Invariants: no crash, no read or allocation beyond the bounds; decoded
// output never exceeds what the manifest says; in mode 3 the intact file
// decodes to the input and the changed one is always refused.
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "image/seal.h"
#include "image/transform.h"

namespace {

using namespace cryo;

const image::Key& fuzz_key()
{
    static const image::Key key = [] {
        std::array<std::byte, image::kKeySize> bytes;
        for (size_t i = 0; i < bytes.size(); ++i)
            bytes[i] = static_cast<std::byte>(i * 29 + 1);
        return image::Key::from_bytes(bytes);
    }();
    return key;
}

const image::CheckpointId kId = [] {
    image::CheckpointId id;
    id.fill(std::byte { 0x5a });
    return id;
}();

UniqueFd memfd_with(std::string_view bytes)
{
    UniqueFd fd(::memfd_create("fuzz", MFD_CLOEXEC));
    if (!fd || !write_all(fd.get(), bytes, "memfd"))
        std::abort();
    return fd;
}

Result<uint64_t> decode(std::string_view stored, const image::ManifestFile* record)
{
    UniqueFd fd = memfd_with(stored);
    image::ReadKeys keys { &fuzz_key(), &kId };
    uint64_t size = 0;
    auto memfd = TRY(image::decode_to_memfd(fd.get(), stored.size(), "pages-1.img", record, keys, size));
    if (record && size != image::content_size(*record))
        std::abort();   // decode_to_memfd promises exactly the manifest's size
    return size;
}

image::ManifestFile page_record(uint64_t stored, uint64_t content, bool sealed, bool compressed,
                                std::span<const std::byte> salt)
{
    image::ManifestFile record;
    record.set_name("pages-1.img");
    record.set_size(stored);
    record.set_content_size(content);
    if (compressed)
        record.set_compression(image::FILE_COMPRESSION_ZSTD);
    if (sealed)
        record.set_seal_salt(salt.data(), salt.size());
    return record;
}

void round_trip_and_tamper(std::string_view plain, uint64_t where)
{
    image::WriteTransforms transforms { .compression_level = 1, .key = fuzz_key() };
    std::string stored;
    auto encoder = image::FileEncoder::create(transforms, kId, image::Content::PageData, "pages-1.img",
                                              [&](std::span<const std::byte> bytes) -> Result<void> {
                                                  stored.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
                                                  return {};
                                              });
    if (!encoder || !(*encoder)->write(std::as_bytes(std::span(plain.data(), plain.size()))))
        std::abort();
    image::ManifestFile record;
    if (!(*encoder)->finish(record))
        std::abort();
    record = page_record(stored.size(), plain.size(), true, true,
                         std::as_bytes(std::span(record.seal_salt().data(), record.seal_salt().size())));
    auto intact = decode(stored, &record);
    if (!intact || *intact != plain.size())
        std::abort();
    std::string changed = stored;
    if (where % 2) {
        changed[(where / 2) % changed.size()] ^= static_cast<char>(1 + where % 255);
    } else {
        changed.resize((where / 2) % changed.size());
        record.set_size(changed.size());
    }
    if (decode(changed, &record))
        std::abort();   // a changed sealed file was accepted
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size < 1)
        return 0;
    std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    image::SealSalt salt {};
    switch (data[0] % 4) {
    case 0: {
        UniqueFd fd = memfd_with(rest);
        (void)image::unseal(fd.get(), rest.size(), "pages-1.img", fuzz_key(), { &kId, {} },
                            [](std::span<const std::byte>) -> Result<void> { return {}; });
        break;
    }
    case 1: {
        auto record = page_record(rest.size(), 1 << 20, false, true, {});
        (void)decode(rest, &record);
        break;
    }
    case 2: {
        if (rest.size() >= sizeof(image::SealHeader))
            std::memcpy(salt.data(), rest.data() + offsetof(image::SealHeader, salt), salt.size());
        auto record = page_record(rest.size(), 1 << 20, true, true, salt);
        (void)decode(rest, &record);
        break;
    }
    case 3: {
        if (rest.size() < 8)
            return 0;
        uint64_t where = 0;
        std::memcpy(&where, rest.data(), sizeof(where));
        round_trip_and_tamper(rest.substr(8), where);
        break;
    }
    }
    return 0;
}
