// `cryo show`: everything is read through the same checked reader as a
// restore (manifest, checksums, headers), then printed: the manifest's
// facts, the tree drawn with its parents, sessions and groups, and per
// process its threads, memory map (protection, backing, stored bytes) and
// descriptors with their open files.
#include "inspect/show.h"

#include <sys/mman.h>

#include <fmt/format.h>

#include <ctime>
#include <functional>
#include <map>

#include "core.pb.h"
#include "fds.pb.h"
#include "image/reader.h"
#include "mm.pb.h"
#include "tree.pb.h"

namespace cryo::inspect {

namespace {

std::string protection(uint32_t prot)
{
    return fmt::format("{}{}{}", prot & PROT_READ ? 'r' : '-', prot & PROT_WRITE ? 'w' : '-', prot & PROT_EXEC ? 'x' : '-');
}

std::string describe_file(const image::OpenFile& file)
{
    if (!file.external().empty())
        return fmt::format("external {} (restore needs --inherit-fd fd[N]:{})", file.external(), file.external());
    switch (file.kind()) {
    case image::FILE_KIND_REGULAR:
        return fmt::format("file {} (pos {}, flags {:o})", file.regular().path(), file.position(), file.flags());
    case image::FILE_KIND_DIRECTORY:
        return fmt::format("directory {}", file.regular().path());
    case image::FILE_KIND_CHAR_DEVICE:
        return fmt::format("device {} ({}:{})", file.char_device().path(), file.char_device().rdev_major(),
                           file.char_device().rdev_minor());
    case image::FILE_KIND_PIPE:
        return fmt::format("{} pipe:[{}]{}", file.pipe().write_end() ? "write end of" : "read end of",
                           file.pipe().pipe_id(), file.pipe().fifo_path().empty() ? "" : " FIFO " + file.pipe().fifo_path());
    case image::FILE_KIND_EVENTFD:
        return fmt::format("eventfd (count {}{})", file.eventfd().count(), file.eventfd().semaphore() ? ", semaphore" : "");
    case image::FILE_KIND_UNIX_SOCKET:
        return fmt::format("unix socket:[{}] peer {} ({} queued messages)", file.unix_socket().inode(),
                           file.unix_socket().peer_inode(), file.unix_socket().queued_size());
    case image::FILE_KIND_EPOLL:
        return fmt::format("epoll ({} registrations)", file.epoll().targets_size());
    case image::FILE_KIND_PTY:
        if (!file.pty().master())
            return fmt::format("pty slave /dev/pts/{}", file.pty().index());
        return fmt::format("pty master of /dev/pts/{} ({}x{}{}{}{})", file.pty().index(), file.pty().window_size().rows(),
                           file.pty().window_size().cols(), file.pty().packet_mode() ? ", packet mode" : "",
                           file.pty().locked() ? ", locked" : "",
                           file.pty().session() ? fmt::format(", terminal of session {}", file.pty().session()) : "");
    default:
        return fmt::format("{} (flags {:o})", image::FileKind_Name(file.kind()), file.flags());
    }
}

void print_process(const image::ImageReader& reader, const image::ProcessEntry& entry,
                   const std::map<uint32_t, const image::OpenFile*>& files)
{
    pid_t pid = entry.pid();
    fmt::print("\nprocess {} ({})\n", pid, entry.comm());
    if (entry.state() == image::PROCESS_STATE_ZOMBIE) {
        fmt::print("  zombie, wait status {:#x}\n", entry.exit_status());
        return;
    }
    auto core = reader.read<image::ProcessCore>(image::core_name(pid), image::ImageKind::Core);
    auto memory = reader.read<image::MemoryImage>(image::memory_name(pid), image::ImageKind::Memory);
    auto fds = reader.read<image::FdTable>(image::fdtable_name(pid), image::ImageKind::FdTable);
    if (!core || !memory || !fds) {
        fmt::print("  (unreadable images)\n");
        return;
    }
    const auto& credentials = core->credentials();
    fmt::print("  uid {} gid {}  cwd {}  threads:", credentials.uids_size() ? credentials.uids(0) : 0,
               credentials.gids_size() ? credentials.gids(0) : 0, core->cwd());
    for (const auto& thread : core->threads())
        fmt::print(" {} ({})", thread.tid(), thread.comm());
    fmt::print("\n  memory ({} mappings, exe {}):\n", memory->vmas_size(), memory->fields().exe_path());
    uint64_t stored = 0;
    for (const auto& vma : memory->vmas()) {
        stored += vma.stored_bytes();
        fmt::print("    {:012x}-{:012x} {}{} {:>10} stored  {}\n", vma.start(), vma.end(), protection(vma.prot()),
                   vma.shared() ? 's' : 'p', vma.stored_bytes(), vma.path());
    }
    fmt::print("    total stored: {:.1f} MiB\n", static_cast<double>(stored) / (1 << 20));
    fmt::print("  descriptors:\n");
    for (const auto& fd : fds->fds()) {
        auto found = files.find(fd.file_id());
        fmt::print("    {:>4}{} {} [file {}]\n", fd.fd(), fd.close_on_exec() ? " (cloexec)" : "",
                   found != files.end() ? describe_file(*found->second) : "?", fd.file_id());
    }
}

} // namespace

Result<void> run_show(const ShowOptions& options)
{
    auto reader = TRY(image::ImageReader::open(options.directory));
    TRY(reader.verify());
    const auto& manifest = reader.manifest();
    auto tree = TRY(reader.read<image::ProcessTree>(std::string(image::kTreeName), image::ImageKind::Tree));
    auto files = TRY(reader.read<image::FileTable>(std::string(image::kFileTableName), image::ImageKind::FileTable));
    std::map<uint32_t, const image::OpenFile*> files_by_id;
    for (const auto& file : files.files())
        files_by_id[file.id()] = &file;

    time_t taken = static_cast<time_t>(manifest.created_unix_ns() / 1'000'000'000);
    char when[64] = "";
    std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&taken));
    fmt::print("checkpoint {}: format {}, cryo {}, host {}, kernel {}, taken {}\n", options.directory,
               manifest.format_version(), manifest.tool_version(), manifest.hostname(), manifest.kernel_release(), when);
    uint64_t total = 0;
    for (const auto& file : manifest.files())
        total += file.size();
    fmt::print("{} files, {:.1f} MiB, checksums verified\n\ntree:\n", manifest.files_size(),
               static_cast<double>(total) / (1 << 20));

    std::map<pid_t, std::vector<const image::ProcessEntry*>> children;
    for (const auto& entry : tree.processes())
        children[entry.ppid()].push_back(&entry);
    std::function<void(const image::ProcessEntry&, int)> draw = [&](const image::ProcessEntry& entry, int depth) {
        fmt::print("{}{} {}  pgid {} sid {}{}{}\n", std::string(static_cast<size_t>(depth) * 2 + 2, ' '), entry.pid(),
                   entry.comm(), entry.pgid(), entry.sid(), entry.tids_size() > 1 ? fmt::format("  {} threads", entry.tids_size()) : "",
                   entry.state() == image::PROCESS_STATE_ZOMBIE ? "  (zombie)" : "");
        for (const auto* child : children[entry.pid()])
            draw(*child, depth + 1);
    };
    for (const auto* root : children[0])
        draw(*root, 0);
    for (const auto& entry : tree.processes())
        print_process(reader, entry, files_by_id);
    return {};
}

} // namespace cryo::inspect
