// The page file's writer thread; see page_writer.h.
#include "mem/page_writer.h"

namespace cryo::mem {

Result<std::vector<CopyBuffer>> PageBuffers::take(size_t size, size_t count)
{
    std::vector<CopyBuffer> taken;
    while (taken.size() < count && !m_spare.empty()) {
        if (m_spare.back().size() == size)
            taken.push_back(std::move(m_spare.back()));
        m_spare.pop_back();
    }
    while (taken.size() < count)
        taken.push_back(TRY(CopyBuffer::create(size)));
    return taken;
}

void PageBuffers::give_back(std::vector<CopyBuffer> buffers)
{
    for (auto& buffer : buffers)
        m_spare.push_back(std::move(buffer));
}

Result<std::unique_ptr<PageFileWriter>> PageFileWriter::start(image::OutputFile& file, size_t buffer_size, size_t buffers,
                                                              PageBuffers& pool)
{
    auto memory = TRY(pool.take(buffer_size, buffers));
    return std::unique_ptr<PageFileWriter>(new PageFileWriter(file, std::move(memory), buffer_size, pool));
}

PageFileWriter::PageFileWriter(image::OutputFile& file, std::vector<CopyBuffer> buffers, size_t buffer_size,
                               PageBuffers& pool)
    : m_file(file)
    , m_pool(pool)
    , m_buffers(std::move(buffers))
    , m_buffer_size(buffer_size)
    , m_hashed_on_submit(file.is_raw())
{
    for (size_t i = 0; i < m_buffers.size(); ++i)
        m_empty.push_back(i);
}

PageFileWriter::~PageFileWriter()
{
    {
        std::lock_guard lock(m_mutex);
        m_stopping = true;
        m_queued.clear();
    }
    m_changed.notify_all();
    if (m_thread.joinable())
        m_thread.join();
    m_pool.give_back(std::move(m_buffers));
}

Result<void> PageFileWriter::write_buffer(size_t index, size_t bytes)
{
    std::span<const std::byte> data(m_buffers[index].data(), bytes);
    return m_hashed_on_submit ? m_file.write_hashed(data) : m_file.write(data);
}

void PageFileWriter::run()
{
    std::unique_lock lock(m_mutex);
    for (;;) {
        m_changed.wait(lock, [&] { return m_stopping || !m_queued.empty(); });
        if (m_queued.empty())
            return;   // stopping, nothing left
        auto [index, bytes] = m_queued.front();
        m_queued.pop_front();
        if (!m_error) {
            m_writing = true;
            lock.unlock();
            auto written = write_buffer(index, bytes);
            lock.lock();
            m_writing = false;
            if (!written)
                m_error = std::move(written.error());
        }
        m_empty.push_back(index);
        m_changed.notify_all();
    }
}

Result<std::span<std::byte>> PageFileWriter::take()
{
    std::unique_lock lock(m_mutex);
    m_changed.wait(lock, [&] { return m_error || !m_empty.empty(); });
    if (m_error)
        return fail(*m_error);
    m_taken = m_empty.front();
    m_empty.pop_front();
    return std::span(m_buffers[m_taken].data(), m_buffer_size);
}

void PageFileWriter::filled(size_t filled)
{
    if (!m_hashed_on_submit || filled <= m_taken_hashed)
        return;
    m_file.hash(std::span(m_buffers[m_taken].data() + m_taken_hashed, filled - m_taken_hashed));
    m_taken_hashed = filled;
}

void PageFileWriter::submit(size_t filled)
{
    this->filled(filled);
    m_taken_hashed = 0;
    {
        std::lock_guard lock(m_mutex);
        if (filled == 0) {
            m_empty.push_front(m_taken);
            return;
        }
        m_queued.emplace_back(m_taken, filled);
    }
    // The thread starts with the first full buffer: the pages of a small
    // process fit in one, which finish() writes itself.
    if (!m_thread.joinable() && filled == m_buffer_size) {
        for (const auto& buffer : m_buffers)
            buffer.prefer_huge_pages();
        m_thread = std::thread([this] { run(); });
    }
    m_changed.notify_all();
}

Result<void> PageFileWriter::finish()
{
    if (!m_thread.joinable()) {
        for (auto [index, bytes] : m_queued) {
            TRY(write_buffer(index, bytes));
            m_empty.push_back(index);
        }
        m_queued.clear();
        return {};
    }
    std::unique_lock lock(m_mutex);
    m_changed.wait(lock, [&] { return m_queued.empty() && !m_writing; });
    if (m_error)
        return fail(*m_error);
    return {};
}

} // namespace cryo::mem
