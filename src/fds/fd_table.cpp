// Dumping and reinstalling a descriptor table; see fd_table.h. The kinds of
// open file cryo understands are listed once, in kinds() below.
#include "fds/fd_table.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <array>
#include <set>

#include "base/syscalls.h"
#include "fds/file_kind.h"
#include "fds/owner.h"
#include "proc/task.h"

namespace cryo::fds {

namespace {

// The name deleted since of a file that keeps another name: another entry
// of the same directory with its inode (a hard link beside it), or "".
// The file is then that name's, opened again through it on restore.
std::string other_name_in_directory(const std::string& link, const struct stat& stat)
{
    std::string path = link.substr(0, link.size() - std::string_view(" (deleted)").size());
    std::string directory = path.substr(0, path.rfind('/') + 1);
    DIR* listing = ::opendir(directory.c_str());
    if (!listing)
        return "";
    std::string found;
    while (dirent* entry = ::readdir(listing)) {
        if (entry->d_ino != stat.st_ino)
            continue;
        std::string candidate = directory + entry->d_name;
        struct stat other {};
        if (::lstat(candidate.c_str(), &other) == 0 && other.st_dev == stat.st_dev && other.st_ino == stat.st_ino) {
            found = candidate;
            break;
        }
    }
    ::closedir(listing);
    return found;
}

const std::array<const FileKind*, 17>& kinds()
{
    static const std::array<const FileKind*, 17> table {
        &regular_file_kind(),
        &char_device_kind(),
        &directory_kind(),
        &pipe_kind(),
        &eventfd_kind(),
        &signalfd_kind(),
        &timerfd_kind(),
        &memfd_kind(),
        &ghost_file_kind(),
        &epoll_kind(),
        &unix_socket_kind(),
        &inotify_kind(),
        &fanotify_kind(),
        &pidfd_kind(),
        &pty_kind(),
        &secret_memory_kind(),
        &inet_socket_kind(),
    };
    return table;
}

const FileKind* find_kind(image::FileKind kind)
{
    for (const auto* candidate : kinds())
        if (candidate->image_kind() == kind)
            return candidate;
    return nullptr;
}

// The kind of a socket no kind recognises, from its domain, type and
// protocol ("TCP socket", "netlink socket", ...).
std::string describe_socket(int fd)
{
    int domain = 0, type = 0, protocol = 0;
    socklen_t length = sizeof(int);
    ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length);
    length = sizeof(int);
    ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length);
    length = sizeof(int);
    ::getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &length);
    std::string family;
    switch (domain) {
    case AF_INET: family = "IPv4 "; break;
    case AF_INET6: family = "IPv6 "; break;
    case AF_UNIX: family = "unix "; break;
    case AF_NETLINK: return "netlink socket";
    case AF_PACKET: return "packet socket";
    default: return fmt::format("socket of address family {}", domain);
    }
    if (domain != AF_UNIX && protocol == IPPROTO_TCP)
        return family + "TCP socket";
    if (domain != AF_UNIX && protocol == IPPROTO_UDP)
        return family + "UDP socket";
    if (type == SOCK_RAW)
        return family + "raw socket";
    return family + "socket";
}

// statfs() f_type of the mqueue file system (MQUEUE_MAGIC, missing from
// older headers).
constexpr long kMessageQueueMagic = 0x19800202;

// A readable name for a descriptor no kind recognises, for the error.
std::string describe_unsupported(const FdFacts& facts)
{
    const std::string& link = facts.link;
    if (link.starts_with("pipe:"))
        return "pipe";
    if (link.starts_with("socket:"))
        return describe_socket(facts.local_fd) + " (" + link + ")";
    if (link.starts_with("anon_inode:")) {
        std::string name = link.substr(11);
        if (name.size() > 2 && name.front() == '[' && name.back() == ']')
            name = name.substr(1, name.size() - 2);
        return name;
    }
    if (link.starts_with("/memfd:"))
        return "memfd";
    if (struct statfs filesystem {}; ::fstatfs(facts.local_fd, &filesystem) == 0 && filesystem.f_type == kMessageQueueMagic)
        return "POSIX message queue (" + link + ")";
    if (link.ends_with(" (deleted)"))
        return "deleted file (" + link + ")";
    if (S_ISFIFO(facts.stat.st_mode))
        return "FIFO (" + link + ")";
    if (S_ISBLK(facts.stat.st_mode))
        return "block device (" + link + ")";
    return "file of an unknown kind (" + link + ")";
}

