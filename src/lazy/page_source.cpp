// See page_source.h.
#include "lazy/page_source.h"

#include "base/fd.h"

namespace cryo::lazy {

Result<void> PageSource::read(int fd, std::span<std::byte> out, uint64_t offset)
{
    if (!m_fetcher)
        return pread_exact(fd, out, offset, "page file");
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
