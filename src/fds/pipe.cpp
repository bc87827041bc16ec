// Pipes and FIFOs (named pipes): both ends, the bytes sitting in the pipe
// and its buffer size.
//
// Dump: the data is copied without consuming it with tee(2) from a readable
// end of the pipe (cryo's pidfd_getfd copy of the read end, or, when only
// the write end is in the tree, the read end opened again through
// /proc/PID/fd/N) into a pipe of cryo's own, and read from there. It is
// saved once per pipe, in FileTable.pipes.
//
// Restore: cryo creates each pipe once, sets its size and writes the data
// back (a FIFO whose name was removed is made again and its name removed); every open file of the pipe is a new open file description of the
// right end, made by reopening /proc/self/fd/END with the dumped access mode
// and flags (a pipe reopened through /proc is the same pipe). Descriptors
// that shared one description get it by dup, as for every kind. An end whose
// peer was outside the tree gets a peer that is gone (EOF or EPIPE), as with
// criu.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <set>
#include <string>

#include "fds/file_kind.h"
#include "proc/stat.h"

namespace cryo::fds {

namespace {

std::string boot_id()
{
    auto text = read_text_file("/proc/sys/kernel/random/boot_id");
    if (!text)
        return "";
    while (!text->empty() && text->back() == '\n')
        text->pop_back();
    return *text;
}

// Whether the tree has an open file of each end of pipe `id`.
bool holds_both_ends(const image::FileTable& table, uint64_t id)
{
    bool ends[2] = { false, false };
    for (const auto& file : table.files())
        if (file.has_pipe() && file.pipe().pipe_id() == id)
            ends[file.pipe().write_end() ? 1 : 0] = true;
    return ends[0] && ends[1];
}

// "/proc/P/fd/N" of `process` holding pipe link `wanted`, or "".
std::string find_pipe_in(const std::filesystem::path& process, const std::string& wanted)
{
    std::error_code fd_error;
    for (const auto& fd : std::filesystem::directory_iterator(process / "fd", fd_error)) {
        std::error_code link_error;
        if (std::filesystem::read_symlink(fd.path(), link_error).string() == wanted)
            return fd.path().string();
    }
    return "";
}

// "/proc/P/fd/N" of a live process holding the pipe, or "". cryo's own
// ancestors first: the program that started the restore usually holds the
// other end (a shell's pipeline, a supervisor, a test harness), and reading
// every link of every process of a busy machine takes long.
std::string find_live_pipe(uint64_t id)
{
    std::string wanted = fmt::format("pipe:[{}]", id);
    std::set<pid_t> searched;
    for (pid_t ancestor = ::getppid(); ancestor > 1 && searched.insert(ancestor).second;) {
        if (auto found = find_pipe_in(fmt::format("/proc/{}", ancestor), wanted); !found.empty())
            return found;
        auto stat = proc::read_stat(ancestor);
        ancestor = stat ? stat->ppid : 0;
    }
    std::error_code error;
    for (const auto& process : std::filesystem::directory_iterator("/proc", error)) {
        auto name = process.path().filename().string();
        if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0])))
            continue;
        if (searched.contains(static_cast<pid_t>(std::stol(name))))
            continue;
        if (auto found = find_pipe_in(process.path(), wanted); !found.empty())
            return found;
    }
    return "";
}

