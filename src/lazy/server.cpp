// The lazy-pages server loop; see server.h.
#include "lazy/server.h"

#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <deque>

#include "base/kill.h"
#include "base/syscalls.h"
#include "lazy/command.h"

namespace cryo::lazy {

namespace {

constexpr uint64_t kFaultWindow = 64 * 1024;
constexpr uint64_t kStreamChunk = 4ull << 20;
constexpr size_t kMessages = 64;

enum class CopyResult { Done, Retry, Gone, Failed };

struct ServedProcess {
    pid_t pid { 0 };
    UniqueFd uffd;
    PendingMap pending;
    std::deque<uint64_t> faults;   // faulting pages not answered yet
    bool gone { false };
};

uint64_t page_of(uint64_t address) { return address & ~(kPageSize - 1); }

class Server {
public:
    Server(int log_fd, std::vector<LazyProcess>& processes, PageSource& source)
        : m_log(log_fd), m_source(source), m_buffer(kStreamChunk)
    {
        for (auto& process : processes)
            m_processes.push_back({ .pid = process.pid, .uffd = std::move(process.uffd), .pending = std::move(process.pending) });
    }

    int run();

private:
    template <typename... Args>
    void log(fmt::format_string<Args...> format, Args&&... args)
    {
        if (m_log < 0)
            return;
        auto line = fmt::format(format, std::forward<Args>(args)...);
        line += '\n';
        (void)::write(m_log, line.data(), line.size());
    }
    std::string name(const ServedProcess& process) const
    {
        return process.pid ? fmt::format("pid {}", process.pid) : std::string("a forked child");
    }

    CopyResult copy(ServedProcess& process, uint64_t start, uint64_t end);
    CopyResult copy_piece(ServedProcess& process, uint64_t start, const PendingPages& piece);
    CopyResult zero_page(ServedProcess& process, uint64_t page);
    void wake(ServedProcess& process, uint64_t page);
    void fail_process(ServedProcess& process);
    bool serve_fault(ServedProcess& process, uint64_t page);
    void read_messages(ServedProcess& process);
    void handle(ServedProcess& process, const uffd_msg& message);
    void stream_one_chunk();

