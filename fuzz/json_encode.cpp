// libFuzzer target: the JSON document `cryo encode` reads
// (inspect::encode_from_json: the outer document as a protobuf Struct, then
// each image's "message" parsed into its typed message and encoded behind a
// fresh header). Invariant: every image encode produces is one that the
// image readers accept (decode_image with its kind), so `cryo encode` never
// writes a checkpoint that cryo itself refuses to read.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fuzz_support.h"
#include "image/reader.h"
#include "inspect/checkpoint.h"
#include "inspect/codec.h"

extern "C" int LLVMFuzzerInitialize(int*, char***)
{
    cryo::fuzz::quiet();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    auto images = cryo::inspect::encode_from_json(std::string_view(reinterpret_cast<const char*>(data), size));
    if (!images)
        return 0;
    for (const auto& image : *images) {
        auto message = cryo::inspect::new_message(image.name);
        if (!message || !cryo::image::decode_image(image.bytes, image.kind, *message))
            std::abort();
    }
    return 0;
}