int kcmp_files(pid_t pid1, int fd1, pid_t pid2, int fd2)
{
    return static_cast<int>(::syscall(SYS_kcmp, pid1, pid2, KCMP_FILE, fd1, fd2));
}

} // namespace

Result<uint32_t> FileRegistry::find_shared(pid_t pid, int fd, dev_t device, ino_t inode, size_t& position) const
{
    position = 0;
    auto same_file = m_known.find({ device, inode });
    if (same_file == m_known.end())
        return 0u;
    const auto& known_files = same_file->second;
    size_t low = 0;
    size_t high = known_files.size();
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        const auto& known = known_files[middle];
        // 0: the same open file; 1: the known one orders first; 2: after.
        int order = kcmp_files(known.pid, known.fd, pid, fd);
        if (order < 0)
            return fail_errno(fmt::format("kcmp fd {} of pid {} with fd {} of pid {}", known.fd, known.pid, fd, pid));
        if (order == 0)
            return known.id;
        if (order == 1)
            low = middle + 1;
        else if (order == 2)
            high = middle;
        else
            return fail("kcmp fd {} of pid {} with fd {} of pid {}: no order ({})", known.fd, known.pid, fd, pid, order);
    }
    position = low;
    return 0u;
}

void FileRegistry::fill_common_facts(FdFacts& facts)
{
    facts.ghost_limit = m_ghost_limit;
    facts.tcp_established = m_tcp_established;
    facts.repaired = &m_repaired;
    facts.pty_queues = &m_pty_queues;
    facts.register_in_flight = [this](UniqueFd fd) { return dump_in_flight(std::move(fd)); };
}

Result<void> FileRegistry::dump_process(pid_t image_pid, pid_t pid, int pidfd, image::FdTable& table)
{
    table.set_pid(image_pid);
    std::vector<uint32_t> epolls;   // open files of this process to resolve at the end
    for (int fd : TRY(proc::list_fds(pid))) {
        FdFacts facts;
        facts.pid = pid;
        facts.fd = fd;
        fill_common_facts(facts);
        auto local = TRY_CTX(pidfd_getfd(pidfd, fd), "fd {}", fd);
        facts.local_fd = local.get();
        if (::fstat(local.get(), &facts.stat) < 0)
            return fail_errno(fmt::format("fd {}: fstat", fd));
        facts.link = TRY_CTX(read_link(fmt::format("/proc/{}/fd/{}", pid, fd)), "fd {}", fd);
        facts.info = TRY_CTX(proc::read_fdinfo(pid, fd), "fd {}", fd);
        if (auto external = m_externals.find(facts.link); external != m_externals.end()) {
            facts.declared_external = true;
            external->second = true;
        }
        if (S_ISREG(facts.stat.st_mode) && facts.stat.st_nlink > 0 && facts.link.ends_with(" (deleted)"))
            if (auto other = other_name_in_directory(facts.link, facts.stat); !other.empty())
                facts.link = other;

        auto* entry = table.add_fds();
        entry->set_fd(fd);
        entry->set_close_on_exec((facts.info.flags & O_CLOEXEC) != 0);

        size_t position = 0;
        uint32_t id = TRY_CTX(find_shared(pid, fd, facts.stat.st_dev, facts.stat.st_ino, position), "fd {}", fd);
        if (id == 0) {
            id = TRY(add_file(facts, position, fmt::format("fd {}", fd)));
            if (m_files.files(static_cast<int>(id - 1)).kind() == image::FILE_KIND_EPOLL)
                epolls.push_back(id);
        }
        entry->set_file_id(id);
        TRY_CTX(m_locks.dump_fd_locks(pid, fd, id, facts.info, table), "file locks");
    }
    for (uint32_t id : epolls)
        TRY_CTX(resolve_epoll_targets(pid, *m_files.mutable_files(static_cast<int>(id - 1)), table), "epoll file {}", id);
    return {};
}

