// cryo-fuzz-seed CHECKPOINT CORPUS TAG: puts the files of a real checkpoint
// into the seed corpus of every fuzz target (CORPUS/<target>/TAG-...):
//  - each metadata image as it is, into fuzz_image_<kind>;
//  - the whole directory as one packed input (fuzz_support.h) into
//    fuzz_checkpoint_dir, page files cut to kSeedPageBytes (their page maps
//    keep the runs that still fit, the manifest is updated to match), so the
//    seed stays small enough to mutate quickly;
//  - per process, mm + page map + page file (cut the same way) into
//    fuzz_page_map;
//  - the `cryo decode` document of the checkpoint, and one per image, into
//    fuzz_json_encode (those up to kSeedDocumentBytes).
// The checkpoint is verified first (manifest and every checksum).
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <map>
#include <string>

#include "fuzz_support.h"
#include "image/reader.h"
#include "image/writer.h"
#include "inspect/checkpoint.h"
#include "inspect/codec.h"
#include "mm.pb.h"

namespace {

using namespace cryo;

constexpr uint64_t kSeedPageBytes = 16 << 10;
constexpr size_t kSeedDocumentBytes = 64 << 10;

std::string target_of(image::ImageKind kind)
{
    switch (kind) {
    case image::ImageKind::Tree: return "fuzz_image_tree";
    case image::ImageKind::Core: return "fuzz_image_core";
    case image::ImageKind::Memory: return "fuzz_image_mm";
    case image::ImageKind::PageMap: return "fuzz_image_pagemap";
    case image::ImageKind::FdTable: return "fuzz_image_fds";
    case image::ImageKind::FileTable: return "fuzz_image_files";
    case image::ImageKind::Manifest: return "fuzz_image_manifest";
    case image::ImageKind::Stats: return "fuzz_image_stats";
    }
    return "unknown";
}

Result<void> put(const std::string& corpus, const std::string& target, const std::string& name, std::string_view bytes)
{
    std::string directory = corpus + "/" + target;
    ::mkdir(corpus.c_str(), 0755);
    ::mkdir(directory.c_str(), 0755);
    std::ofstream out(directory + "/" + name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out)
        return fail("cannot write {}/{}", directory, name);
    return {};
}

Result<std::string> read_whole(const image::ImageReader& reader, const std::string& name)
{
    auto fd = TRY(reader.open_raw(name));
    std::string bytes(reader.file_size(name), '\0');
    TRY(pread_exact(fd.get(), std::as_writable_bytes(std::span(bytes.data(), bytes.size())), 0, name));
    return bytes;
}

// The page map with only the runs inside the first `limit` bytes of its
// page file.
image::PageMap cut(image::PageMap map, uint64_t limit)
{
    google::protobuf::RepeatedPtrField<image::PageRun> kept;
    for (const auto& run : map.runs())
        if (run.file_offset() <= limit && run.page_count() <= (limit - run.file_offset()) / 4096)
            *kept.Add() = run;
    *map.mutable_runs() = std::move(kept);
    return map;
}

Result<void> seed(const std::string& checkpoint, const std::string& corpus, const std::string& tag)
{
    auto reader = TRY(image::ImageReader::open(checkpoint));
    TRY(reader.verify());

    std::map<std::string, std::string> files;   // name -> bytes, as they go into the packed seed
    {
        std::ifstream in(checkpoint + "/" + std::string(image::kManifestName), std::ios::binary);
        files[std::string(image::kManifestName)] = std::string(std::istreambuf_iterator<char>(in), {});
    }
    for (const auto& file : reader.manifest().files())
        files[file.name()] = TRY(read_whole(reader, file.name()));

    for (const auto& [name, bytes] : files) {
        auto kind = name.starts_with("stats") ? std::optional(image::ImageKind::Stats) : inspect::metadata_kind(name);
        if (kind)
            TRY(put(corpus, target_of(*kind), tag + "-" + name, bytes));
    }

    // Page files cut short, their page maps to match; per process, the
    // memory seed.
    for (const auto& file : reader.manifest().files()) {
        if (inspect::metadata_kind(file.name()) != image::ImageKind::PageMap)
            continue;
        std::string pid = file.name().substr(std::string("pagemap-").size());
        pid.resize(pid.size() - 4);
        auto map = TRY(reader.read<image::PageMap>(file.name(), image::ImageKind::PageMap));
        auto memory = TRY(reader.read<image::MemoryImage>("mm-" + pid + ".img", image::ImageKind::Memory));
        std::string& pages = files[map.page_file()];
        if (pages.size() > kSeedPageBytes)
            pages.resize(kSeedPageBytes);
        map = cut(std::move(map), pages.size());
        files[file.name()] = TRY(image::encode_image(image::ImageKind::PageMap, map));
        fuzz::Pack memory_seed;
        memory_seed.files.push_back({ "mm", memory.SerializeAsString() });
        memory_seed.files.push_back({ "pagemap", map.SerializeAsString() });
        memory_seed.files.push_back({ "pages", pages });
        TRY(put(corpus, "fuzz_page_map", tag + "-" + pid, fuzz::pack(memory_seed)));
    }
    fuzz::Pack directory;
    for (auto& [name, bytes] : files)
        directory.files.push_back({ name, bytes });
    fuzz::fix_manifest(directory.files);
    directory.flags = 0;
    TRY(put(corpus, "fuzz_checkpoint_dir", tag, fuzz::pack(directory)));
    directory.flags = fuzz::kFixHeaders | fuzz::kFixManifest | fuzz::kInspect;
    TRY(put(corpus, "fuzz_checkpoint_dir", tag + "-inspect", fuzz::pack(directory)));
    directory.flags |= fuzz::kDiff;
    TRY(put(corpus, "fuzz_checkpoint_dir", tag + "-diff", fuzz::pack(directory)));

    // Documents larger than kSeedDocumentBytes (a pipe's queued data, say)
    // would only slow the fuzzer down.
    auto document = [&](const std::string& name, const std::string& image) -> Result<void> {
        std::string json = TRY(inspect::decode_to_json({ .directory = checkpoint, .image = image }));
        if (json.size() <= kSeedDocumentBytes)
            TRY(put(corpus, "fuzz_json_encode", name, json));
        return {};
    };
    TRY(document(tag + ".json", ""));
    for (const auto& [name, bytes] : files)
        if (inspect::metadata_kind(name))
            TRY(document(tag + "-" + name + ".json", name));
    return {};
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 4) {
        std::fprintf(stderr, "usage: cryo-fuzz-seed CHECKPOINT CORPUS TAG\n");
        return 2;
    }
    cryo::fuzz::quiet();
    auto result = seed(argv[1], argv[2], argv[3]);
    if (!result) {
        std::fprintf(stderr, "cryo-fuzz-seed: %s\n", result.error().message().c_str());
        return 1;
    }
    return 0;
}
