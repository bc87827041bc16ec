// Writing the page file on a second thread while the first reads memory.
//
// A dump moves every stored page twice: from the frozen process into cryo
// (reads of /proc/PID/mem) and from cryo into the page file (writes). Done
// one after the other, each waits for the other; on two cores they overlap.
// The reading thread takes an empty buffer, fills it and hands it over; the
// writer thread appends it to the page file through OutputFile (so the
// file's checksums, and any transform of the image layer, stay where they
// are) and gives the buffer back. An untransformed file's checksums are
// taken by the reading thread as it fills a buffer, while the bytes are
// still in its cache (OutputFile::hash): the writer thread then only
// waits for the disk, one write after the other with no gap for hashing
// (XXH3 of 8 MiB, twice, took a fifth of each write's time). A compressed
// or encrypted file is transformed and hashed on the writer thread. A few buffers of some MiB each keep both
// busy. The first write error stops the writing: later buffers are dropped
// and the error is returned by the next take() or by finish(). The thread
// starts with the first full buffer: what fits in one (a small process's
// pages) finish() writes on the calling thread, sparing a thread's start
// and stop, which cost more than such a write. It is also when the buffers
// turn to huge pages (CopyBuffer::prefer_huge_pages).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "base/error.h"
#include "image/writer.h"
#include "mem/copy_buffer.h"

namespace cryo::mem {

// Copy buffers kept from one page file to the next of the same dump: a tree
// of a hundred processes would otherwise map, fault in (the first touch of
// each page of a fresh buffer is a page fault in the middle of the copy)
// and unmap its buffers a hundred times.
class PageBuffers {
public:
    // `count` buffers of `size` bytes: kept ones first, new ones for the rest.
    Result<std::vector<CopyBuffer>> take(size_t size, size_t count);
    void give_back(std::vector<CopyBuffer> buffers);

private:
    std::vector<CopyBuffer> m_spare;
};

class PageFileWriter {
public:
    // `buffers` page-aligned buffers of `buffer_size` bytes each, from
    // `pool`, given back to it when the writer goes.
    static Result<std::unique_ptr<PageFileWriter>> start(image::OutputFile& file, size_t buffer_size, size_t buffers,
                                                         PageBuffers& pool);
    PageFileWriter(const PageFileWriter&) = delete;
    PageFileWriter& operator=(const PageFileWriter&) = delete;
    // Stops the thread; what is still queued is dropped (the dump failed).
    ~PageFileWriter();

    // An empty buffer to fill, once the writer gave one back.
    Result<std::span<std::byte>> take();
    // The first `filled` bytes of the buffer last taken hold their final
    // bytes: an untransformed file's checksums take the new ones now, while
    // they are still in the CPU's cache.
    void filled(size_t filled);
    // Queues the first `filled` bytes of the buffer last taken.
    void submit(size_t filled);
    // Waits until every queued buffer is written; the first error if any.
    Result<void> finish();

    size_t buffer_size() const { return m_buffer_size; }

private:
    PageFileWriter(image::OutputFile& file, std::vector<CopyBuffer> buffers, size_t buffer_size, PageBuffers& pool);
    void run();
    // Appends the first `bytes` of buffer `index` to the file.
    Result<void> write_buffer(size_t index, size_t bytes);

    image::OutputFile& m_file;
    PageBuffers& m_pool;
    std::vector<CopyBuffer> m_buffers;
    size_t m_buffer_size;
    bool m_hashed_on_submit;   // raw file: submit() hashes, run() only writes
    std::mutex m_mutex;
    std::condition_variable m_changed;
    std::deque<size_t> m_empty;                          // buffer indexes
    std::deque<std::pair<size_t, size_t>> m_queued;     // buffer index, bytes
    size_t m_taken { 0 };
    size_t m_taken_hashed { 0 };   // bytes of it already in the checksums
    bool m_writing { false };
    bool m_stopping { false };
    std::optional<Error> m_error;
    std::thread m_thread;
};

} // namespace cryo::mem
