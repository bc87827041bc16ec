#include "image/writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/fault.h"
#include "base/xxh3.h"
#include "proc/meminfo.h"

namespace cryo::image {

// The file as stored: its descriptor, and the size and checksum of what
// reached it.
struct OutputFile::Stored {
    std::string name;
    UniqueFd fd;
    uint64_t size { 0 };
    xxh3::Stream hash;
    ImageSink* remote { nullptr };   // set: the bytes go there (fd is then invalid)
    uint32_t remote_id { 0 };
    // Untransformed page files: a checksum per kPageChunkSize bytes.
    bool chunked { false };
    xxh3::Stream chunk_hash;
    std::vector<uint64_t> chunks;

    uint64_t hashed { 0 };   // bytes taken into the checksums so far

    Result<void> append(std::span<const std::byte> data)
    {
        take_into_checksums(data);
        return store(data);
    }

    // The next `data.size()` bytes of the file, in order. A page file's
    // two checksums take each piece in turn while it is in the CPU's cache
    // (one pass over memory, not two: 8 MiB does not fit).
    void take_into_checksums(std::span<const std::byte> data)
    {
        constexpr size_t kCachedPiece = 256 << 10;
        while (!data.empty()) {
            auto piece = data.first(std::min(kCachedPiece, data.size()));
            hash.update(piece);
            if (chunked)
                hash_chunks(piece);
            hashed += piece.size();
            data = data.subspan(piece.size());
        }
    }

    Result<void> store(std::span<const std::byte> data)
    {
        if (remote)
            TRY(remote->append(remote_id, data));
        else
            TRY(write_all(fd.get(), data, name));
        size += data.size();
        return {};
    }

    // Bytes already in the file (OutputFile::account_written).
    void account(std::span<const std::byte> data)
    {
        take_into_checksums(data);
        size += data.size();
    }

