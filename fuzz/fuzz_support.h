// Shared by the libFuzzer targets of fuzz/ and by cryo-fuzz-seed, which
// turns real checkpoints into their seed corpus.
//
// Several targets take a set of files as input. It is packed as
//
//     flags (1 byte), then per file: name length (1 byte), name,
//     data length (4 bytes, little-endian), data
//
// and unpacked leniently: a name that is not a plain image file name is
// skipped, input that ends early ends the list, at most kMaxPackedFiles.
// The flags byte tells the target which checks to repair before it reads
// (see fix_header and fix_manifest): a mutated byte breaks the XXH3
// checksums that guard every file, so without repairs the fuzzer would
// never get past them to the parsers and checks behind.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cryo::fuzz {

inline constexpr size_t kMaxPackedFiles = 64;

enum PackFlags : uint8_t {
    kFixHeaders = 1,    // recompute payload size and XXH3 of every metadata header
    kFixManifest = 2,   // the manifest's size and XXH3 of every file it lists
    kInspect = 4,       // also run show, decode and mem on the directory
    kDiff = 8,          // and diff of the directory with itself
};

struct PackedFile {
    std::string name;
    std::string data;
};

struct Pack {
    uint8_t flags { 0 };
    std::vector<PackedFile> files;
};

Pack unpack(std::span<const uint8_t> input);
std::string pack(const Pack& pack);

// A metadata file with its header's payload size and checksum recomputed
// (magic, kind and version are left as they are); unchanged when shorter
// than a header.
std::string fix_header(std::string bytes);
// Sets the size and checksum the manifest (files[i] named manifest.img, if
// it parses) records for every file of the pack that it lists.
void fix_manifest(std::vector<PackedFile>& files);

// A directory of its own for this fuzzing process (in /dev/shm when there
// is one), emptied and filled again for every input.
class ScratchDir {
public:
    ScratchDir();
    ~ScratchDir();
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;

    const std::string& path() const { return m_path; }
    void clear();
    void write(const std::string& name, std::string_view data);

private:
    std::string m_path;
};

// Protobuf's error log (invalid UTF-8, ...) and cryo's warnings off: the
// fuzzer's output is for findings.
void quiet();

} // namespace cryo::fuzz
