// Mappings of memfds, deleted files and memfd_secret files; see
// unlinked_files.h.
#include "mem/unlinked_files.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <span>

#include "base/syscalls.h"
#include "fds/unlinked_file.h"
#include "mem/copy_buffer.h"
#include "mem/dump_pages.h"
#include "mem/restore_memory.h"
#include "mem/secret_memory.h"
#include "mem/vmas.h"

namespace cryo::mem {

namespace {

constexpr std::string_view kMemfdPrefix = "/memfd:";
constexpr size_t kCopyBuffer = 8ull << 20;   // bytes per read and write of file content

uint64_t round_up(uint64_t value) { return (value + kPageSize - 1) & ~(kPageSize - 1); }

std::string describe(const image::Vma& vma)
{
    return fmt::format("mapping {:#x}-{:#x} ({})", vma.start(), vma.end(), vma.path());
}

// Appends the data of `fd` (of `size` bytes) to the page file as runs of
// whole pages, found with SEEK_DATA/SEEK_HOLE. The tail of the last page
// past the end of the file is zeros.
Result<void> save_content(int fd, uint64_t size, uint64_t limit, const std::string& what, image::OutputFile& pages,
                          image::UnlinkedFile& unlinked)
{
    auto buffer = TRY(CopyBuffer::create(kCopyBuffer));
    uint64_t total = 0;
    uint64_t offset = 0;
    while (offset < size) {
        off_t data = ::lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO)
                break;   // only a hole is left
            return fail_errno(fmt::format("lseek(SEEK_DATA) in {}", what));
        }
        off_t hole = ::lseek(fd, data, SEEK_HOLE);
        if (hole < 0)
            return fail_errno(fmt::format("lseek(SEEK_HOLE) in {}", what));
        uint64_t start = static_cast<uint64_t>(data) & ~(kPageSize - 1);
        uint64_t end = std::min(round_up(static_cast<uint64_t>(hole)), round_up(size));
        if (end <= start)
            break;
        total += end - start;
        if (total > limit)
            return fail("{} holds more than {} bytes of data (size {}): over the limit (--ghost-limit for deleted files)",
                        what, limit, size);
        auto* run = unlinked.add_content();
        run->set_offset(start);
        run->set_length(end - start);
        run->set_page_file_offset(pages.size());
        for (uint64_t position = start; position < end;) {
            uint64_t chunk = std::min<uint64_t>(end - position, buffer.size());
            uint64_t in_file = position < size ? std::min(chunk, size - position) : 0;
            TRY(pread_exact(fd, std::span(buffer.data(), in_file), position, what));
            std::memset(buffer.data() + in_file, 0, chunk - in_file);
            TRY(pages.write(std::span(buffer.data(), chunk)));
            position += chunk;
        }
        offset = end;
    }
    return {};
}

// Hands every run of the file only mapped, up to `size` (the runs are whole
// pages, the file may end inside the last), to `copy` in pieces of at most
// kCopyBuffer bytes: (offset in the file, length, page file, offset there).
using CopyPiece = std::function<Result<void>(uint64_t offset, uint64_t length, int page_file, uint64_t page_file_offset)>;

Result<void> for_each_piece(const std::vector<const image::Vma*>& carriers, uint64_t size,
                            const image::ImageReader& reader, const CopyPiece& copy)
{
    for (const auto* vma : carriers) {
        const auto& unlinked = vma->unlinked_file();
        auto page_file = TRY(reader.open_raw(unlinked.page_file()));
        for (const auto& run : unlinked.content()) {
            uint64_t end = std::min(run.offset() + run.length(), size);
            for (uint64_t position = run.offset(); position < end;) {
                uint64_t length = std::min<uint64_t>(end - position, kCopyBuffer);
                TRY(copy(position, length, page_file.get(), run.page_file_offset() + (position - run.offset())));
                position += length;
            }
        }
    }
    return {};
}

