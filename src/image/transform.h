// Transformed checkpoint files: compressed page data (dump --compress) and
// sealed, i.e. encrypted and authenticated, files (dump --encrypt).
//
// Writing, bytes pass through zstd first (page files only: metadata is small
// and mostly unique), then the seal, then to the file; compressing after
// encrypting would gain nothing. The manifest records per file what was
// done (ManifestFile.compression, seal_salt) and the size of the content
// (content_size); an encrypted checkpoint's manifest is sealed too
// (image/reader.h, writer.h).
//
// Reading reverses it as a stream with constant memory: unseal (each chunk
// authenticated before its plaintext goes on), decompress, hand on. Page
// files are decoded whole into a memfd before any process exists: restore
// then fills memory with preadv() from it exactly as from a plain page
// file, and every byte was authenticated before anything started.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "base/error.h"
#include "base/fd.h"
#include "image/compress.h"
#include "image/key.h"
#include "image/seal.h"
#include "manifest.pb.h"

namespace cryo::image {

// What a writer applies to the files of a checkpoint.
struct WriteTransforms {
    int compression_level { 0 };   // zstd level of page files; 0: not compressed
    std::optional<Key> key;        // every file sealed when set
};

enum class Content { PageData, Metadata };

// The encoder of one file.
class FileEncoder {
public:
    // Nothing to do for this file: no encoder is needed.
    static bool needed(const WriteTransforms& transforms, Content content);
    static Result<std::unique_ptr<FileEncoder>> create(const WriteTransforms& transforms,
                                                      const CheckpointId& checkpoint_id, Content content,
                                                      const std::string& name, ByteSink out);
    ~FileEncoder();
    Result<void> write(std::span<const std::byte> data);
    // Flushes everything and notes in `record` what was done.
    Result<void> finish(ManifestFile& record);

private:
    FileEncoder() = default;
    std::unique_ptr<ZstdWriter> m_zstd;
    std::unique_ptr<SealWriter> m_seal;
    ByteSink m_out;
};

// What a reader knows to decode files: the user's key (none: a sealed file
// is refused) and the checkpoint id its manifest gave.
struct ReadKeys {
    const Key* key { nullptr };
    const CheckpointId* checkpoint_id { nullptr };
};

bool is_transformed(const ManifestFile& record);
// The size of a file's content once decoded.
uint64_t content_size(const ManifestFile& record);

// Decodes the `size` stored bytes at `fd` as `record` describes them
// (nullptr: a file no manifest describes, unsealed if its header says it
// is sealed, else passed on as it is), handing the content to `out`. Errors
// do not name the file: the caller adds its path.
Result<void> decode_file(int fd, uint64_t size, const std::string& name, const ManifestFile* record,
                         const ReadKeys& keys, const ByteSink& out);
// The decoded content in memory, refused beyond `limit` bytes.
Result<std::string> decode_to_string(int fd, uint64_t size, const std::string& name, const ManifestFile* record,
                                     const ReadKeys& keys, uint64_t limit);
// The decoded content of a page file in a new memfd (not close-on-exec: a
// restorer inherits it as it would the page file), of exactly
// content_size(*record) bytes when there is a record. `content_size` is set
// to the size of the content.
Result<UniqueFd> decode_to_memfd(int fd, uint64_t size, const std::string& name, const ManifestFile* record,
                                 const ReadKeys& keys, uint64_t& content_size);

} // namespace cryo::image
