// zstd compression of page data (dump --compress), as a stream.
//
// The compressor uses zstd's own worker threads (ZSTD_c_nbWorkers, one per
// online CPU, at most 8), so compressing runs next to the copying of memory.
// The whole page file is one zstd frame. The decompressor bounds its window
// (zstd's default limit of 128 MiB), refuses output beyond the size the
// manifest announced and a stream that stops before its frame ends, so a
// hostile file can neither make cryo allocate without bound nor pass for
// shorter content.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/error.h"
#include "image/seal.h"

namespace cryo::image {

inline constexpr int kDefaultCompressionLevel = 3;
inline constexpr int kMaxCompressionLevel = 19;

class ZstdWriter {
public:
    static Result<std::unique_ptr<ZstdWriter>> create(int level, std::string name, ByteSink out);
    ~ZstdWriter();
    Result<void> write(std::span<const std::byte> data);
    Result<void> finish();

private:
    struct State;
    explicit ZstdWriter(std::unique_ptr<State> state);
    std::unique_ptr<State> m_state;
};

class ZstdReader {
public:
    // `limit`: the most bytes the stream may decompress to.
    static Result<std::unique_ptr<ZstdReader>> create(uint64_t limit, ByteSink out);
    ~ZstdReader();
    Result<void> feed(std::span<const std::byte> data);
    // The frame must be complete; returns the decompressed size.
    Result<uint64_t> finish();

private:
    struct State;
    explicit ZstdReader(std::unique_ptr<State> state);
    std::unique_ptr<State> m_state;
};

} // namespace cryo::image
