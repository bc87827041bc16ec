// See validate.h.
#include "image/validate.h"

#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <climits>
#include <set>
#include <utility>
#include <vector>

#include "base/syscalls.h"
#include "image/format.h"
#include "image/transform.h"
#include "ns/ipc.h"

namespace cryo::image {

namespace {

using Range = std::pair<uint64_t, uint64_t>;   // [first, second)

std::vector<Range> sorted_mappings(const MemoryImage& memory)
{
    std::vector<Range> ranges;
    ranges.reserve(static_cast<size_t>(memory.vmas_size()));
    for (const auto& vma : memory.vmas())
        ranges.emplace_back(vma.start(), vma.end());
    std::ranges::sort(ranges);
    return ranges;
}

std::string describe_run(int index, const PageRun& run)
{
    return fmt::format("run {} ({:#x}, {} pages at offset {:#x})", index, run.address(), run.page_count(),
                       run.file_offset());
}

} // namespace

Result<void> check_mappings(const MemoryImage& memory)
{
    for (const auto& vma : memory.vmas())
        if (vma.start() >= vma.end() || vma.start() % kPageSize || vma.end() % kPageSize)
            return fail("invalid mapping {:#x}-{:#x}", vma.start(), vma.end());
    auto ranges = sorted_mappings(memory);
    for (size_t i = 1; i < ranges.size(); ++i)
        if (ranges[i].first < ranges[i - 1].second)
            return fail("mappings {:#x}-{:#x} and {:#x}-{:#x} overlap", ranges[i - 1].first, ranges[i - 1].second,
                        ranges[i].first, ranges[i].second);
    return {};
}

Result<void> check_page_map(const PageMap& map, std::string_view page_file, uint64_t page_file_size,
                            std::span<const uint64_t> ancestor_sizes)
{
    std::vector<std::pair<Range, int>> runs;
    runs.reserve(static_cast<size_t>(map.runs_size()));
    for (int i = 0; i < map.runs_size(); ++i) {
        const auto& run = map.runs(i);
        if (run.address() % kPageSize || run.page_count() == 0 || run.address() >= kUserAddressLimit
            || run.page_count() > (kUserAddressLimit - run.address()) / kPageSize)
            return fail("{}: not a valid range of pages", describe_run(i, run));
        uint64_t bytes = run.page_count() * kPageSize;
        if (run.ancestor() > ancestor_sizes.size())
            return fail("{}: refers to ancestor checkpoint {}, but {} of them are known", describe_run(i, run),
                        run.ancestor(), ancestor_sizes.size());
        uint64_t size = run.ancestor() == 0 ? page_file_size : ancestor_sizes[run.ancestor() - 1];
        if (run.file_offset() > size || bytes > size - run.file_offset())
            return fail("{}: lies beyond the end of {}{} ({} bytes; truncated?)", describe_run(i, run), page_file,
                        run.ancestor() == 0 ? "" : fmt::format(" of ancestor checkpoint {}", run.ancestor()), size);
        runs.push_back({ { run.address(), run.address() + bytes }, i });
    }
    std::ranges::sort(runs);
    for (size_t i = 1; i < runs.size(); ++i)
        if (runs[i].first.first < runs[i - 1].first.second)
            return fail("runs {} at {:#x} and {} at {:#x} overlap", runs[i - 1].second, runs[i - 1].first.first,
                        runs[i].second, runs[i].first.first);
    return {};
}

Result<void> check_runs_in_mappings(const PageMap& map, const MemoryImage& memory)
{
    auto ranges = sorted_mappings(memory);
    for (int i = 0; i < map.runs_size(); ++i) {
        const auto& run = map.runs(i);
        uint64_t end = run.address() + run.page_count() * kPageSize;
        // The last mapping that starts at or before the run.
        auto after = std::ranges::upper_bound(ranges, run.address(), {}, &Range::first);
        if (after == ranges.begin() || end > std::prev(after)->second)
            return fail("{}: not inside one mapping of the memory image", describe_run(i, run));
    }
    return {};
}

Result<void> check_chunk_table(const ManifestFile& file)
{
    if (file.chunk_xxh3().empty() && file.chunk_size() == 0)
        return {};
    uint32_t chunk = file.chunk_size();
    if (chunk < kMinPageChunkSize || chunk > kMaxPageChunkSize || (chunk & (chunk - 1)) != 0)
        return fail("{}: chunk size {} is not a power of two from {} to {}", file.name(), chunk, kMinPageChunkSize,
                    kMaxPageChunkSize);
    if (is_transformed(file))
        return fail("{}: a transformed file has no chunk checksums", file.name());
    uint64_t chunks = file.size() / chunk + (file.size() % chunk != 0 ? 1 : 0);
    if (static_cast<uint64_t>(file.chunk_xxh3_size()) != chunks)
        return fail("{}: {} chunk checksums for {} chunks of {} bytes", file.name(), file.chunk_xxh3_size(), chunks,
                    chunk);
    return {};
}

Result<void> check_chain_fields(const Manifest& manifest)
{
    constexpr size_t kMaxPath = 4096;
    for (const auto& [field, value] : { std::pair { "parent", &manifest.parent() }, { "deduped_by", &manifest.deduped_by() } })
        if (value->size() > kMaxPath || value->find('\0') != std::string::npos)
            return fail("{} is not a usable path ({} bytes)", field, value->size());
    if (!manifest.parent().empty() && manifest.parent_manifest_xxh3() == 0)
        return fail("names parent {} without the checksum of its manifest", manifest.parent());
    return {};
}

namespace {

Result<void> check_sysv_permissions(const IpcPermissions& permissions, std::set<int>& ids, std::string_view what)
{
    if (permissions.id() < 0 || !ids.insert(permissions.id()).second)
        return fail("{} id {}: negative or listed twice", what, permissions.id());
    if (permissions.mode() > 0777)
        return fail("{} id {}: mode {:o} is not a permission mode", what, permissions.id(), permissions.mode());
    return {};
}

Result<void> check_segments(const google::protobuf::RepeatedPtrField<SysvSharedMemory>& segments)
{
    std::set<int> ids;
    uint64_t content = 0;
    for (const auto& segment : segments) {
        TRY(check_sysv_permissions(segment.permissions(), ids, "shared memory segment"));
        content += segment.content().size();
        if (segment.size() == 0 || segment.size() > (1ull << 46) || segment.content().size() > segment.size()
            || content > (1ull << 30))
            return fail("shared memory segment id {}: size {} with {} bytes of content", segment.permissions().id(),
                        segment.size(), segment.content().size());
    }
    return {};
}

Result<void> check_ipc_namespace(const IpcNamespace& ipc)
{
    for (const auto& sysctl : ipc.sysctls()) {
        if (!ns::is_ipc_sysctl(sysctl.name()))
            return fail("sysctl '{}' is not one of an IPC namespace", sysctl.name());
        if (sysctl.value().empty() || sysctl.value().size() > 64
            || sysctl.value().find_first_not_of("0123456789 \t-") != std::string::npos)
            return fail("sysctl {}: value '{}' is not a list of numbers", sysctl.name(), sysctl.value());
    }
    TRY(check_segments(ipc.shared_memory()));
    std::set<int> ids;
    for (const auto& set : ipc.semaphores()) {
        TRY(check_sysv_permissions(set.permissions(), ids, "semaphore set"));
        if (set.values_size() < 1 || set.values_size() > 32000)
            return fail("semaphore set id {}: {} semaphores", set.permissions().id(), set.values_size());
        for (uint32_t value : set.values())
            if (value > 32767)
                return fail("semaphore set id {}: value {} above SEMVMX", set.permissions().id(), value);
    }
    ids.clear();
    for (const auto& queue : ipc.message_queues()) {
        TRY(check_sysv_permissions(queue.permissions(), ids, "message queue"));
        if (queue.max_bytes() > INT_MAX)
            return fail("message queue id {}: limit of {} bytes", queue.permissions().id(), queue.max_bytes());
        for (const auto& message : queue.messages())
            if (message.type() < 1 || message.text().size() > INT_MAX)
                return fail("message queue id {}: a message of type {} and {} bytes", queue.permissions().id(),
                            message.type(), message.text().size());
    }
    return {};
}

} // namespace

namespace {

constexpr uint64_t kMaxSocketQueue = 64ull << 20;

Result<void> check_inet_address(const InetAddress& address, int family, const char* what)
{
    size_t size = address.address().size();
    if (!(size == 4 && family == AF_INET) && !(size == 16 && family == AF_INET6))
        return fail("{} address of {} bytes in an {} socket", what, size, family == AF_INET ? "IPv4" : "IPv6");
    if (address.port() > 65535)
        return fail("{} port {} is not a port", what, address.port());
    return {};
}

Result<void> check_tcp_connection(const TcpConnection& tcp)
{
    if (tcp.send_queue().size() > kMaxSocketQueue || tcp.receive_queue().size() > kMaxSocketQueue)
        return fail("TCP queues of {} and {} bytes (at most {} MiB each)", tcp.send_queue().size(),
                    tcp.receive_queue().size(), kMaxSocketQueue >> 20);
    if (tcp.unsent_bytes() > tcp.send_queue().size())
        return fail("{} unsent bytes in a send queue of {}", tcp.unsent_bytes(), tcp.send_queue().size());
    if (tcp.mss() == 0 || tcp.mss() > 65535 || tcp.send_wscale() > 14 || tcp.receive_wscale() > 14)
        return fail("TCP options out of range (mss {}, window scales {} and {})", tcp.mss(), tcp.send_wscale(),
                    tcp.receive_wscale());
    return {};
}

Result<void> check_inet_socket(const InetSocket& socket)
{
    if (socket.family() != AF_INET && socket.family() != AF_INET6)
        return fail("IP socket of address family {}", socket.family());
    if (!(socket.type() == SOCK_STREAM && socket.protocol() == IPPROTO_TCP)
        && !(socket.type() == SOCK_DGRAM && socket.protocol() == IPPROTO_UDP))
        return fail("IP socket of type {} and protocol {}", socket.type(), socket.protocol());
    if (socket.has_local())
        TRY(check_inet_address(socket.local(), socket.family(), "local"));
    if (socket.has_peer())
        TRY(check_inet_address(socket.peer(), socket.family(), "peer"));
    if (socket.state() > TCP_CLOSING)
        return fail("TCP state {}", socket.state());
    if (socket.backlog() > 65535)
        return fail("backlog {}", socket.backlog());
    if (socket.options().bind_device().size() >= IFNAMSIZ)
        return fail("device name of {} bytes", socket.options().bind_device().size());
    if (socket.options().receive_buffer() > (1u << 30) || socket.options().send_buffer() > (1u << 30))
        return fail("buffer sizes {} and {}", socket.options().receive_buffer(), socket.options().send_buffer());
    if (socket.has_tcp()) {
        if (socket.protocol() != IPPROTO_TCP || !socket.has_local() || !socket.has_peer())
            return fail("a TCP connection without both addresses");
        TRY(check_tcp_connection(socket.tcp()));
    }
    uint64_t total = 0;
    for (const auto& datagram : socket.queued()) {
        if (datagram.data().size() > 65535)
            return fail("a queued datagram of {} bytes", datagram.data().size());
        TRY_CTX(check_inet_address(datagram.sender(), socket.family(), "datagram sender"), "queued datagram");
        total += datagram.data().size();
    }
    if (total > kMaxSocketQueue)
        return fail("{} bytes of queued datagrams (at most {} MiB)", total, kMaxSocketQueue >> 20);
    return {};
}

} // namespace

Result<void> check_namespaces(const ProcessTree& tree)
{
    std::set<std::pair<int, uint64_t>> listed;
    for (const auto& saved : tree.namespaces()) {
        if (saved.id() == 0 || !listed.insert({ saved.kind(), saved.id() }).second)
            return fail("namespace {}: id 0 or listed twice", saved.id());
        if (saved.kind() == NAMESPACE_KIND_UTS) {
            for (const auto& name : { saved.uts().hostname(), saved.uts().domainname() })
                if (name.size() > 64 || name.find('\0') != std::string::npos)
                    return fail("UTS namespace {}: name '{}' is longer than 64 bytes or holds a NUL", saved.id(), name);
        } else if (saved.kind() == NAMESPACE_KIND_IPC) {
            TRY_CTX(check_ipc_namespace(saved.ipc()), "IPC namespace {}", saved.id());
        } else {
            return fail("namespace {}: unknown kind {}", saved.id(), static_cast<int>(saved.kind()));
        }
    }
    TRY_CTX(check_segments(tree.host_shared_memory()), "cryo's IPC namespace");
    for (const auto& entry : tree.processes())
        if ((entry.uts_ns() != 0 && !listed.contains({ NAMESPACE_KIND_UTS, entry.uts_ns() }))
            || (entry.ipc_ns() != 0 && !listed.contains({ NAMESPACE_KIND_IPC, entry.ipc_ns() })))
            return fail("pid {}: its namespace (uts {}, ipc {}) is not listed", entry.pid(), entry.uts_ns(), entry.ipc_ns());
    return {};
}

Result<void> check_sysv_attachments(const ProcessTree& tree, const ProcessEntry& entry, const MemoryImage& memory)
{
    const google::protobuf::RepeatedPtrField<SysvSharedMemory>* segments = &tree.host_shared_memory();
    for (const auto& saved : tree.namespaces())
        if (entry.ipc_ns() != 0 && saved.kind() == NAMESPACE_KIND_IPC && saved.id() == entry.ipc_ns())
            segments = &saved.ipc().shared_memory();
    for (const auto& vma : memory.vmas()) {
        if (vma.kind() != VMA_KIND_SYSV_SHM)
            continue;
        // A segment's size need not be a multiple of the page size (zdtm
        // shm-unaligned) while its mappings are: pages are compared.
        auto pages = [](uint64_t size) { return (size + 4095) / 4096; };
        bool found = std::ranges::any_of(*segments, [&](const SysvSharedMemory& segment) {
            return static_cast<uint64_t>(segment.permissions().id()) == vma.shmem_id()
                && pages(segment.size()) == pages(vma.shmem_size());
        });
        if (!found)
            return fail("pid {}: mapping {:#x}-{:#x} attaches System V segment {} of {} bytes, which the checkpoint does "
                        "not hold", entry.pid(), vma.start(), vma.end(), vma.shmem_id(), vma.shmem_size());
    }
    return {};
}

Result<void> check_inet_sockets(const FileTable& files)
{
    for (const auto& file : files.files())
        if (file.has_inet_socket())
            TRY_CTX(check_inet_socket(file.inet_socket()), "file {} (IP socket)", file.id());
    return {};
}

} // namespace cryo::image