    // Before `hashed` counts `data`.
    void hash_chunks(std::span<const std::byte> data)
    {
        uint64_t at = hashed;
        while (!data.empty()) {
            uint64_t room = kPageChunkSize - at % kPageChunkSize;
            auto piece = data.first(static_cast<size_t>(std::min<uint64_t>(room, data.size())));
            chunk_hash.update(piece);
            at += piece.size();
            data = data.subspan(piece.size());
            if (at % kPageChunkSize == 0) {
                chunks.push_back(chunk_hash.digest());
                chunk_hash.reset();
            }
        }
    }
};

OutputFile::OutputFile(std::unique_ptr<Stored> stored, std::unique_ptr<FileEncoder> encoder)
    : m_stored(std::move(stored))
    , m_encoder(std::move(encoder))
{
}

OutputFile::OutputFile(OutputFile&&) noexcept = default;
OutputFile& OutputFile::operator=(OutputFile&&) noexcept = default;
OutputFile::~OutputFile() = default;

int OutputFile::fd() const { return m_stored->fd.get(); }
const std::string& OutputFile::name() const { return m_stored->name; }

Result<void> OutputFile::write(std::span<const std::byte> data)
{
    if (m_encoder)
        TRY(m_encoder->write(data));
    else
        TRY(m_stored->append(data));
    m_size += data.size();
    return {};
}

void OutputFile::hash(std::span<const std::byte> data)
{
    m_stored->take_into_checksums(data);
}

Result<void> OutputFile::write_hashed(std::span<const std::byte> data)
{
    TRY(m_stored->store(data));
    m_size += data.size();
    return {};
}

Result<void> OutputFile::account_written(std::span<const std::byte> written)
{
    if (m_encoder || m_stored->remote)
        return fail("{}: bytes written around the image writer can be counted only in a raw file of a local directory",
                    name());
    struct stat status {};
    if (::fstat(fd(), &status) < 0)
        return fail_errno(fmt::format("stat {}", name()));
    if (static_cast<uint64_t>(status.st_size) != m_stored->size + written.size())
        return fail("{} holds {} bytes, not the {} written by the image writer plus the {} written around it", name(),
                    status.st_size, m_stored->size, written.size());
    // The next write() goes to the descriptor's position: it must be the end.
    off_t position = ::lseek(fd(), 0, SEEK_CUR);
    if (position < 0)
        return fail_errno(fmt::format("find the write position in {}", name()));
    if (static_cast<uint64_t>(position) != m_stored->size + written.size())
        return fail("{}: the bytes written around the image writer left the write position at {}, not at the end ({})",
                    name(), position, m_stored->size + written.size());
    m_stored->account(written);
    m_size += written.size();
    return {};
}

Result<std::string> encode_image(ImageKind kind, const google::protobuf::Message& message)
{
    std::string payload;
    if (!message.SerializeToString(&payload))
        return fail("cannot serialize {} image", kind_name(kind));
    FileHeader header {};
    std::memcpy(header.magic, kMagic, sizeof(kMagic));
    header.kind = static_cast<uint32_t>(kind);
    header.version = kFormatVersion;
    header.payload_size = payload.size();
    header.payload_xxh3 = xxh3::hash(payload.data(), payload.size());
    std::string bytes(reinterpret_cast<const char*>(&header), sizeof(header));
    bytes += payload;
    return bytes;
}

ImageWriter::ImageWriter(std::string directory, UniqueFd dir, SyncMode sync, bool created_directory)
    : m_directory(std::move(directory))
    , m_dir(std::move(dir))
    , m_sync(sync)
    , m_created_directory(created_directory)
{
}

ImageWriter::ImageWriter(ImageWriter&& other) noexcept
    : m_directory(std::move(other.m_directory))
    , m_dir(std::move(other.m_dir))
    , m_sync(other.m_sync)
    , m_created_directory(other.m_created_directory)
    , m_committed(std::exchange(other.m_committed, true))
    , m_created(std::move(other.m_created))
    , m_records(std::move(other.m_records))
    , m_transforms(std::move(other.m_transforms))
    , m_checkpoint_id(other.m_checkpoint_id)
    , m_remote(std::move(other.m_remote))
{
}

ImageWriter::~ImageWriter()
{
    if (!m_committed)
        remove_created_files();
}

void ImageWriter::remove_created_files()
{
    if (!m_dir)
        return;
    for (const std::string& name : m_created)
        ::unlinkat(m_dir.get(), name.c_str(), 0);
    m_created.clear();
    if (m_created_directory)
        ::rmdir(m_directory.c_str());
}

namespace {

// A new file, owned by the caller and 0600 whatever umask says: a file of
// that name left by someone else (or a symlink) is replaced, never written
// through, so its owner cannot read the images.
Result<UniqueFd> create_private_file(int dir_fd, const std::string& name)
{
    if (::unlinkat(dir_fd, name.c_str(), 0) < 0 && errno != ENOENT)
        return fail_errno(fmt::format("remove old {}", name));
    UniqueFd fd = TRY(open_file_at(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
    if (::fchmod(fd.get(), 0600) < 0)
        return fail_errno(fmt::format("chmod {}", name));
    return fd;
}

// An existing image directory must be the caller's and writable by nobody
// else, or another user could swap the images between dump and restore.
Result<void> check_directory_owner(int dir_fd, const std::string& directory)
{
    struct stat st;
    if (::fstat(dir_fd, &st) < 0)
        return fail_errno(fmt::format("stat {}", directory));
    if (st.st_uid != ::geteuid())
        return fail("image directory {} is owned by uid {}, not by the user running cryo (uid {})", directory, st.st_uid,
                    ::geteuid());
    // Group-writable is fine when the group is the caller's own (umask 002
    // with a group per user).
    if ((st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) && st.st_gid != ::getegid()))
        return fail("image directory {} is writable by other users (mode {:o}); use a directory only its owner can write",
                    directory, st.st_mode & 07777);
    return {};
}

// At most this much data of other programs for one syncfs() to write.
constexpr uint64_t kQuietDirtyBytes = 4 << 20;

bool little_left_to_write()
{
    auto dirty = proc::read_meminfo_field("Dirty");
    auto writeback = proc::read_meminfo_field("Writeback");
    return dirty && writeback && *dirty + *writeback <= kQuietDirtyBytes;
}

} // namespace

Result<ImageWriter> ImageWriter::create(const std::string& directory, SyncMode sync, WriteTransforms transforms)
{
    if (transforms.compression_level < 0 || transforms.compression_level > kMaxCompressionLevel)
        return fail("compression level {} is out of range (1 to {})", transforms.compression_level,
                    kMaxCompressionLevel);
    bool created = false;
    if (::mkdir(directory.c_str(), 0700) == 0)
        created = true;
    else if (errno != EEXIST)
        return fail_errno(fmt::format("create image directory {}", directory));
    UniqueFd dir = TRY(open_file(directory, O_RDONLY | O_DIRECTORY));
    if (!created)
        TRY(check_directory_owner(dir.get(), directory));
    // An older checkpoint in the same directory is about to be overwritten
    // file by file: drop its manifest first so that the mix never looks
    // complete.
    if (::unlinkat(dir.get(), std::string(kManifestName).c_str(), 0) == 0) {
        if (::fsync(dir.get()) < 0)
            return fail_errno(fmt::format("fsync {}", directory));
    } else if (errno != ENOENT) {
        return fail_errno(fmt::format("remove old {}/{}", directory, kManifestName));
    }
    ImageWriter writer(directory, std::move(dir), sync, created);
    // A random id for this checkpoint: every sealed file is bound to it.
    if (transforms.key)
        TRY(random_bytes(writer.m_checkpoint_id));
    writer.m_transforms = std::move(transforms);
    return writer;
}

Result<ImageWriter> ImageWriter::create_remote(std::unique_ptr<ImageSink> sink, WriteTransforms transforms)
{
    if (transforms.compression_level < 0 || transforms.compression_level > kMaxCompressionLevel)
        return fail("compression level {} is out of range (1 to {})", transforms.compression_level,
                    kMaxCompressionLevel);
    ImageWriter writer(sink->describe(), UniqueFd(), SyncMode::NoSync, false);
    if (transforms.key)
        TRY(random_bytes(writer.m_checkpoint_id));
    writer.m_transforms = std::move(transforms);
    writer.m_remote = std::move(sink);
    return writer;
}

Result<OutputFile> ImageWriter::create_file(const std::string& name)
{
    return create_file_of(name, Content::PageData);
}

Result<OutputFile> ImageWriter::create_file_of(const std::string& name, Content content)
{
    if (!is_safe_image_name(name))
        return fail("invalid image file name '{}'", name);
    // commit() writes the manifest through "manifest.img.tmp" and the reader
    // refuses a manifest that lists itself or a name twice: accepting these
    // names here would produce a checkpoint that can never be restored.
    if (name == kManifestName || name == std::string(kManifestName) + ".tmp")
        return fail("image file name '{}' is reserved", name);
    if (std::ranges::find(m_created, name) != m_created.end())
        return fail("image file {} is written twice", name);
    TRY(fault::step([&] { return "create " + name; }));
    auto stored = std::make_unique<OutputFile::Stored>();
    if (m_remote) {
        stored->remote = m_remote.get();
        stored->remote_id = TRY(m_remote->open(name));
    } else {
        stored->fd = TRY(create_private_file(m_dir.get(), name));
    }
    m_created.push_back(name);
    stored->name = name;
    std::unique_ptr<FileEncoder> encoder;
    if (FileEncoder::needed(m_transforms, content))
        encoder = TRY(FileEncoder::create(m_transforms, m_checkpoint_id, content, name,
                                          [raw = stored.get()](std::span<const std::byte> bytes) { return raw->append(bytes); }));
    if (content == Content::PageData && !encoder)
        stored->chunked = true;
    return OutputFile(std::move(stored), std::move(encoder));
}

Result<void> ImageWriter::finish_file(OutputFile&& file)
{
    TRY(fault::step([&] { return "finish " + file.name(); }));
    // Not synced one by one: commit() makes all of them durable at once.
    ManifestFile record;
    if (file.m_encoder) {
        TRY(file.m_encoder->finish(record));
        record.set_content_size(file.size());
    }
    if (m_remote)
        TRY(m_remote->finish(file.m_stored->remote_id));
    if (file.m_stored->hashed != file.m_stored->size)
        return fail("{}: {} bytes stored but {} checksummed", file.name(), file.m_stored->size, file.m_stored->hashed);
    record.set_name(file.name());
    record.set_size(file.m_stored->size);
    record.set_xxh3(file.m_stored->hash.digest());
    // A file written around write() (pwrite to fd()) has no chunk table.
    OutputFile::Stored& stored = *file.m_stored;
    if (stored.chunked && stored.size % kPageChunkSize != 0)
        stored.chunks.push_back(stored.chunk_hash.digest());
    if (stored.chunked && stored.size > 0 && stored.chunks.size() == (stored.size + kPageChunkSize - 1) / kPageChunkSize) {
        record.set_chunk_size(kPageChunkSize);
        record.mutable_chunk_xxh3()->Add(stored.chunks.begin(), stored.chunks.end());
    }
    m_records.push_back(std::move(record));
    return {};
}

Result<void> ImageWriter::write_message(const std::string& name, ImageKind kind,
                                        const google::protobuf::Message& message)
{
    std::string bytes = TRY(encode_image(kind, message));
    OutputFile file = TRY(create_file_of(name, Content::Metadata));
    TRY(file.write(std::as_bytes(std::span(bytes.data(), bytes.size()))));
    return finish_file(std::move(file));
}

uint64_t ImageWriter::total_bytes() const
{
    uint64_t total = 0;
    for (const ManifestFile& record : m_records)
        total += content_size(record);
    return total;
}

Result<void> ImageWriter::commit(Manifest manifest)
{
    manifest.set_format_version(kFormatVersion);
    for (const ManifestFile& record : m_records)
        *manifest.add_files() = record;
    if (m_transforms.key) {
        auto* encryption = manifest.mutable_encryption();
        encryption->set_cipher(std::string(kSealCipher));
        encryption->set_checkpoint_id(m_checkpoint_id.data(), m_checkpoint_id.size());
        encryption->set_chunk_size(kSealChunkSize);
    }
    std::string bytes = TRY(encode_image(ImageKind::Manifest, manifest));
    // The manifest of an encrypted checkpoint is sealed like every file, so
    // nobody can read or change it (nor drop its encryption) without the key.
    if (m_transforms.key)
        bytes = TRY(seal_bytes(*m_transforms.key, m_checkpoint_id, std::string(kManifestName), bytes)).bytes;

    if (m_remote) {
        TRY(m_remote->commit(bytes));
        m_committed = true;
        return {};
    }
    // The manifest goes under a temporary name first, so that it is made
    // durable along with the files it describes: only the rename makes it
    // count, and that comes after.
    std::string temporary = std::string(kManifestName) + ".tmp";
    UniqueFd manifest_fd = TRY(create_private_file(m_dir.get(), temporary));
    m_created.push_back(temporary);
    TRY(write_all(manifest_fd.get(), bytes, temporary));
    // Every file durable at once. Up to kSyncEachFiles files: writeback of
    // all of them is started first, so their blocks are allocated in one
    // journal transaction, then each is fdatasync()ed in turn. The first
    // commits that transaction and flushes the disk's cache; the others
    // find their data written and their transaction committed, and cost
    // little. (Measured for 9 and for 29 files: the same time as
    // fdatasync()s side by side on threads, without starting any; Linux
    // AIO's IOCB_CMD_FDSYNC was as fast, but io_destroy() then waits 30 ms
    // for an RCU grace period.) Past that, one syncfs() is cheaper,
    // although it also writes whatever other programs left dirty on the
    // filesystem (measured on a busy machine: a 7-file dump waited 135 ms
    // for that, a 500-file one 300 ms for its fdatasyncs). The kernel
    // reports failed writeback to both (syncfs: Linux 5.8).
    //
    // Each fdatasync() also flushes the disk's cache, which on a virtual
    // disk is a round trip to the host: 10 files took 1.1 ms that way and
    // 0.55 ms with one syncfs(). So syncfs() is used for few files too when
    // the machine has next to nothing else waiting to be written (Dirty and
    // Writeback of /proc/meminfo; those count every filesystem, so this
    // errs on the side of fdatasync()).
    constexpr size_t kSyncEachFiles = 32;
    if (m_sync == SyncMode::Fsync && (m_records.size() > kSyncEachFiles || little_left_to_write())) {
        if (::syncfs(m_dir.get()) < 0)
            return fail_errno(fmt::format("syncfs {}", m_directory));
    } else if (m_sync == SyncMode::Fsync) {
        std::vector<UniqueFd> files;
        std::vector<std::string> names;
        for (const ManifestFile& record : m_records) {
            files.push_back(TRY(open_file_at(m_dir.get(), record.name(), O_RDONLY | O_CLOEXEC)));
            names.push_back(record.name());
        }
        files.push_back(std::move(manifest_fd));
        names.push_back(temporary);
        for (size_t i = 0; i < files.size(); ++i)
            if (::sync_file_range(files[i].get(), 0, 0, SYNC_FILE_RANGE_WRITE) < 0)
                return fail_errno(fmt::format("sync_file_range {}", names[i]));
        for (size_t i = 0; i < files.size(); ++i)
            if (::fdatasync(files[i].get()) < 0)
                return fail_errno(fmt::format("fsync {}", names[i]));
    }
    TRY(fault::step([&] { return "commit " + std::string(kManifestName); }));
    if (::renameat(m_dir.get(), temporary.c_str(), m_dir.get(), std::string(kManifestName).c_str()) < 0)
        return fail_errno(fmt::format("rename {} to {}", temporary, kManifestName));
    m_created.back() = std::string(kManifestName);
    if (::fsync(m_dir.get()) < 0)
        return fail_errno(fmt::format("fsync {}", m_directory));
    m_committed = true;
    return {};
}

Result<void> write_file_atomically(int dir_fd, const std::string& directory, const std::string& name,
                                   std::string_view bytes)
{
    std::string temporary = name + ".tmp";
    {
        UniqueFd fd = TRY(open_file_at(dir_fd, temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (::fchmod(fd.get(), 0600) < 0)
            return fail_errno(fmt::format("chmod {}/{}", directory, temporary));
        TRY(write_all(fd.get(), bytes, fmt::format("{}/{}", directory, temporary)));
        if (::fsync(fd.get()) < 0)
            return fail_errno(fmt::format("fsync {}/{}", directory, temporary));
    }
    if (::renameat(dir_fd, temporary.c_str(), dir_fd, name.c_str()) < 0)
        return fail_errno(fmt::format("rename {}/{} to {}", directory, temporary, name));
    return {};
}

} // namespace cryo::image