Result<uint32_t> FileRegistry::add_file(FdFacts& facts, size_t position, const std::string& where, bool in_flight)
{
    // A POSIX message queue looks like a (deleted) regular file.
    struct statfs filesystem {};
    bool message_queue = ::fstatfs(facts.local_fd, &filesystem) == 0 && filesystem.f_type == kMessageQueueMagic;
    auto found = std::ranges::find_if(kinds(), [&](const FileKind* kind) { return kind->recognises(facts); });
    const FileKind* kind = found == kinds().end() || message_queue ? nullptr : *found;
    if (kind == &unix_socket_kind() && m_unix_peers_external)
        facts.declared_external = true;
    if (!kind && !facts.declared_external)
        return fail("{}: {} is not supported (if it is outside the tree on purpose, dump with --external {} "
                    "and restore with --inherit-fd fd[N]:{})",
                    where, describe_unsupported(facts), facts.link, facts.link);
    if (in_flight && (kind == &unix_socket_kind() || kind == &epoll_kind()))
        return fail("not supported yet: a {} in flight ({}, sent with SCM_RIGHTS and not received yet)", kind->name(),
                    facts.link);

    auto* file = m_files.add_files();
    uint32_t id = static_cast<uint32_t>(m_files.files_size());
    file->set_id(id);
    file->set_kind(kind ? kind->image_kind() : image::FILE_KIND_UNSPECIFIED);
    file->set_flags(facts.info.flags & ~static_cast<uint32_t>(O_CLOEXEC));
    file->set_position(facts.info.pos);
    // Declared outside the tree: nothing of it is saved, the restore is
    // given it with --inherit-fd. Unix sockets handle this themselves
    // (a named peer can be connected to again).
    if (facts.declared_external && file->kind() != image::FILE_KIND_UNIX_SOCKET)
        file->set_external(facts.link);
    else if (auto same_inode = m_known.find({ facts.stat.st_dev, facts.stat.st_ino }); same_inode != m_known.end())
        for (const auto& known : same_inode->second)
            if (const auto& earlier = m_files.files(static_cast<int>(known.id - 1)); earlier.has_ghost())
                facts.ghost_path_of_inode = earlier.ghost().path();
    // Known before its kind dumps it: the files in flight a socket's dump
    // records are compared with every file known by then.
    auto& known_files = m_known[{ facts.stat.st_dev, facts.stat.st_ino }];
    known_files.insert(known_files.begin() + static_cast<std::ptrdiff_t>(position),
                       Known { facts.pid, facts.fd, id, facts.stat.st_dev, facts.stat.st_ino });
    if (!file->external().empty())
        return id;
    // The kind's dump may add files (in flight) to the table: `file` stays
    // valid (protobuf keeps each message where it is).
    TRY_CTX(kind->dump(facts, *file, m_files), "{} ({})", where, kind->name());
    TRY_CTX(dump_owner(facts.local_fd, *file), "{} ({})", where, kind->name());
    return id;
}

Result<uint32_t> FileRegistry::dump_in_flight(UniqueFd fd)
{
    FdFacts facts;
    facts.pid = ::getpid();
    facts.fd = fd.get();
    facts.local_fd = fd.get();
    fill_common_facts(facts);
    if (::fstat(fd.get(), &facts.stat) < 0)
        return fail_errno("a file in flight: fstat");
    facts.link = TRY_CTX(read_link(fmt::format("/proc/self/fd/{}", fd.get())), "a file in flight");
    facts.info = TRY_CTX(proc::read_fdinfo(facts.pid, fd.get()), "a file in flight");
    size_t position = 0;
    uint32_t id = TRY_CTX(find_shared(facts.pid, fd.get(), facts.stat.st_dev, facts.stat.st_ino, position),
                          "a file in flight ({})", facts.link);
    if (id != 0)
        return id;
    // kcmp() compares later descriptors with this one: cryo keeps it open
    // for as long as the registry lives.
    m_in_flight.push_back(std::move(fd));
    return add_file(facts, position, fmt::format("a file in flight ({})", facts.link), true);
}