// The file of `key` made again from the mappings that carry its content.
Result<UniqueFd> make_file(const UnlinkedFileKey& key, const std::vector<const image::Vma*>& carriers,
                           const image::ImageReader& reader)
{
    const auto& first = carriers.front()->unlinked_file();
    // Through a buffer into a file that can be written.
    auto write_file = [&](int fd, uint64_t size) -> Result<void> {
        std::vector<std::byte> buffer(std::min<uint64_t>(size, kCopyBuffer));
        return for_each_piece(carriers, size, reader,
                              [&](uint64_t offset, uint64_t length, int page_file, uint64_t page_file_offset) -> Result<void> {
                                  auto bytes = std::span(buffer.data(), length);
                                  TRY(pread_exact(page_file, bytes, page_file_offset, "page file"));
                                  return pwrite_all(fd, bytes, offset, "the file made again");
                              });
    };
    switch (key.kind) {
    case UnlinkedKind::Memfd:
        if (!first.has_memfd() || first.memfd().memfd_id() != key.inode)
            break;
        return fds::create_memfd(first.memfd(), [&](int fd) { return write_file(fd, first.memfd().size()); });
    case UnlinkedKind::DeletedFile:
        if (!first.has_deleted_file() || first.deleted_file().inode() != key.inode)
            break;
        return fds::create_deleted_file(first.deleted_file(),
                                        [&](int fd) { return write_file(fd, first.deleted_file().size()); });
    case UnlinkedKind::Secret: {
        if (!first.has_secret() || first.secret().inode() != key.inode)
            break;
        // Straight into a mapping of the secret file (it has no write()).
        uint64_t size = first.secret().size();
        return create_secret_file(size, [&](std::byte* mapping) {
            return for_each_piece(carriers, size, reader,
                                  [&](uint64_t offset, uint64_t length, int page_file, uint64_t page_file_offset) {
                                      return pread_exact(page_file, std::span(mapping + offset, length),
                                                         page_file_offset, "page file");
                                  });
        });
    }
    }
    return fail("the description of its file does not match it");
}

bool matches(const UnlinkedFileKey& key, const image::OpenFile& file)
{
    switch (key.kind) {
    case UnlinkedKind::Memfd:
        return file.has_memfd() && file.memfd().memfd_id() == key.inode;
    case UnlinkedKind::DeletedFile:
        return file.has_ghost() && file.ghost().inode() == key.inode && file.ghost().path() == key.path;
    case UnlinkedKind::Secret:
        return file.has_secret_memory() && file.secret_memory().inode() == key.inode;
    }
    return false;
}

// The pieces of `vma` (of a secret file) present in the process that
// `saved` (page offsets in the file) does not have yet; adds them to it.
Result<std::vector<SecretPiece>> new_secret_pieces(int pagemap_fd, const image::Vma& vma, std::set<uint64_t>& saved)
{
    std::vector<SecretPiece> pieces;
    for (const auto& range : TRY(scan_stored_pages(pagemap_fd, vma))) {
        for (uint64_t address = range.start; address < range.end; address += kPageSize) {
            if (!saved.insert(vma.pgoff() + (address - vma.start())).second)
                continue;
            if (!pieces.empty() && pieces.back().address + pieces.back().length == address)
                pieces.back().length += kPageSize;
            else
                pieces.push_back({ address, kPageSize });
        }
    }
    return pieces;
}

} // namespace

UnlinkedFileKey UnlinkedFileKey::of(const image::Vma& vma)
{
    switch (vma.kind()) {
    case image::VMA_KIND_MEMFD_PRIVATE:
    case image::VMA_KIND_MEMFD_SHARED:
        return { .kind = UnlinkedKind::Memfd, .inode = vma.inode() };
    case image::VMA_KIND_SECRET:
        return { .kind = UnlinkedKind::Secret, .inode = vma.inode() };
    default:
        return { .kind = UnlinkedKind::DeletedFile, .inode = vma.inode(), .path = vma.path() };
    }
}

std::string UnlinkedFileKey::describe() const
{
    switch (kind) {
    case UnlinkedKind::Memfd:
        return fmt::format("memfd with inode {}", inode);
    case UnlinkedKind::DeletedFile:
        return fmt::format("deleted file {} (inode {})", path, inode);
    case UnlinkedKind::Secret:
        return fmt::format("memfd_secret file with inode {}", inode);
    }
    return "?";
}

