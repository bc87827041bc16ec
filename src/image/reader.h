// Reading a checkpoint directory.
//
// open() reads and checks the manifest; verify() checks that every file it
// lists is there with the recorded size and checksum, so a truncated or
// corrupted checkpoint is refused before anything is restored. Metadata reads
// check the header (magic, kind, version, size, payload checksum) again and
// only read files the manifest lists. Every error names the file.
#pragma once

#include <functional>
#include <map>
#include <span>
#include <string>

#include <google/protobuf/message.h>

#include "base/error.h"
#include "base/fd.h"
#include "image/format.h"
#include "manifest.pb.h"

namespace cryo::image {

class ImageReader {
public:
    static Result<ImageReader> open(const std::string& directory);

    // Checks size and checksum of every file the manifest lists (of those
    // `include` accepts, when given).
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

    // Opens a raw (page) file listed in the manifest, checking its size.
    Result<UniqueFd> open_raw(const std::string& name) const;
    bool has_file(const std::string& name) const { return m_files.contains(name); }
    uint64_t file_size(const std::string& name) const;
    // The manifest's record of a file; null when it is not listed.
    const ManifestFile* listed(const std::string& name) const;

    const Manifest& manifest() const { return m_manifest; }
    const std::string& directory() const { return m_directory; }
    int directory_fd() const { return m_dir.get(); }

private:
    ImageReader(std::string directory, UniqueFd dir, Manifest manifest);

    std::string m_directory;
    UniqueFd m_dir;
    Manifest m_manifest;
    std::map<std::string, const ManifestFile*> m_files;
};

// XXH3-64 of the first `size` bytes of `fd`, read through `buffer` (which
// must not be empty); `path` names the file in errors.
Result<uint64_t> file_xxh3(int fd, uint64_t size, std::span<std::byte> buffer, const std::string& path);

// Parses header + payload of a metadata file held in memory.
Result<void> decode_image(std::string_view bytes, ImageKind kind, google::protobuf::Message& message);

} // namespace cryo::image