    int m_log;
    PageSource& m_source;
    std::vector<std::byte> m_buffer;
    std::deque<ServedProcess> m_processes;
    std::vector<ServedProcess> m_forked;   // added after the turn that saw them
    size_t m_next_stream { 0 };
    uint64_t m_faults { 0 };
    uint64_t m_copied_bytes { 0 };
    bool m_failed { false };
};

void Server::fail_process(ServedProcess& process)
{
    // Running on without these pages would give the program zeros.
    m_failed = true;
    if (process.pid > 0) {
        log("killing pid {}: its memory cannot be brought in", process.pid);
        kill_quietly(process.pid);
    }
    process.gone = true;
}

// One pending piece, read from its page file and copied in; pages already
// there are skipped.
CopyResult Server::copy_piece(ServedProcess& process, uint64_t start, const PendingPages& piece)
{
    uint64_t length = piece.end - start;
    auto buffer = std::span(m_buffer).first(length);
    if (auto read = m_source.read(piece.fd, buffer, piece.offset); !read) {
        log("{}: pages {:#x}-{:#x}: {}", name(process), start, piece.end, read.error().message());
        return CopyResult::Failed;
    }
    uint64_t done = 0;
    while (done < length) {
        uffdio_copy request {};
        request.dst = start + done;
        request.src = reinterpret_cast<uint64_t>(buffer.data() + done);
        request.len = length - done;
        if (::ioctl(process.uffd.get(), UFFDIO_COPY, &request) == 0) {
            m_copied_bytes += length - done;
            return CopyResult::Done;
        }
        if (request.copy > 0) {
            done += static_cast<uint64_t>(request.copy);
            m_copied_bytes += static_cast<uint64_t>(request.copy);
            continue;
        }
        int error = request.copy < 0 ? static_cast<int>(-request.copy) : errno;
        switch (error) {
        case EEXIST:   // in place already (a fault served it)
            done += kPageSize;
            break;
        case EAGAIN:   // the layout is changing: read the event first
            return CopyResult::Retry;
        case ESRCH:    // the process is gone
            return CopyResult::Gone;
        case ENOENT:   // no longer registered memory (unmapped)
            return CopyResult::Done;
        default:
            log("{}: UFFDIO_COPY {:#x}-{:#x}: {}", name(process), start + done, piece.end, std::strerror(error));
            return CopyResult::Failed;
        }
    }
    return CopyResult::Done;
}

// Copies the pending pages of [start, end) and forgets them once in place.
CopyResult Server::copy(ServedProcess& process, uint64_t start, uint64_t end)
{
    for (const auto& [piece_start, piece] : pieces_of(process.pending, start, end)) {
        auto result = copy_piece(process, piece_start, piece);
        if (result != CopyResult::Done)
            return result;
        carve(process.pending, piece_start, piece.end);
    }
    return CopyResult::Done;
}

CopyResult Server::zero_page(ServedProcess& process, uint64_t page)
{
    uffdio_zeropage request {};
    request.range = { page, kPageSize };
    if (::ioctl(process.uffd.get(), UFFDIO_ZEROPAGE, &request) == 0)
        return CopyResult::Done;
    int error = request.zeropage < 0 ? static_cast<int>(-request.zeropage) : errno;
    if (error == EEXIST || error == ENOENT)
        return CopyResult::Done;
    if (error == EAGAIN)
        return CopyResult::Retry;
    if (error == ESRCH)
        return CopyResult::Gone;
    log("{}: UFFDIO_ZEROPAGE {:#x}: {}", name(process), page, std::strerror(error));
    return CopyResult::Failed;
}

void Server::wake(ServedProcess& process, uint64_t page)
{
    uffdio_range range { page, kPageSize };
    (void)::ioctl(process.uffd.get(), UFFDIO_WAKE, &range);
}

// False when the fault must be tried again after the next messages.
bool Server::serve_fault(ServedProcess& process, uint64_t page)
{
    auto pieces = pieces_of(process.pending, page, page + kPageSize);
    CopyResult result;
    if (pieces.empty()) {
        result = zero_page(process, page);
    } else {
        uint64_t window = page & ~(kFaultWindow - 1);
        result = copy(process, window, window + kFaultWindow);
    }
    switch (result) {
    case CopyResult::Retry:
        return false;
    case CopyResult::Gone:
        process.gone = true;
        return true;
    case CopyResult::Failed:
        fail_process(process);
        return true;
    case CopyResult::Done:
        // The page may have been in place already (EEXIST): its waiter
        // still needs waking.
        wake(process, page);
        return true;
    }
    return true;
}

void Server::handle(ServedProcess& process, const uffd_msg& message)
{
    switch (message.event) {
    case UFFD_EVENT_PAGEFAULT:
        ++m_faults;
        process.faults.push_back(page_of(message.arg.pagefault.address));
        break;
    case UFFD_EVENT_FORK: {
        ServedProcess child { .uffd = UniqueFd(static_cast<int>(message.arg.fork.ufd)), .pending = process.pending };
        log("{} forked: serving its child too", name(process));
        m_forked.push_back(std::move(child));
        break;
    }
    case UFFD_EVENT_REMAP:
        move_range(process.pending, message.arg.remap.from, message.arg.remap.to, message.arg.remap.len);
        break;
    case UFFD_EVENT_REMOVE:
    case UFFD_EVENT_UNMAP:
        carve(process.pending, message.arg.remove.start, message.arg.remove.end);
        break;
    default:
        log("{}: unexpected userfaultfd event {}", name(process), static_cast<int>(message.event));
        break;
    }
}

void Server::read_messages(ServedProcess& process)
{
    uffd_msg messages[kMessages];
    for (;;) {
        ssize_t got = ::read(process.uffd.get(), messages, sizeof(messages));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && errno == EAGAIN)
            return;
        if (got <= 0) {
            log("{}: reading its userfaultfd: {}", name(process), got < 0 ? std::strerror(errno) : "end of file");
            process.gone = true;
            return;
        }
        for (size_t i = 0; i < static_cast<size_t>(got) / sizeof(uffd_msg); ++i)
            handle(process, messages[i]);
    }
}

void Server::stream_one_chunk()
{
    for (size_t tried = 0; tried < m_processes.size(); ++tried) {
        auto& process = m_processes[m_next_stream++ % m_processes.size()];
        if (process.gone || process.pending.empty())
            continue;
        uint64_t start = process.pending.begin()->first;
        auto result = copy(process, start, start + kStreamChunk);
        if (result == CopyResult::Gone)
            process.gone = true;
        else if (result == CopyResult::Failed)
            fail_process(process);
        return;
    }
}

int Server::run()
{
    auto started = std::chrono::steady_clock::now();
    log("lazy-pages server pid {}: serving {} processes{}", ::getpid(), m_processes.size(),
        m_source.remote() ? " with pages from a page server" : "");
    m_source.announce_running();
    for (;;) {
        // Let go of the processes that are complete or gone.
        std::erase_if(m_processes, [&](const ServedProcess& process) {
            bool done = process.gone || (process.pending.empty() && process.faults.empty());
            if (done && process.pid > 0)
                log("pid {}: {}", process.pid, process.gone ? "gone" : "every page in place");
            return done;
        });
        if (m_processes.empty())
            break;
        std::vector<pollfd> waits;
        for (const auto& process : m_processes)
            waits.push_back({ process.uffd.get(), POLLIN, 0 });
        // Pending pages everywhere (or the process would be let go): do not
        // block, stream when nothing is waiting.
        int ready = ::poll(waits.data(), waits.size(), 0);
        if (ready < 0 && errno != EINTR) {
            log("poll: {}", std::strerror(errno));
            break;
        }
        for (size_t i = 0; i < waits.size(); ++i) {
            if (waits[i].revents & POLLIN)
                read_messages(m_processes[i]);
            else if (waits[i].revents & (POLLERR | POLLHUP | POLLNVAL))
                m_processes[i].gone = true;
        }
        for (auto& child : m_forked)
            m_processes.push_back(std::move(child));
        m_forked.clear();
        bool served = false;
        for (auto& process : m_processes) {
            while (!process.gone && !process.faults.empty()) {
                if (!serve_fault(process, process.faults.front()))
                    break;
                process.faults.pop_front();
                served = true;
            }
        }
        if (!served && ready <= 0)
            stream_one_chunk();
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    log("done: {} faults, {} MiB copied in {:.1f} ms{}", m_faults, m_copied_bytes >> 20, ms,
        m_failed ? " (with errors)" : "");
    m_source.finish(m_failed);
    return m_failed ? 1 : 0;
}

} // namespace

void run_server(int log_fd, std::vector<LazyProcess>& processes, PageSource& source, int report_fd)
{
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    Server server(log_fd, processes, source);
    int status = server.run();
    if (report_fd >= 0)
        tell_status(report_fd, status);
    ::_exit(status);
}

} // namespace cryo::lazy
