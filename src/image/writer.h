// Writing a checkpoint directory.
//
// Files are created 0600 (they hold process memory and may hold secrets) and
// hashed while they are written. commit() makes them all durable at once
// (fdatasync of each after starting the writeback of all, or one syncfs()
// for many files), writes the manifest under a temporary name (fdatasync),
// renames it into place and fsyncs the directory: once it is there, every
// file it lists is on disk, and a directory without a manifest is never
// mistaken for a checkpoint. A writer dropped without commit() removes every
// file it created, so a failed dump leaves no half image behind.
#pragma once

#include <xxhash.h>

#include <memory>
#include <span>
#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "base/error.h"
#include "base/fd.h"
#include "image/format.h"
#include "manifest.pb.h"

namespace cryo::image {

enum class SyncMode { Fsync, NoSync };

// One file being written: appends bytes, keeps their size and checksum.
class OutputFile {
public:
    Result<void> write(std::span<const std::byte> data);
    uint64_t size() const { return m_size; }
    int fd() const { return m_fd.get(); }
    const std::string& name() const { return m_name; }

private:
    friend class ImageWriter;
    struct HashStateDeleter {
        void operator()(XXH3_state_t* state) const { XXH3_freeState(state); }
    };
    OutputFile(std::string name, UniqueFd fd);

    std::string m_name;
    UniqueFd m_fd;
    uint64_t m_size { 0 };
    std::unique_ptr<XXH3_state_t, HashStateDeleter> m_hash;
};

class ImageWriter {
public:
    static Result<ImageWriter> create(const std::string& directory, SyncMode sync);
    ImageWriter(ImageWriter&&) noexcept;
    ImageWriter& operator=(ImageWriter&&) = delete;
    ~ImageWriter();

    Result<OutputFile> create_file(const std::string& name);
    // Flushes the file and records it for the manifest.
    Result<void> finish_file(OutputFile&& file);
    Result<void> write_message(const std::string& name, ImageKind kind,
                               const google::protobuf::Message& message);

    // Writes the manifest: the checkpoint is complete once this returns.
    Result<void> commit(Manifest manifest);

    const std::string& directory() const { return m_directory; }
    int directory_fd() const { return m_dir.get(); }
    uint64_t total_bytes() const;

private:
    ImageWriter(std::string directory, UniqueFd dir, SyncMode sync, bool created_directory);
    void remove_created_files();

    std::string m_directory;
    UniqueFd m_dir;
    SyncMode m_sync;
    bool m_created_directory;
    bool m_committed { false };
    std::vector<std::string> m_created;
    std::vector<ManifestFile> m_records;
};

// Serializes `message` behind a header of the given kind.
Result<std::string> encode_image(ImageKind kind, const google::protobuf::Message& message);

} // namespace cryo::image