Result<std::string> peek_pipe(const FdFacts& facts)
{
    UniqueFd reopened;
    int readable = facts.local_fd;
    if ((facts.info.flags & O_ACCMODE) != O_RDONLY) {
        reopened = TRY(open_file(fmt::format("/proc/{}/fd/{}", facts.pid, facts.fd), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
        readable = reopened.get();
    }
    int size = ::fcntl(readable, F_GETPIPE_SZ);
    if (size < 0)
        return fail_errno("fcntl(F_GETPIPE_SZ)");
    int ours[2];
    if (::pipe2(ours, O_CLOEXEC | O_NONBLOCK) < 0)
        return fail_errno("pipe2");
    UniqueFd our_read(ours[0]);
    UniqueFd our_write(ours[1]);
    if (::fcntl(ours[1], F_SETPIPE_SZ, size) < 0)
        return fail_errno("fcntl(F_SETPIPE_SZ)");
    ssize_t copied = ::tee(readable, ours[1], static_cast<size_t>(size), SPLICE_F_NONBLOCK);
    if (copied < 0 && errno != EAGAIN)
        return fail_errno("tee");
    std::string data(copied > 0 ? static_cast<size_t>(copied) : 0, '\0');
    // Pipes have no offset: read() the copy (it holds exactly `copied`).
    if (!data.empty() && ::read(our_read.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size()))
        return fail_errno("read the copy of the pipe");
    return data;
}

class PipeKind final : public FileKind {
public:
    std::string_view name() const override { return "pipe"; }

    bool recognises(const FdFacts& facts) const override
    {
        return S_ISFIFO(facts.stat.st_mode) && (facts.link.starts_with("pipe:") || facts.link.starts_with('/'));
    }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable& table) const override
    {
        uint64_t id = facts.stat.st_ino;
        std::string fifo_path = facts.link.starts_with('/') ? facts.link : "";
        constexpr std::string_view kDeleted = " (deleted)";
        bool unlinked = fifo_path.ends_with(kDeleted);
        if (unlinked)
            fifo_path.resize(fifo_path.size() - kDeleted.size());
        auto* end = file.mutable_pipe();
        end->set_pipe_id(id);
        end->set_write_end((facts.info.flags & O_ACCMODE) != O_RDONLY);
        end->set_fifo_path(fifo_path);
        for (const auto& pipe : table.pipes())
            if (pipe.pipe_id() == id)
                return {};
        auto* saved = table.add_pipes();
        saved->set_pipe_id(id);
        saved->set_fifo_path(fifo_path);
        saved->set_fifo_unlinked(unlinked);
        saved->set_fifo_mode(facts.stat.st_mode & 07777);
        int size = ::fcntl(facts.local_fd, F_GETPIPE_SZ);
        if (size < 0)
            return fail_errno("fcntl(F_GETPIPE_SZ)");
        saved->set_buffer_size(static_cast<uint32_t>(size));
        saved->set_boot_id(boot_id());
        saved->set_data(TRY(peek_pipe(facts)));
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext& context) const override
    {
        uint64_t id = file.pipe().pipe_id();
        std::string read_key = fmt::format("pipe:{}:read", id);
        std::string write_key = fmt::format("pipe:{}:write", id);
        if (!context.shared.contains(read_key))
            TRY(find_or_create_pipe(id, context, read_key, write_key));
        const std::string& end_key = file.pipe().write_end() ? write_key : read_key;
        if (auto own = take_own_end(file, context, end_key))
            return own;
        return open_file(fmt::format("/proc/self/fd/{}", context.shared.at(end_key).get()), reopen_flags(file.flags()));
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_PIPE; }

private:
    static Result<void> find_or_create_pipe(uint64_t id, OpenContext& context, const std::string& read_key,
                                            const std::string& write_key)
    {
        const image::PipeData* saved = nullptr;
        for (const auto& pipe : context.table->pipes())
            if (pipe.pipe_id() == id)
                saved = &pipe;
        if (!saved)
            return fail("pipe {} has no saved data in files.img", id);
        if (!saved->fifo_path().empty())
            return open_fifo(*saved, context, read_key, write_key);
        // A pipe the tree holds both ends of is its own: made again, never
        // looked for among every process of the machine (reading each
        // /proc/P/fd link took 2 ms per restore on an idle VM) nor joined to
        // a live one, which would be the original's (dump --leave-running).
        if (!saved->boot_id().empty() && saved->boot_id() == boot_id() && !holds_both_ends(*context.table, id)) {
            if (auto live = find_live_pipe(id); !live.empty()) {
                // Both ends of the live pipe, opened through /proc, never
                // blocking (the other end exists).
                context.shared.emplace(read_key, TRY(open_file(live, O_RDONLY | O_NONBLOCK | O_CLOEXEC)));
                context.shared.emplace(write_key, TRY(open_file(live, O_WRONLY | O_NONBLOCK | O_CLOEXEC)));
                return {};
            }
        }
        int ends[2];
        if (::pipe2(ends, O_CLOEXEC | O_NONBLOCK) < 0)
            return fail_errno("pipe2");
        context.shared.emplace(read_key, UniqueFd(ends[0]));
        context.shared.emplace(write_key, UniqueFd(ends[1]));
        for (const auto& key : { read_key, write_key }) {
            int copy = ::fcntl(context.shared.at(key).get(), F_DUPFD_CLOEXEC, 0);
            if (copy < 0)
                return fail_errno(fmt::format("fcntl(F_DUPFD) of pipe {}", id));
            context.shared.emplace(key + ":own", UniqueFd(copy));
        }
        if (saved->buffer_size() && ::fcntl(ends[1], F_SETPIPE_SZ, saved->buffer_size()) < 0)
            return fail_errno(fmt::format("fcntl(F_SETPIPE_SZ, {})", saved->buffer_size()));
        TRY(write_all(ends[1], saved->data(), fmt::format("pipe {}", id)));
        return {};
    }

    // The first open file of each end of a pipe cryo made is that end's own
    // description from pipe2(), with the dumped status flags: a description
    // reopened through /proc carries O_LARGEFILE, which F_SETFL cannot
    // clear and pipe() never sets. Null when taken already, when the access
    // mode is not the end's own, or for a FIFO or a live pipe.
    static UniqueFd take_own_end(const image::OpenFile& file, OpenContext& context, const std::string& end_key)
    {
        int wanted_access = file.pipe().write_end() ? O_WRONLY : O_RDONLY;
        if ((static_cast<int>(file.flags()) & O_ACCMODE) != wanted_access)
            return {};
        auto node = context.shared.extract(end_key + ":own");
        if (node.empty())
            return {};
        constexpr int kSettable = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME;
        if (::fcntl(node.mapped().get(), F_SETFL, reopen_flags(file.flags()) & kSettable) < 0)
            return {};
        return std::move(node.mapped());
    }

    static Result<void> open_fifo(const image::PipeData& saved, OpenContext& context, const std::string& read_key,
                                  const std::string& write_key)
    {
        if (saved.fifo_unlinked())
            return open_unlinked_fifo(saved, context, read_key, write_key);
        const std::string& path = saved.fifo_path();
        if (::mkfifo(path.c_str(), 0600) < 0 && errno != EEXIST)
            return fail_errno(fmt::format("mkfifo {}", path));
        // Read-write: a reader and a writer at once, so nothing blocks.
        auto hold = TRY(open_file(path, O_RDWR | O_NONBLOCK | O_CLOEXEC));
        return fill_fifo(std::move(hold), saved, context, read_key, write_key);
    }

    // A FIFO whose name was removed while open: made again at its old path
    // (or beside it when the path is taken) with its mode, opened, and its
    // name removed again.
    static Result<void> open_unlinked_fifo(const image::PipeData& saved, OpenContext& context,
                                           const std::string& read_key, const std::string& write_key)
    {
        std::string path = saved.fifo_path();
        struct stat existing {};
        if (::lstat(path.c_str(), &existing) == 0)
            path += fmt::format(".cryo-{}-{}", saved.pipe_id(), ::getpid());
        mode_t mode = saved.fifo_mode() ? saved.fifo_mode() : 0600;
        if (::mkfifo(path.c_str(), mode) < 0)
            return fail_errno(fmt::format("mkfifo {} for the unlinked FIFO {}", path, saved.fifo_path()));
        ::chmod(path.c_str(), mode);   // the umask may have masked bits
        auto hold = open_file(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        ::unlink(path.c_str());
        if (!hold)
            return std::unexpected(hold.error());
        return fill_fifo(std::move(*hold), saved, context, read_key, write_key);
    }

    static Result<void> fill_fifo(UniqueFd hold, const image::PipeData& saved, OpenContext& context,
                                  const std::string& read_key, const std::string& write_key)
    {
        const std::string& path = saved.fifo_path();
        struct stat st {};
        if (::fstat(hold.get(), &st) < 0 || !S_ISFIFO(st.st_mode))
            return fail("{} is no longer a FIFO", path);
        int queued = 0;
        if (::ioctl(hold.get(), FIONREAD, &queued) == 0 && queued == 0 && !saved.data().empty()) {
            if (saved.buffer_size())
                (void)::fcntl(hold.get(), F_SETPIPE_SZ, saved.buffer_size());
            TRY(write_all(hold.get(), saved.data(), fmt::format("FIFO {}", path)));
        }
        int copy = ::fcntl(hold.get(), F_DUPFD_CLOEXEC, 0);
        if (copy < 0)
            return fail_errno("dup");
        context.shared.emplace(read_key, std::move(hold));
        context.shared.emplace(write_key, UniqueFd(copy));
        return {};
    }
};

} // namespace

const FileKind& pipe_kind()
{
    static const PipeKind kind;
    return kind;
}

} // namespace cryo::fds
