// See page_source.h.
#include "lazy/page_source.h"

#include "base/fd.h"
#include "image/reader.h"

namespace cryo::lazy {

void PageSource::check_chunks(int fd, std::string path, const image::ManifestFile& record, std::vector<bool> verified)
{
    verified.resize(static_cast<size_t>(record.chunk_xxh3_size()), false);
    m_chunks[fd] = ChunkTable { std::move(path), record, std::move(verified) };
}

Result<void> PageSource::verify_chunks(int fd, ChunkTable& table, uint64_t offset, uint64_t length)
{
    if (length == 0)
        return {};
    uint64_t chunk_size = table.record.chunk_size();
    for (uint64_t index = offset / chunk_size; index <= (offset + length - 1) / chunk_size; ++index) {
        if (index < table.verified.size() && table.verified[index])
            continue;
        TRY(image::verify_chunk(fd, table.record, index, m_chunk_buffer, table.path));
        table.verified[index] = true;
    }
    return {};
}

Result<void> PageSource::read(int fd, std::span<std::byte> out, uint64_t offset)
{
    if (!m_fetcher) {
        if (auto table = m_chunks.find(fd); table != m_chunks.end())
            TRY(verify_chunks(fd, table->second, offset, out.size()));
        return pread_exact(fd, out, offset, "page file");
    }
    if (m_broken)
        return std::unexpected(*m_broken);
    auto name = m_names.find(fd);
    if (name == m_names.end())
        return fail("page file descriptor {} has no file on page server {}", fd, m_fetcher->peer());
    auto fetched = m_fetcher->fetch(name->second, offset, out);
    if (!fetched)
        m_broken = fetched.error();
    return fetched;
}

void PageSource::announce_running()
{
    if (m_fetcher && !m_broken)
        (void)m_fetcher->announce_running();
}

void PageSource::finish(bool failed)
{
    if (m_fetcher && !m_broken)
        (void)m_fetcher->finish(failed ? "the lazy-pages server could not bring in every page (see its log)" : "");
}

} // namespace cryo::lazy