namespace {

// Terminals: the pty slaves (major 136-143), virtual consoles and /dev/tty
// (4 and 5).
bool is_terminal(const image::OpenFile& file)
{
    if (file.kind() != image::FILE_KIND_CHAR_DEVICE)
        return false;
    uint32_t major = file.char_device().rdev_major();
    return (major >= 136 && major <= 143) || major == 4 || major == 5;
}

} // namespace

Result<void> FileRegistry::check_externals_used() const
{
    for (const auto& [id, used] : m_externals)
        if (!used)
            return fail("--external {}: no descriptor of the tree refers to it (expected an id as /proc/PID/fd shows "
                        "it: socket:[INODE], pipe:[INODE] or a path)",
                        id);
    return {};
}

std::string external_id(const image::OpenFile& file)
{
    if (!file.external().empty())
        return file.external();
    switch (file.kind()) {
    case image::FILE_KIND_PIPE:
        if (!file.pipe().fifo_path().empty())
            return file.pipe().fifo_path();
        return fmt::format("pipe:[{}]", file.pipe().pipe_id());
    case image::FILE_KIND_UNIX_SOCKET:
        return fmt::format("socket:[{}]", file.unix_socket().inode());
    case image::FILE_KIND_INET_SOCKET:
        return fmt::format("socket:[{}]", file.inet_socket().inode());
    case image::FILE_KIND_REGULAR:
    case image::FILE_KIND_DIRECTORY:
        return file.regular().path();
    case image::FILE_KIND_CHAR_DEVICE:
        return file.char_device().path();
    default:
        return "";
    }
}

Result<std::pair<int, std::string>> parse_inherit_fd(const std::string& text)
{
    // fd[N]:ID
    size_t close = text.find("]:");
    if (!text.starts_with("fd[") || close == std::string::npos)
        return fail("--inherit-fd '{}': expected fd[N]:ID", text);
    int fd = -1;
    auto digits = std::string_view(text).substr(3, close - 3);
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), fd);
    if (error != std::errc() || end != digits.data() + digits.size() || fd < 0)
        return fail("--inherit-fd '{}': '{}' is not a descriptor number", text, digits);
    if (::fcntl(fd, F_GETFD) < 0)
        return fail("--inherit-fd '{}': cryo has no open fd {}", text, fd);
    return std::pair(fd, text.substr(close + 2));
}

Result<std::map<uint32_t, UniqueFd>> open_files(const image::FileTable& files, const OpenOptions& options)
{
    std::map<uint32_t, UniqueFd> opened;
    OpenContext context { .table = &files, .tree_ids = options.tree_ids, .check_files = options.check_files,
                          .tcp_established = options.tcp_established };
    for (const auto& [key, fd] : options.shared) {
        int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (copy < 0)
            return fail_errno(fmt::format("fcntl(F_DUPFD_CLOEXEC) of {}", key));
        context.shared.emplace(key, UniqueFd(copy));
    }
    // Opens one file (unless it is open already).
    std::function<Result<int>(const image::OpenFile&)> open_one = [&](const image::OpenFile& file) -> Result<int> {
        if (auto done = opened.find(file.id()); done != opened.end())
            return done->second.get();
        UniqueFd fd;
        if (auto inherited = options.inherited.find(external_id(file)); inherited != options.inherited.end()) {
            int copy = ::fcntl(inherited->second, F_DUPFD_CLOEXEC, 0);
            if (copy < 0)
                return fail_errno(fmt::format("--inherit-fd: dup of fd {}", inherited->second));
            fd.reset(copy);
        } else if (!file.external().empty()) {
            return fail("file {} ({}) was declared external at dump (--external): give it with --inherit-fd fd[N]:{}",
                        file.id(), file.external(), file.external());
        } else if (const FileKind* kind = find_kind(file.kind()); !kind) {
            return fail("file {}: unknown kind {}", file.id(), static_cast<int>(file.kind()));
        } else if (options.use_own_terminal && is_terminal(file)) {
            fd = TRY_CTX(open_file("/dev/tty", reopen_flags(file.flags()) | O_NOCTTY),
                         "--shell-job: cryo's controlling terminal");
        } else {
            fd = TRY_CTX(kind->open(file, context), "file {} ({})", file.id(), kind->name());
        }
        return opened.emplace(file.id(), std::move(fd)).first->second.get();
    };
    // Files in flight on unix sockets are opened when their messages are
    // queued again, whichever comes first in the table.
    std::map<uint32_t, const image::OpenFile*> by_id;
    for (const auto& file : files.files())
        by_id.emplace(file.id(), &file);
    context.open_by_id = [&](uint32_t id) -> Result<int> {
        auto file = by_id.find(id);
        if (file == by_id.end())
            return fail("file id {} is not in files.img", id);
        return open_one(*file->second);
    };
    for (const auto& file : files.files())
        TRY(open_one(file));
    for (const auto* kind : kinds())
        TRY_CTX(kind->finish(context), "{}", kind->name());
    return opened;
}

