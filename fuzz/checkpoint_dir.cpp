// libFuzzer target: a whole checkpoint directory, read as `cryo restore`,
// `cryo show`, `cryo decode`, `cryo mem` and `cryo diff` read it.
//
// The input is a set of files (fuzz_support.h) written into a scratch
// directory: manifest.img, tree.img, core-PID.img, pages-PID.img, ... The
// flags byte says whether headers and manifest are repaired first (so that
// mutations get past the checksums) and whether the inspection commands run
// too. Then:
//  - image::ImageReader::open() and verify(), every listed file read as its
//    kind (read_message) or opened raw (open_raw), and the per-process
//    images read as restore reads them, with the checks of image/validate.h
//    on memory maps and page maps against the page file;
//  - with kInspect: decode_to_json (--no-verify), show as text and as JSON
//    (show verifies), ProcessMemory::load of every process with a
//    hexdump-like read of each mapping and a search;
//  - with kDiff: diff of the directory with itself.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "core.pb.h"
#include "fds.pb.h"
#include "fuzz_support.h"
#include "image/reader.h"
#include "image/validate.h"
#include "inspect/checkpoint.h"
#include "inspect/codec.h"
#include "inspect/diff.h"
#include "inspect/memory.h"
#include "inspect/show.h"
#include "mm.pb.h"
#include "tree.pb.h"

namespace {

using namespace cryo;

fuzz::ScratchDir* g_scratch = nullptr;

// What restore's read_images() does with a verified checkpoint, up to the
// point where it would start creating processes.
Result<void> read_like_restore(const image::ImageReader& reader)
{
    auto tree = TRY(reader.read<image::ProcessTree>(std::string(image::kTreeName), image::ImageKind::Tree));
    int processes = 0;
    for (const auto& entry : tree.processes()) {
        if (++processes > 16)
            break;
        int pid = entry.pid();
        TRY(reader.read<image::ProcessCore>(image::core_name(pid), image::ImageKind::Core));
        auto memory = TRY(reader.read<image::MemoryImage>(image::memory_name(pid), image::ImageKind::Memory));
        auto map = TRY(reader.read<image::PageMap>(image::pagemap_name(pid), image::ImageKind::PageMap));
        TRY(reader.read<image::FdTable>(image::fdtable_name(pid), image::ImageKind::FdTable));
        if (map.page_file() != image::pages_name(pid))
            return fail("unexpected page file name");
        TRY(reader.open_raw(map.page_file()));
        TRY(image::check_mappings(memory));
        TRY(image::check_page_map(map, map.page_file(), reader.file_size(map.page_file())));
        TRY(image::check_runs_in_mappings(map, memory));
    }
    TRY(reader.read<image::FileTable>(std::string(image::kFileTableName), image::ImageKind::FileTable));
    return {};
}

void read_with_image_reader(const std::string& directory)
{
    auto reader = image::ImageReader::open(directory);
    if (!reader)
        return;
    bool verified = reader->verify().has_value();
    for (const auto& file : reader->manifest().files()) {
        if (auto kind = inspect::metadata_kind(file.name())) {
            auto message = inspect::new_message(file.name());
            (void)reader->read_message(file.name(), *kind, *message);
        } else {
            (void)reader->open_raw(file.name());
        }
    }
    if (verified)
        (void)read_like_restore(*reader);
}

void read_memory(const inspect::Checkpoint& checkpoint)
{
    static const std::byte kPattern[] = { std::byte { 'C' }, std::byte { 'R' }, std::byte { 'Y' }, std::byte { 'O' } };
    int processes = 0;
    for (const auto& name : checkpoint.files()) {
        if (!name.starts_with("mm-") || inspect::metadata_kind(name) != image::ImageKind::Memory || ++processes > 8)
            continue;
        int pid = std::atoi(name.c_str() + 3);
        auto memory = inspect::ProcessMemory::load(checkpoint, pid);
        if (!memory)
            continue;
        std::vector<std::byte> buffer(256);
        std::vector<bool> known;
        size_t mappings = 0;
        for (const auto& vma : memory->vmas()) {
            if (++mappings > 64)
                break;
            auto segments = memory->segments(vma.start(), vma.end());
            for (const auto& segment : segments)
                if (segment.state == inspect::ProcessMemory::State::Stored) {
                    size_t length = std::min<uint64_t>(buffer.size(), segment.end - segment.start);
                    // load() checked every run against the page file.
                    if (!memory->read_stored(segment.file_offset, std::span(buffer.data(), length)))
                        std::abort();
                }
            if (!memory->read(vma.start(), buffer, known))
                std::abort();
        }
        (void)inspect::search_memory(*memory, kPattern, 16);
    }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***)
{
    fuzz::quiet();
    // show, decode and diff print to stdout.
    int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        ::dup2(null, STDOUT_FILENO);
        ::close(null);
    }
    static fuzz::ScratchDir scratch;
    g_scratch = &scratch;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    auto input = fuzz::unpack(std::span(data, size));
    if (input.flags & fuzz::kFixHeaders)
        for (auto& file : input.files)
            if (file.data.starts_with("CRYO"))
                file.data = fuzz::fix_header(std::move(file.data));
    if (input.flags & fuzz::kFixManifest)
        fuzz::fix_manifest(input.files);
    g_scratch->clear();
    for (const auto& file : input.files)
        g_scratch->write(file.name, file.data);
    const std::string& directory = g_scratch->path();

    read_with_image_reader(directory);
    if (input.flags & fuzz::kInspect) {
        (void)inspect::decode_to_json({ .directory = directory, .verify = inspect::Verify::Skip });
        (void)inspect::run_show({ .directory = directory });
        (void)inspect::run_show({ .directory = directory, .format = "json" });
        if (auto checkpoint = inspect::Checkpoint::open(directory, inspect::Verify::Skip))
            read_memory(*checkpoint);
    }
    if (input.flags & fuzz::kDiff)
        (void)inspect::run_diff({ .before = directory, .after = directory, .verify = inspect::Verify::Skip });
    return 0;
}