Result<void> UnlinkedFileDump::dump_process(ptrace::Tracee& leader, std::vector<image::Vma>& vmas,
                                            image::OutputFile& pages)
{
    pid_t pid = leader.tid();
    for (auto& vma : vmas) {
        if (!maps_unlinked_file(vma) || vma.kind() == image::VMA_KIND_SECRET)
            continue;
        auto key = UnlinkedFileKey::of(vma);
        auto path = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, vma.start(), vma.end());
        auto file = TRY_CTX(open_file(path, O_RDONLY | O_CLOEXEC), "{}", describe(vma));
        struct stat stat {};
        if (::fstat(file.get(), &stat) < 0)
            return fail_errno(fmt::format("{}: fstat {}", describe(vma), path));
        if (!S_ISREG(stat.st_mode))
            return fail("not supported yet: {} maps something that is not a regular file", describe(vma));

        bool open = std::ranges::any_of(m_files->files(), [&](const auto& open_file) { return matches(key, open_file); });
        image::UnlinkedFile unlinked;
        uint64_t limit = std::numeric_limits<uint64_t>::max();
        std::string what;
        if (key.kind == UnlinkedKind::Memfd) {
            std::string name = vma.path().substr(kMemfdPrefix.size());
            const image::MemfdData* saved = nullptr;
            for (const auto& memfd : m_files->memfds())
                if (memfd.memfd_id() == key.inode)
                    saved = &memfd;
            if (!saved)
                saved = &(*unlinked.mutable_memfd() = TRY_CTX(fds::describe_memfd(file.get(), stat, name), "{}", describe(vma)));
            // A writable shared mapping could not be made again once the
            // seal is back (and the seal must be there for the open files).
            if (vma.shared() && vma.may_write() && (saved->seals() & F_SEAL_FUTURE_WRITE))
                return fail("not supported yet: {} is shared and writable, but memfd {} is sealed with "
                            "F_SEAL_FUTURE_WRITE",
                            describe(vma), name);
            what = "memfd " + name;
        } else {
            *unlinked.mutable_deleted_file() = TRY_CTX(fds::describe_deleted_file(stat, vma.path()), "{}", describe(vma));
            limit = m_deleted_file_limit;
            what = "deleted file " + vma.path();
        }
        if (open || m_saved.contains(key))
            continue;   // files.img or an earlier mapping has the content
        unlinked.set_page_file(pages.name());
        TRY_CTX(save_content(file.get(), static_cast<uint64_t>(stat.st_size), limit, what, pages, unlinked), "{}",
                describe(vma));
        *vma.mutable_unlinked_file() = std::move(unlinked);
        m_saved.insert(key);
    }
    return dump_secrets(leader, vmas, pages);
}

Result<void> UnlinkedFileDump::dump_secrets(ptrace::Tracee& leader, std::vector<image::Vma>& vmas,
                                            image::OutputFile& pages)
{
    pid_t pid = leader.tid();
    // A file a descriptor of the tree holds is in files.img already, all of
    // it (fds/secret_memory.cpp): its mappings only refer to it.
    auto held_open = [&](const image::Vma& vma) {
        auto key = UnlinkedFileKey::of(vma);
        return std::ranges::any_of(m_files->files(), [&](const auto& file) { return matches(key, file); });
    };
    if (std::ranges::none_of(vmas, [&](const auto& vma) { return vma.kind() == image::VMA_KIND_SECRET && !held_open(vma); }))
        return {};
    // Which pages each mapping saves: those present here that no mapping
    // before it (in this process or an earlier one) saved.
    auto pagemap = TRY(open_file(fmt::format("/proc/{}/pagemap", pid), O_RDONLY | O_CLOEXEC));
    std::vector<std::pair<image::Vma*, std::vector<SecretPiece>>> carriers;
    std::vector<SecretPiece> all_pieces;
    for (auto& vma : vmas) {
        if (vma.kind() != image::VMA_KIND_SECRET || held_open(vma))
            continue;
        auto key = UnlinkedFileKey::of(vma);
        auto pieces = TRY_CTX(new_secret_pieces(pagemap.get(), vma, m_secret_pages[key.inode]), "{}", describe(vma));
        if (pieces.empty() && m_saved.contains(key))
            continue;
        // Its size: map_files/ stats a secret file but cannot open it.
        auto path = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, vma.start(), vma.end());
        struct stat stat {};
        if (::stat(path.c_str(), &stat) < 0)
            return fail_errno(fmt::format("{}: stat {}", describe(vma), path));
        auto* secret = vma.mutable_unlinked_file()->mutable_secret();
        secret->set_inode(key.inode);
        secret->set_size(static_cast<uint64_t>(stat.st_size));
        vma.mutable_unlinked_file()->set_page_file(pages.name());
        m_saved.insert(key);
        all_pieces.insert(all_pieces.end(), pieces.begin(), pieces.end());
        carriers.emplace_back(&vma, std::move(pieces));
    }
    if (all_pieces.empty())
        return {};

    auto copy = TRY_CTX(copy_out_secret_memory(leader, all_pieces), "secret memory");
    auto buffer = TRY(CopyBuffer::create(kCopyBuffer));
    uint64_t copy_offset = 0;
    for (auto& [vma, pieces] : carriers) {
        for (const auto& piece : pieces) {
            auto* run = vma->mutable_unlinked_file()->add_content();
            run->set_offset(vma->pgoff() + (piece.address - vma->start()));
            run->set_length(piece.length);
            run->set_page_file_offset(pages.size());
            for (uint64_t done = 0; done < piece.length;) {
                uint64_t chunk = std::min<uint64_t>(piece.length - done, buffer.size());
                auto bytes = std::span(buffer.data(), chunk);
                TRY(pread_exact(copy.get(), bytes, copy_offset + done, "the copy of the secret memory"));
                TRY(pages.write(bytes));
                done += chunk;
            }
            copy_offset += piece.length;
        }
    }
    return {};
}

UnlinkedFileWindows::UnlinkedFileWindows(UnlinkedFileWindows&& other) noexcept
    : m_windows(std::exchange(other.m_windows, {}))
    , m_files(std::exchange(other.m_files, {}))
{
}

