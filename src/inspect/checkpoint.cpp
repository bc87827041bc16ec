// See checkpoint.h.
#include "inspect/checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "core.pb.h"
#include "fds.pb.h"
#include "image/reader.h"
#include "image/transform.h"
#include "mm.pb.h"
#include "stats.pb.h"
#include "tree.pb.h"

namespace cryo::inspect {

namespace {

// As the image reader opens files: no symlinks, no blocking on a FIFO.
constexpr int kOpenFlags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;

struct KindName {
    image::ImageKind kind;
    std::string_view json;
    std::string_view prefix;   // "core-" for per-process files, else the whole name
    bool per_process;
    std::unique_ptr<google::protobuf::Message> (*make)();
};

template <typename Message>
std::unique_ptr<google::protobuf::Message> make()
{
    return std::make_unique<Message>();
}

// Every kind of metadata file; the two statistics files share a header kind
// and differ by name.
constexpr KindName kKinds[] = {
    { image::ImageKind::Manifest, "manifest", image::kManifestName, false, make<image::Manifest> },
    { image::ImageKind::Tree, "tree", image::kTreeName, false, make<image::ProcessTree> },
    { image::ImageKind::FileTable, "files", image::kFileTableName, false, make<image::FileTable> },
    { image::ImageKind::Stats, "stats-dump", image::kDumpStatsName, false, make<image::DumpStats> },
    { image::ImageKind::Stats, "stats-restore", image::kRestoreStatsName, false, make<image::RestoreStats> },
    { image::ImageKind::Core, "core", "core-", true, make<image::ProcessCore> },
    { image::ImageKind::Memory, "mm", "mm-", true, make<image::MemoryImage> },
    { image::ImageKind::PageMap, "pagemap", "pagemap-", true, make<image::PageMap> },
    { image::ImageKind::FdTable, "fds", "fds-", true, make<image::FdTable> },
};

bool is_pid_suffix(std::string_view rest)
{
    if (!rest.ends_with(".img"))
        return false;
    rest.remove_suffix(4);
    return !rest.empty() && rest.size() <= 10 && std::ranges::all_of(rest, [](char c) { return c >= '0' && c <= '9'; });
}

Result<std::vector<std::string>> list_directory(int dir_fd, const std::string& directory)
{
    int copy = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (copy < 0)
        return fail_errno(fmt::format("open {}", directory));
    DIR* listing = ::fdopendir(copy);
    if (!listing) {
        ::close(copy);
        return fail_errno(fmt::format("list {}", directory));
    }
    std::vector<std::string> names;
    while (dirent* entry = ::readdir(listing)) {
        std::string name = entry->d_name;
        if (!image::is_safe_image_name(name) || name == image::kManifestName || name.ends_with(".tmp"))
            continue;
        struct stat st;
        if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            names.push_back(name);
        if (names.size() > 100000)
            break;
    }
    ::closedir(listing);
    std::ranges::sort(names);
    return names;
}

const KindName* find_kind(std::string_view name)
{
    for (const auto& kind : kKinds) {
        if (!kind.per_process && name == kind.prefix)
            return &kind;
        if (kind.per_process && name.starts_with(kind.prefix) && is_pid_suffix(name.substr(kind.prefix.size())))
            return &kind;
    }
    return nullptr;
}

} // namespace

std::optional<image::ImageKind> metadata_kind(std::string_view name)
{
    const auto* kind = find_kind(name);
    return kind ? std::optional(kind->kind) : std::nullopt;
}

std::unique_ptr<google::protobuf::Message> new_message(std::string_view name)
{
    const auto* kind = find_kind(name);
    return kind ? kind->make() : nullptr;
}

std::string_view json_kind_name(std::string_view name)
{
    const auto* kind = find_kind(name);
    return kind ? kind->json : std::string_view();
}

std::optional<image::ImageKind> kind_from_json_name(std::string_view json_name)
{
    for (const auto& entry : kKinds)
        if (entry.json == json_name)
            return entry.kind;
    return std::nullopt;
}

Checkpoint::Checkpoint(std::string directory, UniqueFd dir, std::optional<image::Manifest> manifest,
                       std::vector<std::string> files)
    : m_directory(std::move(directory))
    , m_dir(std::move(dir))
    , m_manifest(std::move(manifest))
    , m_files(std::move(files))
{
}

Result<Checkpoint> Checkpoint::open(const std::string& directory, Verify verify, const image::Key* key)
{
    auto from_reader = [&](const image::ImageReader& reader) -> Result<Checkpoint> {
        std::vector<std::string> files;
        for (const auto& file : reader.manifest().files())
            files.push_back(file.name());
        UniqueFd dir = TRY(cryo::open_file(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        Checkpoint checkpoint(directory, std::move(dir), reader.manifest(), std::move(files));
        if (key)
            checkpoint.m_key.emplace(*key);
        if (reader.manifest().has_encryption()) {
            image::CheckpointId id;
            std::memcpy(id.data(), reader.manifest().encryption().checkpoint_id().data(), id.size());
            checkpoint.m_checkpoint_id = id;
        }
        return checkpoint;
    };
    if (verify == Verify::Checksums) {
        auto reader = TRY(image::ImageReader::open(directory, key));
        TRY(reader.verify());
        return from_reader(reader);
    }
    UniqueFd dir = TRY(cryo::open_file(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    auto reader = image::ImageReader::open(directory, key);
    if (reader)
        return from_reader(*reader);
    // Forensics of a checkpoint without a usable manifest: take what is there.
    fmt::print(stderr, "cryo: warning: {}; reading the files found in {} unverified\n", reader.error().message(),
               directory);
    auto files = TRY(list_directory(dir.get(), directory));
    Checkpoint checkpoint(directory, std::move(dir), std::nullopt, std::move(files));
    if (key)
        checkpoint.m_key.emplace(*key);
    return checkpoint;
}

const image::ManifestFile* Checkpoint::record(const std::string& name) const
{
    if (!m_manifest)
        return nullptr;
    for (const auto& file : m_manifest->files())
        if (file.name() == name)
            return &file;
    return nullptr;
}

Result<std::pair<UniqueFd, uint64_t>> Checkpoint::open_file(const std::string& name) const
{
    if (!image::is_safe_image_name(name))
        return fail("{}/{}: not a valid image file name", m_directory, name);
    UniqueFd fd = TRY_CTX(open_file_at(m_dir.get(), name, kOpenFlags), "{}", m_directory);
    struct stat st;
    if (::fstat(fd.get(), &st) < 0)
        return fail_errno(fmt::format("stat {}", path(name)));
    if (!S_ISREG(st.st_mode))
        return fail("{} is not a regular file", path(name));
    return std::pair { std::move(fd), static_cast<uint64_t>(st.st_size) };
}

bool Checkpoint::has_file(const std::string& name) const
{
    return std::ranges::find(m_files, name) != m_files.end();
}

Result<std::string> Checkpoint::read_bytes(const std::string& name, uint64_t limit) const
{
    auto [fd, size] = TRY(open_file(name));
    image::ReadKeys keys { m_key ? &*m_key : nullptr, m_checkpoint_id ? &*m_checkpoint_id : nullptr };
    // The manifest is read as the image reader reads it (sealed or not).
    if (name == image::kManifestName && m_manifest) {
        std::optional<image::CheckpointId> id;
        std::string bytes;
        TRY(image::read_manifest(m_dir.get(), m_directory, keys.key, id, &bytes));
        return bytes;
    }
    const auto* file = record(name);
    if (m_key || (file && image::is_transformed(*file)))
        return TRY_CTX(image::decode_to_string(fd.get(), size, name, file, keys, limit), "{}", path(name));
    if (size > limit)
        return fail("{} is {} bytes, larger than any valid image ({} bytes)", path(name), size, limit);
    std::string bytes(static_cast<size_t>(size), '\0');
    TRY(pread_exact(fd.get(), std::as_writable_bytes(std::span(bytes.data(), bytes.size())), 0, path(name)));
    return bytes;
}

Result<void> Checkpoint::read_message(const std::string& name, image::ImageKind kind,
                                      google::protobuf::Message& message) const
{
    if (!has_file(name))
        return fail("{}: not in the checkpoint{}", path(name), m_manifest ? " (not listed in the manifest)" : "");
    std::string bytes = TRY(read_bytes(name, image::kMaxPayloadSize + sizeof(image::FileHeader)));
    TRY_CTX(image::decode_image(bytes, kind, message), "{}", path(name));
    return {};
}

Result<UniqueFd> Checkpoint::open_raw(const std::string& name, uint64_t& size) const
{
    if (!image::is_safe_image_name(name))
        return fail("{}/{}: not a valid image file name", m_directory, name);
    if (!has_file(name))
        return fail("{}: not in the checkpoint{}", path(name), m_manifest ? " (not listed in the manifest)" : "");
    auto [fd, stored_size] = TRY(open_file(name));
    image::ReadKeys keys { m_key ? &*m_key : nullptr, m_checkpoint_id ? &*m_checkpoint_id : nullptr };
    const auto* file = record(name);
    if (file && image::is_transformed(*file)) {
        if (stored_size != file->size())
            return fail("{}: size is {} bytes, the manifest says {}", path(name), stored_size, file->size());
        return TRY_CTX(image::decode_to_memfd(fd.get(), stored_size, name, file, keys, size), "{}", path(name));
    }
    if (!file && m_key)   // no manifest: a sealed file says so in its header
        return TRY_CTX(image::decode_to_memfd(fd.get(), stored_size, name, nullptr, keys, size), "{}", path(name));
    size = stored_size;
    return std::move(fd);   // a structured binding is not moved implicitly
}

} // namespace cryo::inspect
