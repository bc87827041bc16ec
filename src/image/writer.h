// Writing a checkpoint directory.
//
// Files are created 0600 (they hold process memory and may hold secrets) and
// hashed while they are written. commit() writes the manifest under a
// temporary name, makes it and them all durable at once (fdatasync of each
// after starting the writeback of all, or one syncfs() for many files),
// renames it into place and fsyncs the directory: once it is there, every
// file it lists is on disk, and a directory without a manifest is never
// mistaken for a checkpoint. A writer dropped without commit() removes every
// file it created, so a failed dump leaves no half image behind.
//
// With transforms (image/transform.h) page files are compressed and every
// file is sealed as it is written; the manifest then records what was done
// and, for an encrypted checkpoint, is sealed itself.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "base/error.h"
#include "base/fd.h"
#include "image/format.h"
#include "image/sink.h"
#include "image/transform.h"
#include "manifest.pb.h"

namespace cryo::image {

enum class SyncMode { Fsync, NoSync };

// One file being written: appends bytes, keeps their size and checksum.
class OutputFile {
public:
    OutputFile(OutputFile&&) noexcept;
    OutputFile& operator=(OutputFile&&) noexcept;
    ~OutputFile();

    Result<void> write(std::span<const std::byte> data);
    // write() in two halves, for a file written on one thread while the
    // bytes are still in the cache of another (mem/page_writer.h): hash()
    // takes the next bytes into the file's checksums, write_hashed() stores
    // bytes hash() took, in the same order. Only when is_raw().
    void hash(std::span<const std::byte> data);
    Result<void> write_hashed(std::span<const std::byte> data);
    // Bytes written so far: offsets in the content, which is what readers
    // see (the stored file differs when it is transformed).
    uint64_t size() const { return m_size; }
    int fd() const;
    const std::string& name() const;
    // The bytes written go to the file as they are (no compression, no
    // encryption): only then may a caller write to fd() itself or change
    // how it is written (O_DIRECT).
    bool is_raw() const { return !m_encoder; }
    // Counts bytes that someone else already wrote at the end of fd() (the
    // page server splices them there from its socket, so they never pass
    // through cryo's memory): `written` must be those bytes as the file
    // now holds them, read back from it (a read-only mapping of the page
    // cache). They are hashed, chunked and counted exactly as write()
    // would have done, without being written again; the next write()
    // goes after them, so the writer must have advanced the descriptor's
    // position past them (splice(2) with no offset does). Only for a raw
    // file of a local directory, and fd() must then hold exactly size()
    // plus these bytes: an error otherwise, and nothing counted.
    Result<void> account_written(std::span<const std::byte> written);

private:
    friend class ImageWriter;
    struct Stored;
    OutputFile(std::unique_ptr<Stored> stored, std::unique_ptr<FileEncoder> encoder);

    std::unique_ptr<Stored> m_stored;   // on the heap: the encoder writes to it
    std::unique_ptr<FileEncoder> m_encoder;
    uint64_t m_size { 0 };
};

class ImageWriter {
public:
    static Result<ImageWriter> create(const std::string& directory, SyncMode sync, WriteTransforms transforms = {});
    // Every file goes to `sink` instead of a local directory (--page-server).
    static Result<ImageWriter> create_remote(std::unique_ptr<ImageSink> sink, WriteTransforms transforms = {});
    ImageWriter(ImageWriter&&) noexcept;
    ImageWriter& operator=(ImageWriter&&) = delete;
    ~ImageWriter();

    // A page file (compressed when the transforms say so).
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
    // The files written so far, as the manifest will list them. A page
    // server replaces them with the client's own records once it has
    // checked that they match (same names, sizes and checksums).
    const std::vector<ManifestFile>& records() const { return m_records; }
    void set_records(std::vector<ManifestFile> records) { m_records = std::move(records); }

private:
    ImageWriter(std::string directory, UniqueFd dir, SyncMode sync, bool created_directory);
    void remove_created_files();
    Result<OutputFile> create_file_of(const std::string& name, Content content);

    std::string m_directory;
    UniqueFd m_dir;
    SyncMode m_sync;
    bool m_created_directory;
    bool m_committed { false };
    std::vector<std::string> m_created;
    std::vector<ManifestFile> m_records;
    WriteTransforms m_transforms;
    CheckpointId m_checkpoint_id {};
    std::unique_ptr<ImageSink> m_remote;   // set: files go there, not to m_dir
};

// Replaces `directory`/`name` (the directory open as `dir_fd`) with
// `bytes`: written to a temporary name (0600, fsynced), then renamed over
// it. The caller fsyncs the directory once it has replaced its files.
Result<void> write_file_atomically(int dir_fd, const std::string& directory, const std::string& name,
                                   std::string_view bytes);

// Serializes `message` behind a header of the given kind.
Result<std::string> encode_image(ImageKind kind, const google::protobuf::Message& message);

} // namespace cryo::image
