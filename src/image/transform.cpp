// See transform.h.
#include "image/transform.h"

#include <sys/mman.h>

#include <optional>

#include "proc/meminfo.h"

namespace cryo::image {

bool FileEncoder::needed(const WriteTransforms& transforms, Content content)
{
    return transforms.key || (content == Content::PageData && transforms.compression_level > 0);
}

FileEncoder::~FileEncoder() = default;

Result<std::unique_ptr<FileEncoder>> FileEncoder::create(const WriteTransforms& transforms,
                                                        const CheckpointId& checkpoint_id, Content content,
                                                        const std::string& name, ByteSink out)
{
    std::unique_ptr<FileEncoder> encoder(new FileEncoder());
    encoder->m_out = std::move(out);
    if (transforms.key)
        encoder->m_seal = TRY(SealWriter::create(*transforms.key, checkpoint_id, name, encoder->m_out));
    if (content == Content::PageData && transforms.compression_level > 0) {
        ByteSink next = encoder->m_out;
        if (encoder->m_seal)
            next = [seal = encoder->m_seal.get()](std::span<const std::byte> bytes) { return seal->write(bytes); };
        encoder->m_zstd = TRY(ZstdWriter::create(transforms.compression_level, name, std::move(next)));
    }
    return encoder;
}

Result<void> FileEncoder::write(std::span<const std::byte> data)
{
    if (m_zstd)
        return m_zstd->write(data);
    if (m_seal)
        return m_seal->write(data);
    return m_out(data);
}

Result<void> FileEncoder::finish(ManifestFile& record)
{
    if (m_zstd) {
        TRY(m_zstd->finish());
        record.set_compression(FILE_COMPRESSION_ZSTD);
    }
    if (m_seal) {
        TRY(m_seal->finish());
        record.set_seal_salt(m_seal->salt().data(), m_seal->salt().size());
    }
    return {};
}

bool is_transformed(const ManifestFile& record)
{
    return record.compression() != FILE_COMPRESSION_NONE || !record.seal_salt().empty();
}

uint64_t content_size(const ManifestFile& record)
{
    return is_transformed(record) ? record.content_size() : record.size();
}

Result<void> decode_file(int fd, uint64_t size, const std::string& name, const ManifestFile* record,
                         const ReadKeys& keys, const ByteSink& out)
{
    bool sealed = false;
    if (record) {
        sealed = !record->seal_salt().empty();
        if (record->compression() != FILE_COMPRESSION_NONE && record->compression() != FILE_COMPRESSION_ZSTD)
            return fail("compressed in an unknown way ({})", static_cast<int>(record->compression()));
    } else if (size >= sizeof(SealHeader)) {
        SealHeader header;
        TRY(pread_exact(fd, std::as_writable_bytes(std::span(&header, 1)), 0, name));
        sealed = looks_sealed(std::as_bytes(std::span(&header, 1)));
    }
    if (sealed && !keys.key)
        return fail("encrypted: give the key with --key KEYFILE");

    ByteSink content = out;
    std::unique_ptr<ZstdReader> zstd;
    if (record && record->compression() == FILE_COMPRESSION_ZSTD) {
        zstd = TRY(ZstdReader::create(record->content_size(), out));
        content = [&](std::span<const std::byte> bytes) { return zstd->feed(bytes); };
    }
    if (sealed) {
        SealExpectation expect { keys.checkpoint_id, {} };
        if (record)
            expect.salt = std::as_bytes(std::span(record->seal_salt().data(), record->seal_salt().size()));
        TRY(unseal(fd, size, name, *keys.key, expect, content));
    } else {
        std::vector<std::byte> buffer(static_cast<size_t>(std::min<uint64_t>(size, 1u << 20)));
        for (uint64_t offset = 0; offset < size;) {
            size_t length = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - offset));
            TRY(pread_exact(fd, std::span(buffer.data(), length), offset, name));
            TRY(content(std::span(buffer.data(), length)));
            offset += length;
        }
    }
    if (zstd) {
        uint64_t produced = TRY(zstd->finish());
        if (produced != record->content_size())
            return fail("decompresses to {} bytes, the manifest says {}", produced, record->content_size());
    }
    return {};
}

Result<std::string> decode_to_string(int fd, uint64_t size, const std::string& name, const ManifestFile* record,
                                     const ReadKeys& keys, uint64_t limit)
{
    std::string content;
    TRY(decode_file(fd, size, name, record, keys, [&](std::span<const std::byte> bytes) -> Result<void> {
        if (bytes.size() > limit - content.size())
            return fail("decodes to more than {} bytes, larger than any valid image", limit);
        content.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        return {};
    }));
    return content;
}

Result<UniqueFd> decode_to_memfd(int fd, uint64_t size, const std::string& name, const ManifestFile* record,
                                 const ReadKeys& keys, uint64_t& decoded_size)
{
    // The content goes to memory: a manifest asking for more than there is
    // (hostile, or a checkpoint too big for this machine) is refused first.
    auto available = proc::read_meminfo_field("MemAvailable");
    if (record && available && content_size(*record) > *available)
        return fail("decodes to {} bytes, more than the memory available ({} bytes)", content_size(*record), *available);
    UniqueFd memfd(::memfd_create(fmt::format("cryo:{}", name).c_str(), 0));
    if (!memfd)
        return fail_errno(fmt::format("memfd_create for the content of {}", name));
    uint64_t expected = record ? content_size(*record) : UINT64_MAX;
    uint64_t written = 0;
    TRY(decode_file(fd, size, name, record, keys, [&](std::span<const std::byte> bytes) -> Result<void> {
        if (bytes.size() > expected - written)
            return fail("decodes to more than the {} bytes the manifest says", expected);
        TRY(write_all(memfd.get(), bytes, fmt::format("memfd of {}", name)));
        written += bytes.size();
        return {};
    }));
    if (record && written != expected)
        return fail("decodes to {} bytes, the manifest says {}", written, expected);
    decoded_size = written;
    return memfd;
}

} // namespace cryo::image
