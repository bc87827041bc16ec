// Where an ImageWriter puts its files when they do not go to a local
// directory: a page server (net/page_client.h) receives every file of the
// checkpoint and writes it on its side.
//
// The writer still does everything else (names, checksums, transforms, the
// manifest); a sink only carries bytes. A sink dropped before commit()
// succeeded abandons the checkpoint: the other side keeps nothing that
// looks complete.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "base/error.h"

namespace cryo::image {

class ImageSink {
public:
    virtual ~ImageSink() = default;

    // Starts a file; the returned id names it in append() and finish().
    virtual Result<uint32_t> open(const std::string& name) = 0;
    virtual Result<void> append(uint32_t file, std::span<const std::byte> data) = 0;
    virtual Result<void> finish(uint32_t file) = 0;
    // Hands over the encoded manifest; returns once the other side has
    // verified every file against it and committed the checkpoint.
    virtual Result<void> commit(const std::string& manifest) = 0;
    // Where the checkpoint goes, for messages.
    virtual std::string describe() const = 0;
};

} // namespace cryo::image
