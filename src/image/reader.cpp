#include "image/reader.h"

#include <memory>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/fault.h"
#include "base/xxh3.h"
#include "image/transform.h"
#include "image/validate.h"

namespace cryo::image {

Result<void> decode_image(std::string_view bytes, ImageKind kind, google::protobuf::Message& message)
{
    FileHeader header;
    if (bytes.size() < sizeof(header))
        return fail("truncated: {} bytes, shorter than the {}-byte header", bytes.size(), sizeof(header));
    std::memcpy(&header, bytes.data(), sizeof(header));
    if (std::memcmp(header.magic, kMagic, sizeof(kMagic)) != 0)
        return fail("not a cryo image (bad magic)");
    if (header.kind != static_cast<uint32_t>(kind))
        return fail("holds kind {:#x}, expected {} ({:#x})", header.kind, kind_name(kind),
                    static_cast<uint32_t>(kind));
    if (header.version != kFormatVersion)
        return fail("format version {} is not supported (this cryo reads version {})",
                    header.version, kFormatVersion);
    std::string_view payload = bytes.substr(sizeof(header));
    if (header.payload_size != payload.size())
        return fail("payload is {} bytes, header says {} (truncated?)", payload.size(), header.payload_size);
    if (xxh3::hash(payload.data(), payload.size()) != header.payload_xxh3)
        return fail("payload checksum mismatch (corrupted)");
    if (!message.ParseFromArray(payload.data(), static_cast<int>(payload.size())))
        return fail("cannot parse {} payload (corrupted)", kind_name(kind));
    return {};
}

namespace {

// Flags for opening a file of the image directory. A hostile directory could
// hold a FIFO under a listed name, on which a plain open() blocks forever
// (O_NONBLOCK makes it return; it changes nothing for regular files), or a
// symlink leading outside the directory (O_NOFOLLOW refuses it). Callers
// still check S_ISREG after opening.
constexpr int kImageOpenFlags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;

// Opens a file of the directory for reading: a regular file of at most
// `limit` bytes. Returns it with its size.
Result<std::pair<UniqueFd, uint64_t>> open_bounded(int dir, const std::string& name, uint64_t limit)
{
    UniqueFd fd = TRY(open_file_at(dir, name, kImageOpenFlags));
    struct stat st;
    if (::fstat(fd.get(), &st) < 0)
        return fail_errno(fmt::format("stat {}", name));
    if (!S_ISREG(st.st_mode))
        return fail("{} is not a regular file", name);
    if (static_cast<uint64_t>(st.st_size) > limit)
        return fail("{} is {} bytes, larger than any valid image ({} bytes)", name, st.st_size, limit);
    return std::pair { std::move(fd), static_cast<uint64_t>(st.st_size) };
}

// A sealed metadata file is larger than its content by its header and one
// tag per chunk.
uint64_t stored_limit(uint64_t content_limit)
{
    return content_limit + sizeof(SealHeader) + (content_limit / kSealMinChunkSize + 1) * kSealTagSize;
}

} // namespace

Result<Manifest> read_manifest(int dir_fd, const std::string& directory, const Key* key,
                               std::optional<CheckpointId>& checkpoint_id, std::string* content)
{
    std::string name(kManifestName);
    std::string path = fmt::format("{}/{}", directory, name);
    uint64_t limit = kMaxPayloadSize + sizeof(FileHeader);
    auto [fd, size] = TRY_CTX(open_bounded(dir_fd, name, stored_limit(limit)), "{}", directory);
    std::array<std::byte, sizeof(kSealMagic)> prefix {};
    if (size >= prefix.size())
        TRY(pread_exact(fd.get(), prefix, 0, path));
    bool sealed = looks_sealed(prefix);
    if (sealed && !key)
        return fail("{}: the checkpoint is encrypted: give its key with --key KEYFILE", directory);
    if (!sealed && key)
        return fail("{}: the checkpoint is not encrypted, but a key was given: refusing it (an unencrypted checkpoint "
                    "may have been put in place of an encrypted one; read it without --key if it is yours)",
                    directory);
    std::string bytes;
    Manifest manifest;
    if (sealed) {
        SealHeader header = TRY_CTX(read_seal_header(fd.get(), size), "{}", path);
        checkpoint_id = header_checkpoint_id(header);
        ReadKeys keys { key, &*checkpoint_id };
        bytes = TRY_CTX(decode_to_string(fd.get(), size, name, nullptr, keys, limit), "{}", path);
    } else {
        if (size > limit)
            return fail("{} is {} bytes, larger than any valid image ({} bytes)", path, size, limit);
        bytes.resize(size);
        TRY(pread_exact(fd.get(), std::as_writable_bytes(std::span(bytes.data(), bytes.size())), 0, path));
    }
    TRY_CTX(decode_image(bytes, ImageKind::Manifest, manifest), "{}", path);
    if (manifest.format_version() != kFormatVersion)
        return fail("{}: format version {} is not supported", path, manifest.format_version());
    if (sealed != manifest.has_encryption())
        return fail("{}: {} (tampered)", path,
                    sealed ? "sealed, but does not describe an encrypted checkpoint"
                           : "describes an encrypted checkpoint but is not sealed");
    if (sealed) {
        const auto& encryption = manifest.encryption();
        if (encryption.cipher() != kSealCipher)
            return fail("{}: cipher '{}' is not supported", path, encryption.cipher());
        if (encryption.checkpoint_id().size() != checkpoint_id->size()
            || std::memcmp(encryption.checkpoint_id().data(), checkpoint_id->data(), checkpoint_id->size()) != 0)
            return fail("{}: its checkpoint id differs from its sealed header's (tampered)", path);
    }
    std::map<std::string, int> seen;
    for (const ManifestFile& file : manifest.files()) {
        if (!is_safe_image_name(file.name()) || file.name() == name)
            return fail("{}: lists an invalid file name '{}'", path, file.name());
        if (seen[file.name()]++)
            return fail("{}: lists {} twice", path, file.name());
        if (sealed && file.seal_salt().size() != sizeof(SealSalt))
            return fail("{}: lists {} as not sealed in an encrypted checkpoint (tampered)", path, file.name());
        if (!sealed && !file.seal_salt().empty())
            return fail("{}: lists {} as sealed in a checkpoint that is not encrypted", path, file.name());
        TRY_CTX(check_chunk_table(file), "{}", path);
    }
    TRY_CTX(check_chain_fields(manifest), "{}", path);
    if (content)
        *content = std::move(bytes);
    return manifest;
}

ImageReader::ImageReader(std::string directory, UniqueFd dir, Manifest manifest)
    : m_directory(std::move(directory))
    , m_dir(std::move(dir))
    , m_manifest(std::move(manifest))
{
    for (const ManifestFile& file : m_manifest.files())
        m_files[file.name()] = &file;
}

Result<ImageReader> ImageReader::open(const std::string& directory, const Key* key)
{
    UniqueFd dir = TRY(open_file(directory, O_RDONLY | O_DIRECTORY));
    std::string manifest_name(kManifestName);
    if (::faccessat(dir.get(), manifest_name.c_str(), F_OK, 0) < 0 && errno == ENOENT)
        return fail("{}: not a complete checkpoint: {} is missing (the dump did not finish?)",
                    directory, manifest_name);
    std::optional<CheckpointId> checkpoint_id;
    Manifest manifest = TRY(read_manifest(dir.get(), directory, key, checkpoint_id));
    ImageReader reader(directory, std::move(dir), std::move(manifest));
    if (key)
        reader.m_key.emplace(*key);
    reader.m_checkpoint_id = checkpoint_id;
    return reader;
}

ReadKeys ImageReader::keys() const
{
    return { m_key ? &*m_key : nullptr, m_checkpoint_id ? &*m_checkpoint_id : nullptr };
}

uint64_t ImageReader::file_size(const std::string& name) const
{
    auto it = m_files.find(name);
    return it == m_files.end() ? 0 : content_size(*it->second);
}

Result<uint64_t> file_xxh3(int fd, uint64_t size, std::span<std::byte> buffer, const std::string& path)
{
    xxh3::Stream state;
    for (uint64_t offset = 0; offset < size;) {
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - offset));
        TRY(pread_exact(fd, buffer.subspan(0, chunk), offset, path));
        state.update(buffer.data(), chunk);
        offset += chunk;
    }
    return state.digest();
}

