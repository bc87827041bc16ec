// libFuzzer target: the checks a page map goes through before memory is
// read through it, by `cryo restore` (image/validate.h, before any process
// exists) and by `cryo mem`/`cryo diff` (inspect::ProcessMemory::load).
//
// The input is a set of files (fuzz_support.h): "mm" and "pagemap", the
// protobuf payloads of mm-PID.img and pagemap-PID.img, and "pages", the
// page file. They are checked as restore checks them, then written as a
// complete checkpoint of pid 7 (valid headers and manifest) and loaded as
// `cryo mem` loads it; every mapping is then cut into segments and read,
// and the stored memory searched. Invariants: whatever restore's checks
// accept, ProcessMemory::load accepts too, and no read of a loaded process
// fails (every run was checked against the page file).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_support.h"
#include "image/reader.h"
#include "image/validate.h"
#include "image/writer.h"
#include "inspect/checkpoint.h"
#include "inspect/memory.h"
#include "mm.pb.h"

namespace {

using namespace cryo;

constexpr int kPid = 7;
fuzz::ScratchDir* g_scratch = nullptr;

const std::string* find(const fuzz::Pack& input, std::string_view name)
{
    for (const auto& file : input.files)
        if (file.name == name)
            return &file.data;
    return nullptr;
}

Result<void> write_checkpoint(const std::string& directory, const image::MemoryImage& memory,
                              const image::PageMap& map, const std::string& pages)
{
    auto writer = TRY(image::ImageWriter::create(directory, image::SyncMode::NoSync));
    TRY(writer.write_message(image::memory_name(kPid), image::ImageKind::Memory, memory));
    TRY(writer.write_message(image::pagemap_name(kPid), image::ImageKind::PageMap, map));
    auto file = TRY(writer.create_file(image::pages_name(kPid)));
    TRY(file.write(std::as_bytes(std::span(pages.data(), pages.size()))));
    TRY(writer.finish_file(std::move(file)));
    return writer.commit({});
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***)
{
    fuzz::quiet();
    static fuzz::ScratchDir scratch;
    g_scratch = &scratch;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    auto input = fuzz::unpack(std::span(data, size));
    const std::string* mm_bytes = find(input, "mm");
    const std::string* map_bytes = find(input, "pagemap");
    const std::string* pages = find(input, "pages");
    if (!mm_bytes || !map_bytes || !pages)
        return 0;
    image::MemoryImage memory;
    image::PageMap map;
    if (!memory.ParseFromString(*mm_bytes) || !map.ParseFromString(*map_bytes))
        return 0;

    // What restore checks (restore.cpp, read_process).
    bool restore_accepts = image::check_mappings(memory) && image::check_page_map(map, map.page_file(), pages->size())
        && image::check_runs_in_mappings(map, memory);

    // What `cryo mem` loads.
    g_scratch->clear();
    if (!write_checkpoint(g_scratch->path(), memory, map, *pages))
        return 0;
    auto checkpoint = inspect::Checkpoint::open(g_scratch->path(), inspect::Verify::Checksums);
    if (!checkpoint)
        std::abort();   // just written by the ImageWriter
    auto loaded = inspect::ProcessMemory::load(*checkpoint, kPid);
    bool named_as_restore_wants = map.page_file() == image::pages_name(kPid) || map.runs_size() == 0;
    if (restore_accepts && named_as_restore_wants && !loaded)
        std::abort();   // the two readers disagree
    if (!loaded)
        return 0;

    std::vector<std::byte> buffer(4096 + 512);
    std::vector<bool> known;
    size_t mappings = 0;
    for (const auto& vma : loaded->vmas()) {
        if (++mappings > 64)
            break;
        for (const auto& segment : loaded->segments(vma.start(), vma.end())) {
            if (segment.start >= segment.end || segment.start < vma.start() || segment.end > vma.end())
                std::abort();
            if (segment.state != inspect::ProcessMemory::State::Stored)
                continue;
            if (segment.file_offset > pages->size() || segment.end - segment.start > pages->size() - segment.file_offset)
                std::abort();   // a stored segment outside the page file
        }
        // A read across the start of the mapping, as a hexdump would make.
        uint64_t from = vma.start() >= 512 ? vma.start() - 512 : 0;
        if (!loaded->read(from, buffer, known))
            std::abort();
    }
    static const std::byte kPattern[] = { std::byte { 0 }, std::byte { 0 }, std::byte { 0 }, std::byte { 1 } };
    if (!inspect::search_memory(*loaded, kPattern, 8))
        std::abort();
    return 0;
}
