// See compress.h.
#include "image/compress.h"

#include <unistd.h>

#include <algorithm>
#include <vector>

#include <zstd.h>

namespace cryo::image {

namespace {

constexpr size_t kOutputBuffer = 1u << 20;

} // namespace

struct ZstdWriter::State {
    ZSTD_CCtx* context { nullptr };
    std::string name;
    ByteSink out;
    std::vector<std::byte> buffer;
    ~State() { ZSTD_freeCCtx(context); }
};

ZstdWriter::ZstdWriter(std::unique_ptr<State> state) : m_state(std::move(state)) { }
ZstdWriter::~ZstdWriter() = default;

Result<std::unique_ptr<ZstdWriter>> ZstdWriter::create(int level, std::string name, ByteSink out)
{
    if (level < 1 || level > kMaxCompressionLevel)
        return fail("compression level {} is out of range (1 to {})", level, kMaxCompressionLevel);
    auto state = std::make_unique<State>();
    state->context = ZSTD_createCCtx();
    if (!state->context)
        return fail("{}: cannot create a zstd context", name);
    long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    int workers = static_cast<int>(std::clamp<long>(cpus, 1, 8));
    if (ZSTD_isError(ZSTD_CCtx_setParameter(state->context, ZSTD_c_compressionLevel, level)))
        return fail("{}: zstd refuses level {}", name, level);
    // A zstd without threads refuses workers: it then compresses in this thread.
    (void)ZSTD_CCtx_setParameter(state->context, ZSTD_c_nbWorkers, workers);
    (void)ZSTD_CCtx_setParameter(state->context, ZSTD_c_checksumFlag, 1);
    state->name = std::move(name);
    state->out = std::move(out);
    state->buffer.resize(kOutputBuffer);
    return std::unique_ptr<ZstdWriter>(new ZstdWriter(std::move(state)));
}

Result<void> ZstdWriter::write(std::span<const std::byte> data)
{
    auto& state = *m_state;
    ZSTD_inBuffer input { data.data(), data.size(), 0 };
    while (input.pos < input.size) {
        ZSTD_outBuffer output { state.buffer.data(), state.buffer.size(), 0 };
        size_t result = ZSTD_compressStream2(state.context, &output, &input, ZSTD_e_continue);
        if (ZSTD_isError(result))
            return fail("{}: zstd compression failed: {}", state.name, ZSTD_getErrorName(result));
        if (output.pos > 0)
            TRY(state.out(std::span(state.buffer.data(), output.pos)));
    }
    return {};
}

Result<void> ZstdWriter::finish()
{
    auto& state = *m_state;
    ZSTD_inBuffer input { nullptr, 0, 0 };
    for (;;) {
        ZSTD_outBuffer output { state.buffer.data(), state.buffer.size(), 0 };
        size_t left = ZSTD_compressStream2(state.context, &output, &input, ZSTD_e_end);
        if (ZSTD_isError(left))
            return fail("{}: zstd compression failed: {}", state.name, ZSTD_getErrorName(left));
        if (output.pos > 0)
            TRY(state.out(std::span(state.buffer.data(), output.pos)));
        if (left == 0)
            return {};
    }
}

struct ZstdReader::State {
    ZSTD_DCtx* context { nullptr };
    uint64_t limit { 0 };
    uint64_t produced { 0 };
    size_t last_hint { 1 };   // 0 once a frame ended
    bool frame_ended { false };
    ByteSink out;
    std::vector<std::byte> buffer;
    ~State() { ZSTD_freeDCtx(context); }
};

ZstdReader::ZstdReader(std::unique_ptr<State> state) : m_state(std::move(state)) { }
ZstdReader::~ZstdReader() = default;

Result<std::unique_ptr<ZstdReader>> ZstdReader::create(uint64_t limit, ByteSink out)
{
    auto state = std::make_unique<State>();
    state->context = ZSTD_createDCtx();
    if (!state->context)
        return fail("cannot create a zstd context");
    state->limit = limit;
    state->out = std::move(out);
    state->buffer.resize(kOutputBuffer);
    return std::unique_ptr<ZstdReader>(new ZstdReader(std::move(state)));
}

Result<void> ZstdReader::feed(std::span<const std::byte> data)
{
    auto& state = *m_state;
    ZSTD_inBuffer input { data.data(), data.size(), 0 };
    for (;;) {
        if (state.frame_ended && input.pos < input.size)
            return fail("data after the end of the zstd stream");
        ZSTD_outBuffer output { state.buffer.data(), state.buffer.size(), 0 };
        size_t hint = ZSTD_decompressStream(state.context, &output, &input);
        if (ZSTD_isError(hint))
            return fail("zstd decompression failed: {} (corrupted)", ZSTD_getErrorName(hint));
        if (output.pos > state.limit - state.produced)
            return fail("decompresses to more than the {} bytes the manifest says", state.limit);
        state.produced += output.pos;
        if (output.pos > 0)
            TRY(state.out(std::span(state.buffer.data(), output.pos)));
        if (hint == 0)
            state.frame_ended = true;
        // Done with this input once it is consumed and zstd has no more
        // output pending (a full output buffer may hide more).
        if (input.pos == input.size && output.pos < output.size)
            return {};
    }
}

Result<uint64_t> ZstdReader::finish()
{
    if (!m_state->frame_ended)
        return fail("the zstd stream ends before its frame is complete (truncated)");
    return m_state->produced;
}

} // namespace cryo::image