UnlinkedFileWindows& UnlinkedFileWindows::operator=(UnlinkedFileWindows&& other) noexcept
{
    if (this != &other) {
        unmap_all();
        m_windows = std::exchange(other.m_windows, {});
        m_files = std::exchange(other.m_files, {});
    }
    return *this;
}

UnlinkedFileWindows::~UnlinkedFileWindows() { unmap_all(); }

void UnlinkedFileWindows::unmap_all()
{
    for (const auto& [key, address] : m_windows)
        ::munmap(reinterpret_cast<void*>(address), key.end - key.start);
    m_windows.clear();
}

UnlinkedFileWindows::WindowKey UnlinkedFileWindows::WindowKey::of(const image::Vma& vma)
{
    return { .file = UnlinkedFileKey::of(vma),
             .start = vma.start(),
             .end = vma.end(),
             .pgoff = vma.pgoff(),
             .shared = vma.shared(),
             .may_write = vma.shared() && vma.may_write() };
}

Result<UnlinkedFileWindows> UnlinkedFileWindows::prepare(const image::MemoryImage& all_vmas,
                                                         const image::ImageReader& reader,
                                                         const image::FileTable& files,
                                                         const std::map<uint32_t, UniqueFd>& opened)
{
    UnlinkedFileWindows windows;
    // Each file once: an open file of it, else made again from the mappings
    // that carry its content (one for memfds and deleted files, maybe
    // several for secret memory).
    std::map<UnlinkedFileKey, int> held;
    std::map<UnlinkedFileKey, std::vector<const image::Vma*>> carriers;
    for (const auto& vma : all_vmas.vmas()) {
        if (!maps_unlinked_file(vma))
            continue;
        auto key = UnlinkedFileKey::of(vma);
        for (const auto& file : files.files())
            if (!held.contains(key) && matches(key, file) && opened.contains(file.id()))
                held[key] = opened.at(file.id()).get();
        if (vma.has_unlinked_file())
            carriers[key].push_back(&vma);
    }
    for (const auto& [key, vmas] : carriers) {
        if (held.contains(key))
            continue;
        auto made = TRY_CTX(make_file(key, vmas, reader), "{}", describe(*vmas.front()));
        held[key] = made.get();
        windows.m_files.push_back(std::move(made));
    }

    // One window per mapping (per identical mapping of several processes).
    for (const auto& vma : all_vmas.vmas()) {
        if (!maps_unlinked_file(vma))
            continue;
        auto key = WindowKey::of(vma);
        if (windows.m_windows.contains(key))
            continue;
        auto file = held.find(key.file);
        if (file == held.end())
            return fail("{}: the checkpoint holds neither an open file nor the content of its {}", describe(vma),
                        key.file.describe());
        // A shared mapping that may not become writable is made from a
        // read-only open file, so it may not (the kernel clears VM_MAYWRITE).
        // A secret file cannot be opened again, but is always read-write.
        int mode = key.may_write ? O_RDWR : O_RDONLY;
        UniqueFd reopened;
        if (key.file.kind != UnlinkedKind::Secret)
            reopened = TRY_CTX(open_file(fmt::format("/proc/self/fd/{}", file->second), mode | O_CLOEXEC), "{}",
                               describe(vma));
        uint64_t length = vma.end() - vma.start();
        uint64_t address = TRY(find_free_window(all_vmas, length));
        int prot = key.shared && !key.may_write ? PROT_READ : PROT_READ | PROT_WRITE;
        int flags = (key.shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED_NOREPLACE;
        void* mapped = ::mmap(reinterpret_cast<void*>(address), length, prot, flags,
                              reopened ? reopened.get() : file->second, static_cast<off_t>(vma.pgoff()));
        if (mapped == MAP_FAILED)
            return fail_errno(fmt::format("{}: mmap in cryo at {:#x}", describe(vma), address));
        windows.m_windows[key] = reinterpret_cast<uint64_t>(mapped);
        if (mapped != reinterpret_cast<void*>(address))
            return fail("{}: mmap in cryo landed at {} instead of {:#x}", describe(vma), mapped, address);
    }
    return windows;
}

Result<uint64_t> UnlinkedFileWindows::window_for(const image::Vma& vma) const
{
    auto found = m_windows.find(WindowKey::of(vma));
    if (found == m_windows.end())
        return fail("{}: cryo did not prepare its file", describe(vma));
    return found->second;
}

std::vector<UnlinkedFileWindows::Range> UnlinkedFileWindows::ranges() const
{
    std::vector<Range> ranges;
    for (const auto& [key, address] : m_windows)
        ranges.push_back({ address, address + (key.end - key.start) });
    return ranges;
}

} // namespace cryo::mem
