// libFuzzer target: one metadata image file, as every reader of a
// checkpoint decodes it (image::decode_image: header with magic, kind,
// version, payload size and XXH3, then the protobuf message). Built once
// per kind (CRYO_FUZZ_KIND): fuzz_image_tree, fuzz_image_core, ...
//
// Each input is decoded as it is (the header checks), then once more with
// the header's size and checksum repaired, so that mutated payloads reach
// the protobuf parser. A message that decodes goes through what its
// readers do next: the checks of image/validate.h for memory maps and page
// maps, protobuf's JSON printer and parser with `cryo decode`'s options,
// and encode_image, whose output must decode again.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include <google/protobuf/util/json_util.h>

#include "core.pb.h"
#include "fds.pb.h"
#include "fuzz_support.h"
#include "image/reader.h"
#include "image/validate.h"
#include "image/writer.h"
#include "manifest.pb.h"
#include "mm.pb.h"
#include "stats.pb.h"
#include "tree.pb.h"

#ifndef CRYO_FUZZ_KIND
#error "CRYO_FUZZ_KIND (Tree, Core, Memory, PageMap, FdTable, FileTable, Manifest, Stats) is not set"
#endif

namespace {

namespace pb = google::protobuf;
using cryo::image::ImageKind;

constexpr ImageKind kKind = ImageKind::CRYO_FUZZ_KIND;

void follow_up(const pb::Message& message)
{
    if (const auto* memory = dynamic_cast<const cryo::image::MemoryImage*>(&message))
        (void)cryo::image::check_mappings(*memory);
    if (const auto* map = dynamic_cast<const cryo::image::PageMap*>(&message)) {
        for (uint64_t size : { uint64_t { 0 }, uint64_t { 1 } << 20, ~uint64_t { 0 } })
            (void)cryo::image::check_page_map(*map, "pages-1.img", size);
        cryo::image::MemoryImage memory;
        auto* vma = memory.add_vmas();
        vma->set_start(0x400000);
        vma->set_end(0x800000);
        (void)cryo::image::check_runs_in_mappings(*map, memory);
    }

    pb::util::JsonPrintOptions print;
    print.add_whitespace = true;
    print.always_print_primitive_fields = true;
    print.preserve_proto_field_names = true;
    std::string json;
    if (pb::util::MessageToJsonString(message, &json, print).ok()) {
        std::unique_ptr<pb::Message> again(message.New());
        (void)pb::util::JsonStringToMessage(json, again.get());
    }

    auto encoded = cryo::image::encode_image(kKind, message);
    if (!encoded)
        return;
    std::unique_ptr<pb::Message> decoded(message.New());
    if (!cryo::image::decode_image(*encoded, kKind, *decoded))
        std::abort();   // cryo wrote an image it cannot read
}

template <typename Message>
void decode_as(std::string_view bytes)
{
    Message message;
    if (cryo::image::decode_image(bytes, kKind, message))
        follow_up(message);
}

void decode(std::string_view bytes)
{
    switch (kKind) {
    case ImageKind::Tree: decode_as<cryo::image::ProcessTree>(bytes); break;
    case ImageKind::Core: decode_as<cryo::image::ProcessCore>(bytes); break;
    case ImageKind::Memory: decode_as<cryo::image::MemoryImage>(bytes); break;
    case ImageKind::PageMap: decode_as<cryo::image::PageMap>(bytes); break;
    case ImageKind::FdTable: decode_as<cryo::image::FdTable>(bytes); break;
    case ImageKind::FileTable: decode_as<cryo::image::FileTable>(bytes); break;
    case ImageKind::Manifest: decode_as<cryo::image::Manifest>(bytes); break;
    case ImageKind::Stats:
        // stats-dump.img and stats-restore.img share the kind.
        decode_as<cryo::image::DumpStats>(bytes);
        decode_as<cryo::image::RestoreStats>(bytes);
        break;
    }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***)
{
    cryo::fuzz::quiet();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    decode(bytes);
    if (size >= sizeof(cryo::image::FileHeader))
        decode(cryo::fuzz::fix_header(std::string(bytes)));
    return 0;
}
