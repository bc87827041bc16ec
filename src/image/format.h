// The on-disk format of a checkpoint directory (format v1).
//
// Every metadata file is a 32-byte header followed by one serialized protobuf
// message. The header carries a magic, the kind of the file, the format
// version and the size and XXH3 checksum of the payload, so a reader can
// refuse a truncated, mislabelled or corrupted file before parsing it. Page
// data is stored raw in separate page-aligned files without a header; the
// manifest, written last, holds the size and checksum of every file.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cryo::image {

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr char kMagic[4] = { 'C', 'R', 'Y', 'O' };

// The largest metadata payload a reader accepts. Real images are far smaller;
// the bound keeps a hostile header from making us allocate gigabytes.
inline constexpr uint64_t kMaxPayloadSize = 256ull << 20;
// Bytes per checksummed chunk of an untransformed page file
// (ManifestFile.chunk_xxh3); readers accept any power of two from 4 KiB to
// 64 MiB.
inline constexpr uint32_t kPageChunkSize = 1u << 20;
inline constexpr uint32_t kMinPageChunkSize = 4096;
inline constexpr uint32_t kMaxPageChunkSize = 64u << 20;

enum class ImageKind : uint32_t {
    Manifest = 0x4e414d, // "MAN"
    Tree = 0x455254,     // "TRE"
    Core = 0x524f43,     // "COR"
    Memory = 0x4d4d,     // "MM"
    PageMap = 0x50414d50, // "PMAP"
    FdTable = 0x534446,  // "FDS"
    FileTable = 0x454c4946, // "FILE"
    Stats = 0x54415453,  // "STAT"
    DedupJournal = 0x50444544, // "DEDP"
};

std::string_view kind_name(ImageKind kind);

struct FileHeader {
    char magic[4];
    uint32_t kind;
    uint32_t version;
    uint32_t reserved;
    uint64_t payload_size;
    uint64_t payload_xxh3;
};
static_assert(sizeof(FileHeader) == 32);

// File names inside an image directory.
inline constexpr std::string_view kManifestName = "manifest.img";
inline constexpr std::string_view kTreeName = "tree.img";
inline constexpr std::string_view kDumpStatsName = "stats-dump.img";
inline constexpr std::string_view kRestoreStatsName = "stats-restore.img";
inline constexpr std::string_view kFileTableName = "files.img";
inline constexpr std::string_view kStatsName = "stats.img";
std::string core_name(int pid);
std::string memory_name(int pid);
std::string pagemap_name(int pid);
std::string pages_name(int pid);
std::string fdtable_name(int pid);

// A name listed in a manifest must be a plain file name: no directories, no
// "..", nothing that could make a reader open a file outside the directory.
bool is_safe_image_name(std::string_view name);

} // namespace cryo::image
