// Reading a checkpoint directory.
//
// open() reads and checks the manifest; verify() checks that every file it
// lists is there with the recorded size and checksum, so a truncated or
// corrupted checkpoint is refused before anything is restored. Metadata reads
// check the header (magic, kind, version, size, payload checksum) again and
// only read files the manifest lists. Every error names the file.
//
// An encrypted checkpoint (its manifest.img is sealed, image/seal.h) is only
// opened with its key, and a key given for a checkpoint that is not
// encrypted is refused (it could be a plain checkpoint put in place of the
// encrypted one). Reads then authenticate and decrypt every file; page files
// that are compressed or sealed are decoded whole into a memfd by
// open_raw(), so callers see their content exactly as for a plain file.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "base/error.h"
#include "base/fd.h"
#include "image/format.h"
#include "image/key.h"
#include "image/seal.h"
#include "image/transform.h"
#include "manifest.pb.h"

namespace cryo::image {

class ImageReader {
public:
    static Result<ImageReader> open(const std::string& directory, const Key* key = nullptr);

    // Checks size and checksum of every file the manifest lists (as stored;
    // of those `include` accepts, when given), and that each sealed file
    // belongs to this checkpoint and is the version the manifest lists.
    // Content is authenticated when it is read.
    Result<void> verify(const std::function<bool(const std::string&)>& include = {}) const;

    Result<void> read_message(const std::string& name, ImageKind kind,
                              google::protobuf::Message& message) const;
    template <typename Message>
    Result<Message> read(const std::string& name, ImageKind kind) const
    {
        Message message;
        TRY(read_message(name, kind, message));
        return message;
    }

    // Opens a raw (page) file listed in the manifest, checking its size; a
    // transformed one is decoded (and authenticated) into a memfd first.
    Result<UniqueFd> open_raw(const std::string& name) const;
    bool has_file(const std::string& name) const { return m_files.contains(name); }
    // The size of a file's content (once decoded).
    uint64_t file_size(const std::string& name) const;
    // The manifest's record of a file; null when it is not listed.
    const ManifestFile* listed(const std::string& name) const;
    // The whole content of a listed file, decoded; refused beyond `limit`.
    Result<std::string> read_content(const std::string& name, uint64_t limit) const;
    bool encrypted() const { return m_checkpoint_id.has_value(); }

    const Manifest& manifest() const { return m_manifest; }
    const std::string& directory() const { return m_directory; }
    int directory_fd() const { return m_dir.get(); }

private:
    ImageReader(std::string directory, UniqueFd dir, Manifest manifest);
    ReadKeys keys() const;
    Result<void> check_seal_header(int fd, const ManifestFile& file) const;

    std::string m_directory;
    UniqueFd m_dir;
    Manifest m_manifest;
    std::map<std::string, const ManifestFile*> m_files;
    std::optional<Key> m_key;
    std::optional<CheckpointId> m_checkpoint_id;   // of an encrypted checkpoint
};

// Reads and checks DIR/manifest.img: sealed ones are opened with `key`
// (refused without one), plain ones refused when a key is given. Fills
// `checkpoint_id` for an encrypted checkpoint, and `content` (when given)
// with the manifest's plain bytes. `directory` names it in errors.
Result<Manifest> read_manifest(int dir_fd, const std::string& directory, const Key* key,
                               std::optional<CheckpointId>& checkpoint_id, std::string* content = nullptr);

// XXH3-64 of the first `size` bytes of `fd`, read through `buffer` (which
// must not be empty); `path` names the file in errors.
Result<uint64_t> file_xxh3(int fd, uint64_t size, std::span<std::byte> buffer, const std::string& path);

// Checks chunk `index` of `record`'s file (open as `fd`, `path` in errors)
// against its chunk checksum (ManifestFile.chunk_xxh3), read through
// `buffer` (grown to the chunk size).
Result<void> verify_chunk(int fd, const ManifestFile& record, uint64_t index, std::vector<std::byte>& buffer,
                          const std::string& path);

// Parses header + payload of a metadata file held in memory.
Result<void> decode_image(std::string_view bytes, ImageKind kind, google::protobuf::Message& message);

} // namespace cryo::image
