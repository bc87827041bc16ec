// Loading page files into cryo's memory while verifying them; see prefill.h.
#include "mem/prefill.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "base/fd.h"
#include "base/xxh3.h"
#include "mem/copy_buffer.h"
#include "proc/maps.h"

namespace cryo::mem {

namespace {

#ifndef MADV_POPULATE_WRITE
constexpr int MADV_POPULATE_WRITE = 23;
#endif

// Read and hashed in pieces of this size: large enough for few calls, small
// enough to be hashed while still in the cache.
constexpr uint64_t kPiece = 4ull << 20;
constexpr uint64_t kPageSize = 4096;

// XXH3 of the page file, on a second thread: pieces already in place are
// hashed while the next ones are read (add_later); bytes in a reused buffer
// are hashed at once, in order, once the queue is done (add_now).
class BackgroundHasher {
public:
    BackgroundHasher() : m_thread([this] { run(); }) { }
    ~BackgroundHasher()
    {
        {
            std::lock_guard lock(m_mutex);
            m_stopping = true;
        }
        m_changed.notify_all();
        m_thread.join();
    }
    void add_later(const std::byte* data, size_t size)
    {
        {
            std::lock_guard lock(m_mutex);
            m_queue.emplace_back(data, size);
        }
        m_changed.notify_all();
    }
    void add_now(const std::byte* data, size_t size)
    {
        wait_idle();
        m_state.update(data, size);
    }
    uint64_t digest()
    {
        wait_idle();
        return m_state.digest();
    }

private:
    void wait_idle()
    {
        std::unique_lock lock(m_mutex);
        m_changed.wait(lock, [&] { return m_queue.empty() && !m_busy; });
    }
    void run()
    {
        std::unique_lock lock(m_mutex);
        for (;;) {
            m_changed.wait(lock, [&] { return m_stopping || !m_queue.empty(); });
            if (m_queue.empty())
                return;
            auto [data, size] = m_queue.front();
            m_queue.pop_front();
            m_busy = true;
            lock.unlock();
            m_state.update(data, size);
            lock.lock();
            m_busy = false;
            m_changed.notify_all();
        }
    }

    xxh3::Stream m_state;
    std::mutex m_mutex;
    std::condition_variable m_changed;
    std::deque<std::pair<const std::byte*, size_t>> m_queue;
    bool m_busy { false };
    bool m_stopping { false };
    std::thread m_thread;   // last: started once the rest exists
};

// Keeps the disk reading kAhead bytes ahead of the file's reads
// (POSIX_FADV_WILLNEED starts the reads and returns): with a cold page cache
// each 4 MiB pread() otherwise waits for the kernel's own readahead, a few
// hundred KiB at a time, while the disk has nothing else to do.
class ReadAhead {
public:
    explicit ReadAhead(const Prefill::PageFile& file) : m_file(file) { }
    // About to read from `offset` through the page cache, up to `limit`
    // (the end of what is read that way when the pieces bypass it).
    void before(uint64_t offset, uint64_t limit = UINT64_MAX)
    {
        constexpr uint64_t kAhead = 32ull << 20;
        uint64_t until = std::min({ offset + kAhead, m_file.size, m_bounded ? limit : UINT64_MAX });
        uint64_t from = std::max(m_requested, offset);
        if (until <= from)
            return;
        (void)::posix_fadvise(m_file.fd, static_cast<off_t>(from), static_cast<off_t>(until - from), POSIX_FADV_WILLNEED);
        m_requested = until;
    }