Result<void> verify_chunk(int fd, const ManifestFile& record, uint64_t index, std::vector<std::byte>& buffer,
                          const std::string& path)
{
    uint64_t chunk_size = record.chunk_size();
    uint64_t start = index * chunk_size;
    if (chunk_size == 0 || index >= static_cast<uint64_t>(record.chunk_xxh3_size()))
        return fail("{}: no chunk {} (the file has {})", path, index, record.chunk_xxh3_size());
    buffer.resize(chunk_size);
    auto chunk = std::span(buffer).first(std::min(chunk_size, record.size() - start));
    TRY(pread_exact(fd, chunk, start, path));
    if (xxh3::hash(chunk.data(), chunk.size()) != record.chunk_xxh3(static_cast<int>(index)))
        return fail("{}: chunk {} (bytes {}-{}) checksum mismatch (corrupted)", path, index, start, start + chunk.size());
    return {};
}

const ManifestFile* ImageReader::listed(const std::string& name) const
{
    auto it = m_files.find(name);
    return it == m_files.end() ? nullptr : it->second;
}

Result<void> ImageReader::verify(const std::function<bool(const std::string&)>& include) const
{
    // Files are read in pieces of at most 1 MiB; a checkpoint of small
    // files gets a buffer no larger than its largest file.
    uint64_t largest = 0;
    for (const ManifestFile& file : m_manifest.files())
        largest = std::max(largest, file.size());
    std::vector<std::byte> buffer(static_cast<size_t>(std::min<uint64_t>(largest, 1 << 20)));
    for (const ManifestFile& file : m_manifest.files()) {
        if (include && !include(file.name()))
            continue;
        std::string path = fmt::format("{}/{}", m_directory, file.name());
        auto fd = open_file_at(m_dir.get(), file.name(), kImageOpenFlags);
        if (!fd)
            return fail("{}: missing or unreadable: {}", path, fd.error().message());
        struct stat st;
        if (::fstat(fd->get(), &st) < 0)
            return fail_errno(fmt::format("stat {}", path));
        if (!S_ISREG(st.st_mode))
            return fail("{} is not a regular file", path);
        if (static_cast<uint64_t>(st.st_size) != file.size())
            return fail("{}: size is {} bytes, the manifest says {} (truncated or replaced)", path,
                        st.st_size, file.size());
        if (TRY(file_xxh3(fd->get(), file.size(), buffer, path)) != file.xxh3())
            return fail("{}: checksum mismatch (corrupted)", path);
        if (m_checkpoint_id)
            TRY_CTX(check_seal_header(fd->get(), file), "{}", path);
    }
    return {};
}

