#include "image/reader.h"

#include <memory>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/fault.h"

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
    if (XXH3_64bits(payload.data(), payload.size()) != header.payload_xxh3)
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

Result<std::string> read_bounded(int dir, const std::string& name, uint64_t limit)
{
    UniqueFd fd = TRY(open_file_at(dir, name, kImageOpenFlags));
    struct stat st;
    if (::fstat(fd.get(), &st) < 0)
        return fail_errno(fmt::format("stat {}", name));
    if (!S_ISREG(st.st_mode))
        return fail("{} is not a regular file", name);
    if (static_cast<uint64_t>(st.st_size) > limit)
        return fail("{} is {} bytes, larger than any valid image ({} bytes)", name, st.st_size, limit);
    std::string bytes(static_cast<size_t>(st.st_size), '\0');
    TRY(pread_exact(fd.get(), std::as_writable_bytes(std::span(bytes.data(), bytes.size())), 0, name));
    return bytes;
}

} // namespace

ImageReader::ImageReader(std::string directory, UniqueFd dir, Manifest manifest)
    : m_directory(std::move(directory))
    , m_dir(std::move(dir))
    , m_manifest(std::move(manifest))
{
    for (const ManifestFile& file : m_manifest.files())
        m_files[file.name()] = &file;
}

Result<ImageReader> ImageReader::open(const std::string& directory)
{
    UniqueFd dir = TRY(open_file(directory, O_RDONLY | O_DIRECTORY));
    std::string manifest_name(kManifestName);
    if (::faccessat(dir.get(), manifest_name.c_str(), F_OK, 0) < 0 && errno == ENOENT)
        return fail("{}: not a complete checkpoint: {} is missing (the dump did not finish?)",
                    directory, manifest_name);
    std::string bytes = TRY_CTX(read_bounded(dir.get(), manifest_name, kMaxPayloadSize + sizeof(FileHeader)),
                                "{}", directory);
    Manifest manifest;
    TRY_CTX(decode_image(bytes, ImageKind::Manifest, manifest), "{}/{}", directory, manifest_name);
    if (manifest.format_version() != kFormatVersion)
        return fail("{}/{}: format version {} is not supported", directory, manifest_name,
                    manifest.format_version());
    std::map<std::string, int> seen;
    for (const ManifestFile& file : manifest.files()) {
        if (!is_safe_image_name(file.name()) || file.name() == manifest_name)
            return fail("{}/{}: lists an invalid file name '{}'", directory, manifest_name, file.name());
        if (seen[file.name()]++)
            return fail("{}/{}: lists {} twice", directory, manifest_name, file.name());
    }
    return ImageReader(directory, std::move(dir), std::move(manifest));
}

uint64_t ImageReader::file_size(const std::string& name) const
{
    auto it = m_files.find(name);
    return it == m_files.end() ? 0 : it->second->size();
}

Result<uint64_t> file_xxh3(int fd, uint64_t size, std::span<std::byte> buffer, const std::string& path)
{
    std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(), &XXH3_freeState);
    XXH3_64bits_reset(state.get());
    for (uint64_t offset = 0; offset < size;) {
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - offset));
        TRY(pread_exact(fd, buffer.subspan(0, chunk), offset, path));
        XXH3_64bits_update(state.get(), buffer.data(), chunk);
        offset += chunk;
    }
    return XXH3_64bits_digest(state.get());
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
    }
    return {};
}

Result<void> ImageReader::read_message(const std::string& name, ImageKind kind,
                                       google::protobuf::Message& message) const
{
    TRY(fault::step([&] { return "read " + name; }));
    std::string path = fmt::format("{}/{}", m_directory, name);
    if (!m_files.contains(name))
        return fail("{}: not listed in the manifest", path);
    std::string bytes = TRY_CTX(read_bounded(m_dir.get(), name, kMaxPayloadSize + sizeof(FileHeader)),
                                "{}", m_directory);
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
    return fd;
}

} // namespace cryo::image