    // The loaded pieces bypass the page cache: read ahead only what is read
    // through it.
    void set_bounded() { m_bounded = true; }

private:
    const Prefill::PageFile& m_file;
    uint64_t m_requested { 0 };
    bool m_bounded { false };
};

// Hashes bytes [from, to) of the file through `buffer`.
Result<void> hash_through(const Prefill::PageFile& file, uint64_t from, uint64_t to, CopyBuffer& buffer,
                          BackgroundHasher& hasher, ReadAhead& read_ahead)
{
    for (uint64_t offset = from; offset < to;) {
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(buffer.size(), to - offset));
        read_ahead.before(offset, to);
        TRY(pread_exact(file.fd, std::span(buffer.data(), chunk), offset, file.path));
        hasher.add_now(buffer.data(), chunk);
        offset += chunk;
    }
    return {};
}

// A piece of a run, read into its place in cryo's memory.
struct Piece {
    std::byte* target;
    uint64_t size;
    uint64_t file_offset;
};

// The pieces' own reads, straight from the disk into the populated memory
// where possible (O_DIRECT: no page cache to allocate, no copy; the disk
// writes into the pages the populating thread prepared). Measured on this
// VM, 1 GiB, cold cache, median of 3: 402 ms against 567 through the page
// cache. Through the page cache when most of the file is already there (a
// second restore, a dump --no-sync just before: the copy from the cache is
// faster than the disk), when the filesystem refuses O_DIRECT, or for a
// piece that is not block-aligned in the file.
class PieceReader {
public:
    explicit PieceReader(const Prefill::PageFile& file) : m_file(file)
    {
        if (mostly_cached())
            return;
        m_direct = UniqueFd(::open(fmt::format("/proc/self/fd/{}", file.fd).c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
    }
    bool direct() const { return m_direct.get() >= 0; }

    Result<void> read(const Piece& piece)
    {
        std::span<std::byte> target(piece.target, piece.size);
        if (direct() && piece.file_offset % kPageSize == 0) {
            ssize_t got = ::pread(m_direct.get(), target.data(), target.size(), static_cast<off_t>(piece.file_offset));
            if (got == static_cast<ssize_t>(target.size()))
                return {};
            if (got < 0 && errno == EINVAL)
                m_direct.reset();   // not for this filesystem after all
        }
        return pread_exact(m_file.fd, target, piece.file_offset, m_file.path);
    }

private:
    bool mostly_cached() const
    {
        struct {
            uint64_t offset, length;
        } range { 0, m_file.size };
        struct {
            uint64_t cache, dirty, writeback, evicted, recently_evicted;
        } status {};
        constexpr long kCachestat = 451;   // cachestat(2), Linux 6.5; without it: read from the disk
        if (::syscall(kCachestat, m_file.fd, &range, &status, 0) < 0)
            return false;
        return status.cache * kPageSize >= m_file.size / 2;
    }

    const Prefill::PageFile& m_file;
    UniqueFd m_direct;
};

// Populates the pieces' memory (MADV_POPULATE_WRITE: page allocation and
// zeroing, a third of a restore's time on this kind of VM) on threads of
// their own, ahead of the reads: the reading thread then only copies. With
// enough pieces and a second CPU, two threads take every other piece each:
// populating is the slowest step of a restore here, and it scales (1 GiB:
// 330 to 415 ms on one thread, 188 to 224 on two). The threads stay at most
// kAhead pieces ahead of the reading, so a failed read does not leave
// gigabytes populated for nothing. Best effort: a piece they could not
// populate is faulted in by the read itself.
class Populator {
public:
    explicit Populator(const std::vector<Piece>& pieces) : m_pieces(pieces), m_workers(workers_for(pieces.size()))
    {
        for (size_t worker = 0; worker < m_workers; ++worker)
            m_threads[worker] = std::thread([this, worker] { run(worker); });
    }
    ~Populator()
    {
        m_reading.store(kStop);
        m_reading.notify_all();
        for (size_t worker = 0; worker < m_workers; ++worker)
            m_threads[worker].join();
    }
    // Waits until piece `index` is populated, and lets the threads go on.
    void wait_for(size_t index)
    {
        m_reading.store(index);
        m_reading.notify_all();
        auto& done = m_done[index % m_workers];   // that thread's pieces done
        for (size_t count = done.load(); count <= index / m_workers; count = done.load())
            done.wait(count);
    }

private:
    static constexpr size_t kStop = SIZE_MAX;
    static constexpr size_t kAhead = 16;
    static constexpr size_t kMaxWorkers = 2;
    static constexpr size_t kPiecesForTwo = 8;   // 32 MiB: less is done before a thread starts

    static size_t workers_for(size_t pieces)
    {
        cpu_set_t cpus;
        bool two_cpus = ::sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) >= 2;
        return pieces >= kPiecesForTwo && two_cpus ? kMaxWorkers : 1;
    }

    // Thread `worker` populates pieces worker, worker + m_workers, ...
    void run(size_t worker)
    {
        for (size_t i = worker; i < m_pieces.size(); i += m_workers) {
            for (size_t reading = m_reading.load(); i >= reading + kAhead; reading = m_reading.load()) {
                if (reading == kStop)
                    return;
                m_reading.wait(reading);
            }
            if (m_reading.load() == kStop)
                return;
            (void)::madvise(m_pieces[i].target, m_pieces[i].size, MADV_POPULATE_WRITE);
            m_done[worker].fetch_add(1);
            m_done[worker].notify_all();
        }
    }

    const std::vector<Piece>& m_pieces;
    const size_t m_workers;
    std::atomic<size_t> m_done[kMaxWorkers] {};   // pieces done, per thread
    std::atomic<size_t> m_reading { 0 };          // the piece being read
    std::thread m_threads[kMaxWorkers];           // started by the constructor's body
};

// The pieces of the runs, in file order.
std::vector<Piece> split_runs(const std::vector<const image::PageRun*>& runs)
{
    std::vector<Piece> pieces;
    for (const image::PageRun* run : runs)
        for (uint64_t done = 0, length = run->page_count() * kPageSize; done < length; done += kPiece)
            pieces.push_back({ .target = reinterpret_cast<std::byte*>(run->address() + done),
                               .size = std::min(kPiece, length - done),
                               .file_offset = run->file_offset() + done });
    return pieces;
}

// The range cryo's own stack may grow into: no memory is loaded there.
std::pair<uint64_t, uint64_t> stack_reserve()
{
    rlimit limit {};
    uint64_t room = 8ull << 20;
    if (::getrlimit(RLIMIT_STACK, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
        room = std::max<uint64_t>(room, limit.rlim_cur);
    else if (limit.rlim_cur == RLIM_INFINITY)
        room = 1ull << 30;
    auto maps = proc::read_maps(::getpid());
    for (const auto& map : maps ? *maps : std::vector<proc::MapsEntry> {})
        if (map.path == "[stack]")
            return { map.end > room ? map.end - room : 0, map.end };
    return { 0, 0 };
}

} // namespace

void Prefill::unmap()
{
    for (const auto& vma : m_vmas)
        ::munmap(reinterpret_cast<void*>(vma.start), vma.end - vma.start);
    m_vmas.clear();
}

Result<void> Prefill::load_candidates(size_t process, const PageFile& file, const std::vector<const image::Vma*>& candidates,
                                      const image::PageMap& map)
{
    (void)::posix_fadvise(file.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    // Only the runs stored in this file: those of an incremental checkpoint
    // that are in an ancestor's file (PageRun.ancestor) are loaded later,
    // from that file, and no VMA that holds one is loaded here.
    std::vector<const image::PageRun*> runs;
    std::vector<uint64_t> elsewhere;   // addresses of the runs in an ancestor's file
    for (const auto& run : map.runs()) {
        if (run.ancestor() == 0)
            runs.push_back(&run);
        else
            elsewhere.push_back(run.address());
    }
    std::ranges::sort(elsewhere);
    std::ranges::sort(runs, {}, &image::PageRun::file_offset);
    bool overlapping = false;
    for (size_t i = 1; i < runs.size(); ++i)
        overlapping = overlapping
            || runs[i - 1]->file_offset() + runs[i - 1]->page_count() * kPageSize > runs[i]->file_offset();

    // Cryo's own copies of the candidates whose range is free here.
    size_t first = m_vmas.size();
    auto [stack_low, stack_high] = stack_reserve();
    for (const image::Vma* vma : overlapping ? std::vector<const image::Vma*> {} : candidates) {
        if (vma->start() < stack_high && vma->end() > stack_low)
            continue;
        // A run lies within one VMA (image::check_runs_in_mappings).
        auto ancestor_run = std::ranges::lower_bound(elsewhere, vma->start());
        if (ancestor_run != elsewhere.end() && *ancestor_run < vma->end())
            continue;
        void* address = reinterpret_cast<void*>(vma->start());
        size_t length = vma->end() - vma->start();
        int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | (vma->no_reserve() ? MAP_NORESERVE : 0);
        void* mapped = ::mmap(address, length, PROT_READ | PROT_WRITE, flags, -1, 0);
        if (mapped == MAP_FAILED)
            continue;
        if (mapped != address) {   // a kernel without MAP_FIXED_NOREPLACE
            ::munmap(mapped, length);
            continue;
        }
        m_vmas.push_back({ process, vma->start(), vma->end() });
        // Huge pages are chosen at the first touch: the advice comes first.
        if (vma->hugepage())
            (void)::madvise(address, length, MADV_HUGEPAGE);
    }
    // Sorted by start (the image lists VMAs in address order, but a hostile
    // one need not), for a binary search per run.
    std::vector<PrefilledVma> mine(m_vmas.begin() + static_cast<std::ptrdiff_t>(first), m_vmas.end());
    std::ranges::sort(mine, {}, &PrefilledVma::start);
    auto loaded = [&](const image::PageRun& run) {
        auto after = std::ranges::upper_bound(mine, run.address(), {}, &PrefilledVma::start);
        return after != mine.begin() && run.address() < std::prev(after)->end;
    };

    // One pass over the file in order: runs of loaded VMAs land in place,
    // everything else only goes through the hash.
    std::vector<const image::PageRun*> loaded_runs;
    for (const image::PageRun* run : runs)
        if (loaded(*run))
            loaded_runs.push_back(run);
    std::vector<Piece> pieces = split_runs(loaded_runs);
    auto buffer = TRY(CopyBuffer::create(kPiece));
    BackgroundHasher hasher;
    ReadAhead read_ahead(file);
    PieceReader reader(file);
    if (reader.direct())
        read_ahead.set_bounded();
    Populator populator(pieces);
    uint64_t position = 0;
    for (size_t i = 0; i < pieces.size(); ++i) {
        const Piece& piece = pieces[i];
        TRY(hash_through(file, position, piece.file_offset, buffer, hasher, read_ahead));
        if (!reader.direct())
            read_ahead.before(piece.file_offset);
        populator.wait_for(i);
        TRY(reader.read(piece));
        hasher.add_later(piece.target, piece.size);
        m_bytes += piece.size;
        position = piece.file_offset + piece.size;
    }
    TRY(hash_through(file, position, file.size, buffer, hasher, read_ahead));
    if (hasher.digest() != file.xxh3)
        return fail("{}: checksum mismatch (corrupted)", file.path);
    return {};
}

} // namespace cryo::mem