Result<void> ImageReader::check_seal_header(int fd, const ManifestFile& file) const
{
    SealHeader header = TRY(read_seal_header(fd, file.size()));
    if (header_checkpoint_id(header) != *m_checkpoint_id)
        return fail("belongs to another checkpoint: swapped in?");
    if (std::memcmp(header.salt, file.seal_salt().data(), sizeof(header.salt)) != 0)
        return fail("is not the version of the file the manifest lists: replaced?");
    return {};
}

Result<std::string> ImageReader::read_content(const std::string& name, uint64_t limit) const
{
    std::string path = fmt::format("{}/{}", m_directory, name);
    auto it = m_files.find(name);
    if (it == m_files.end())
        return fail("{}: not listed in the manifest", path);
    auto [fd, size] = TRY_CTX(open_bounded(m_dir.get(), name, is_transformed(*it->second) ? stored_limit(limit) : limit),
                              "{}", m_directory);
    if (!is_transformed(*it->second)) {
        std::string bytes(static_cast<size_t>(size), '\0');
        TRY(pread_exact(fd.get(), std::as_writable_bytes(std::span(bytes.data(), bytes.size())), 0, path));
        return bytes;
    }
    return TRY_CTX(decode_to_string(fd.get(), size, name, it->second, keys(), limit), "{}", path);
}

Result<void> ImageReader::read_message(const std::string& name, ImageKind kind,
                                       google::protobuf::Message& message) const
{
    TRY(fault::step([&] { return "read " + name; }));
    std::string path = fmt::format("{}/{}", m_directory, name);
    if (!m_files.contains(name))
        return fail("{}: not listed in the manifest", path);
    std::string bytes = TRY(read_content(name, kMaxPayloadSize + sizeof(FileHeader)));
    TRY_CTX(decode_image(bytes, kind, message), "{}", path);
    return {};
}

Result<UniqueFd> ImageReader::open_raw(const std::string& name) const
{
    TRY(fault::step([&] { return "open " + name; }));
    std::string path = fmt::format("{}/{}", m_directory, name);
    auto it = m_files.find(name);
    if (it == m_files.end())
        return fail("{}: not listed in the manifest", path);
    UniqueFd fd = TRY(open_file_at(m_dir.get(), name, kImageOpenFlags));
    struct stat st;
    if (::fstat(fd.get(), &st) < 0)
        return fail_errno(fmt::format("stat {}", path));
    if (!S_ISREG(st.st_mode))
        return fail("{} is not a regular file", path);
    if (static_cast<uint64_t>(st.st_size) != it->second->size())
        return fail("{}: size is {} bytes, the manifest says {}", path, st.st_size, it->second->size());
    uint64_t decoded_size = 0;
    if (is_transformed(*it->second))
        return TRY_CTX(decode_to_memfd(fd.get(), it->second->size(), name, it->second, keys(), decoded_size), "{}", path);
    return fd;
}

} // namespace cryo::image