Result<void> install_fds(const image::FdTable& table, const image::FileTable& files, const std::map<uint32_t, int>& opened,
                         std::vector<int*> keep)
{
    int highest = -1;
    for (const auto& entry : table.fds())
        highest = std::max(highest, entry.fd());
    const int base = highest + 1;

    // Move cryo's own descriptors out of the way of the image's numbers.
    for (int* fd : keep) {
        if (*fd < base) {
            int moved = ::fcntl(*fd, F_DUPFD_CLOEXEC, base);
            if (moved < 0)
                return fail_errno("fcntl(F_DUPFD_CLOEXEC) of a restore descriptor");
            ::close(*fd);
            *fd = moved;
        }
    }

    // Copies of the files this process needs, above the image's numbers.
    std::map<uint32_t, UniqueFd> copies;
    for (const auto& entry : table.fds()) {
        if (copies.contains(entry.file_id()))
            continue;
        auto found = opened.find(entry.file_id());
        if (found == opened.end())
            return fail("fd {}: file id {} is not in files.img", entry.fd(), entry.file_id());
        int copy = ::fcntl(found->second, F_DUPFD_CLOEXEC, base);
        if (copy < 0)
            return fail_errno(fmt::format("fd {}: fcntl(F_DUPFD_CLOEXEC)", entry.fd()));
        copies.emplace(entry.file_id(), UniqueFd(copy));
    }

    // Close everything that is neither kept nor one of the copies.
    std::set<int> needed;
    for (int* fd : keep)
        needed.insert(*fd);
    for (const auto& [id, fd] : copies)
        needed.insert(fd.get());
    // By ranges, not by listing /proc/self/fd: the restorer inherited every
    // file of the tree, and listing them in every process was quadratic in
    // the tree's size (100 processes with 16 fds each: 0.4 s of getdents).
    unsigned first = 0;
    for (int fd : needed) {
        if (static_cast<unsigned>(fd) > first && ::close_range(first, static_cast<unsigned>(fd) - 1, 0) < 0)
            return fail_errno("close_range");
        first = static_cast<unsigned>(fd) + 1;
    }
    if (::close_range(first, ~0u, 0) < 0)
        return fail_errno("close_range");

    for (const auto& entry : table.fds()) {
        int source = copies.at(entry.file_id()).get();
        if (::dup3(source, entry.fd(), entry.close_on_exec() ? O_CLOEXEC : 0) < 0)
            return fail_errno(fmt::format("dup3 to fd {}", entry.fd()));
    }
    // Now that every fd has its number: the epoll registrations.
    for (const auto& entry : table.fds()) {
        int index = static_cast<int>(entry.file_id()) - 1;
        if (index < 0 || index >= files.files_size() || files.files(index).id() != entry.file_id())
            return fail("fd {}: file id {} is not in files.img", entry.fd(), entry.file_id());
        const auto& file = files.files(index);
        if (file.kind() == image::FILE_KIND_EPOLL)
            TRY_CTX(register_epoll_targets(entry.fd(), file, table), "fd {} (epoll)", entry.fd());
    }
    return {};
}

} // namespace cryo::fds
