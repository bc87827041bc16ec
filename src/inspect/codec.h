// `cryo decode` and `cryo encode`: the metadata images of a checkpoint as
// one JSON document, and back.
//
// The document holds, per metadata image (manifest included), its file name,
// its header's kind and format version, and its protobuf message as JSON
// (protobuf's printer, field names as in the .proto files, default values
// printed so that documents of two checkpoints compare line by line). Page
// files are not in it: they are listed by name, size and checksum only and
// stay in the directory untouched.
//
//   {
//     "cryo_json": 1,
//     "checkpoint": "/path/of/the/directory",
//     "images": [
//       { "name": "tree.img", "kind": "tree", "version": 1, "message": { ... } },
//       ...
//       { "name": "manifest.img", "kind": "manifest", "version": 1, "message": { ... } }
//     ],
//     "raw_files": [ { "name": "pages-12.img", "size": "8192", "xxh3": "..." } ]
//   }
//
// Encoding serializes each message again behind a fresh header. Protobuf
// writes fields in field-number order, so an unedited document gives back
// byte-identical files (decode checks this for every image and warns when an
// image would not survive, e.g. fields unknown to this cryo). The manifest's
// size and checksum of every file encode writes are recomputed; the other
// files it lists (page files, images left out of the document) must be in the
// target directory as the manifest describes them, and are checked first.
#pragma once

#include <optional>
#include <string>

#include "base/error.h"
#include "inspect/checkpoint.h"

namespace cryo::inspect {

struct DecodeOptions {
    std::string directory;
    std::string image;    // one image only (its file name); empty: all
    std::string output;   // empty or "-": stdout
    Verify verify { Verify::Checksums };
    std::optional<image::Key> key;   // --key: of an encrypted checkpoint
};

struct EncodeOptions {
    std::string input;    // empty or "-": stdin
    std::string directory;
    Verify verify { Verify::Checksums };   // of the files encode does not write
    // --key: the images of an encrypted checkpoint are sealed again with it
    // (same checkpoint id, fresh salts); the files kept are authenticated.
    std::optional<image::Key> key;
};

// The JSON document of a checkpoint (all images, or only options.image).
Result<std::string> decode_to_json(const DecodeOptions& options);
Result<void> run_decode(const DecodeOptions& options);

// One encoded image file (header + payload), from a document entry.
struct EncodedImage {
    std::string name;
    image::ImageKind kind;
    std::string bytes;
};
// Parses a document and encodes every image in it (no file is written).
Result<std::vector<EncodedImage>> encode_from_json(std::string_view document);
Result<void> run_encode(const EncodeOptions& options);

} // namespace cryo::inspect
