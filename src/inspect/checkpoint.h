// Read-only access to a checkpoint directory for the inspection commands
// (decode, mem, diff), which read files that may be truncated, corrupted or
// hostile.
//
// By default a checkpoint is opened like a restore opens it: the manifest is
// checked and every file it lists is verified (size and XXH3) before
// anything is parsed. With Verify::Skip (the commands' --no-verify, for the
// forensics of a damaged checkpoint) the manifest checks are skipped and a
// missing or unreadable manifest is tolerated: the files are then found by
// listing the directory. Every metadata file still has its header checked
// (magic, kind, version, size, payload checksum) before it is parsed, every
// read is bounded, and a file is opened without following symlinks and
// without blocking on a FIFO. Every error names the file.
//
// An encrypted checkpoint needs its key (the commands' --key): every file is
// then authenticated and decrypted as it is read, and page files that are
// compressed or sealed are decoded into a memfd by open_raw(). Without a
// manifest (Verify::Skip), a sealed file is recognised by its header.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "base/error.h"
#include "base/fd.h"
#include "image/format.h"
#include "image/key.h"
#include "image/seal.h"
#include "manifest.pb.h"

namespace cryo::inspect {

enum class Verify { Checksums, Skip };

// The kind of metadata a file name holds ("tree.img", "core-12.img",
// "stats-dump.img", ...), or nothing for page files and names cryo does not
// know. Both statistics files have the header kind Stats.
std::optional<image::ImageKind> metadata_kind(std::string_view name);
// A new, empty message of the type the metadata file `name` holds (nullptr
// for a name metadata_kind() does not know).
std::unique_ptr<google::protobuf::Message> new_message(std::string_view name);
// The short name used in JSON documents for what the file `name` holds
// ("tree", "core", "stats-dump", ...; empty for an unknown name), and the
// header kind of such a short name.
std::string_view json_kind_name(std::string_view name);
std::optional<image::ImageKind> kind_from_json_name(std::string_view json_name);

class Checkpoint {
public:
    static Result<Checkpoint> open(const std::string& directory, Verify verify, const image::Key* key = nullptr);

    const std::string& directory() const { return m_directory; }
    // The manifest, unless it was missing or unreadable under Verify::Skip.
    const std::optional<image::Manifest>& manifest() const { return m_manifest; }
    // Every file of the checkpoint but the manifest: as the manifest lists
    // them, or the directory's regular files when there is no manifest.
    const std::vector<std::string>& files() const { return m_files; }
    bool has_file(const std::string& name) const;
    std::string path(const std::string& name) const { return m_directory + "/" + name; }

    // The whole content of a file (decoded), refused when larger than `limit`.
    Result<std::string> read_bytes(const std::string& name, uint64_t limit) const;
    Result<void> read_message(const std::string& name, image::ImageKind kind, google::protobuf::Message& message) const;
    template <typename Message>
    Result<Message> read(const std::string& name, image::ImageKind kind) const
    {
        Message message;
        TRY(read_message(name, kind, message));
        return message;
    }
    // Opens a raw file (a page file) for bounded reads; `size` is its size
    // (of the content: a transformed file is decoded into a memfd).
    Result<UniqueFd> open_raw(const std::string& name, uint64_t& size) const;

private:
    Checkpoint(std::string directory, UniqueFd dir, std::optional<image::Manifest> manifest,
               std::vector<std::string> files);
    // The manifest's record of a file, if there is a manifest and it lists it.
    const image::ManifestFile* record(const std::string& name) const;
    Result<std::pair<UniqueFd, uint64_t>> open_file(const std::string& name) const;

    std::string m_directory;
    UniqueFd m_dir;
    std::optional<image::Manifest> m_manifest;
    std::vector<std::string> m_files;
    std::optional<image::Key> m_key;
    std::optional<image::CheckpointId> m_checkpoint_id;
};

} // namespace cryo::inspect
