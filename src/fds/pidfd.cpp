// pidfds: descriptors that refer to a process (pidfd_open(2),
// clone(CLONE_PIDFD)) or, with PIDFD_THREAD, to one thread.
//
// Dump: fdinfo's "Pid:" line names the target as cryo sees it (-1 once it
// was reaped); the pidfs inode identifies the process, the same for every
// pidfd to it; PIDFD_GET_INFO gives the exit status of a dead target.
// PIDFD_NONBLOCK is O_NONBLOCK and PIDFD_THREAD is O_EXCL in the file flags.
// A live (or zombie) target must be part of the dumped tree: dump.cpp
// checks that once every process is known (check_pidfd_targets()).
//
// Restore, dead target: one temporary process per dead target is created
// in cryo, every pidfd to it is opened while it lives, then it dies the way
// the original did (same exit code or signal) and is reaped. The pidfds then
// refer to one dead process, as before, and to no other.
//
// Restore, live target: the process does not exist yet while files are
// opened, so open() gives a placeholder (/dev/null) that holds the fd
// number; once the whole tree exists, restore.cpp replaces it with a
// pidfd_open() injected into the owning process (see live_pidfd_target()).
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/kill.h"
#include "base/syscalls.h"
#include "fds/file_kind.h"

namespace cryo::fds {

namespace {

// PIDFD_GET_INFO (Linux 6.13, exit status since 6.15); Debian 12's headers
// predate it.
struct PidfdInfo {
    uint64_t mask;
    uint64_t cgroupid;
    uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
    int32_t exit_code;
};
constexpr unsigned long kPidfdGetInfo = _IOWR(0xFF, 11, PidfdInfo);
constexpr uint64_t kPidfdInfoExit = 8;
constexpr uint32_t kPidfdThread = O_EXCL;

class PidFdKind final : public FileKind {
public:
    std::string_view name() const override { return "pidfd"; }

    bool recognises(const FdFacts& facts) const override { return facts.link == "anon_inode:[pidfd]"; }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        auto* pidfd = file.mutable_pidfd();
        int64_t pid = TRY(facts.info.signed_number("Pid"));
        pidfd->set_thread((facts.info.flags & kPidfdThread) != 0);
        pidfd->set_target_id(facts.stat.st_ino);
        pidfd->set_exit_status(-1);
        if (pid > 0) {
            pidfd->set_pid(static_cast<int32_t>(pid));
            return {};
        }
        pidfd->set_dead(true);
        PidfdInfo info { .mask = kPidfdInfoExit };
        if (::ioctl(facts.local_fd, kPidfdGetInfo, &info) == 0 && (info.mask & kPidfdInfoExit))
            pidfd->set_exit_status(info.exit_code);
        return {};
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext& context) const override
    {
        const auto& pidfd = file.pidfd();
        if (!pidfd.dead())
            return open_file("/dev/null", O_RDONLY | O_CLOEXEC);   // replaced once the target exists
        std::string key = fmt::format("pidfd {} {}", pidfd.target_id(), file.id());
        if (!context.shared.contains(key))
            TRY(make_dead_target(file, context));
        auto found = context.shared.find(key);
        UniqueFd fd = std::move(found->second);
        context.shared.erase(found);
        return fd;
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_PIDFD; }

private:
    // Creates the stand-in for one dead target, opens a pidfd to it for
    // every open file of the image that referred to it (into
    // context.shared, keyed by target and file id), then lets it die as the
    // original did and reaps it.
    static Result<void> make_dead_target(const image::OpenFile& file, OpenContext& context)
    {
        int status = file.pidfd().exit_status();
        int go[2];
        if (::pipe2(go, O_CLOEXEC) < 0)
            return fail_errno("pipe for the stand-in of a dead pidfd target");
        UniqueFd go_read(go[0]), go_write(go[1]);
        pid_t child = ::fork();
        if (child < 0)
            return fail_errno("fork a stand-in for a dead pidfd target");
        if (child == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            rlimit no_core {};
            ::setrlimit(RLIMIT_CORE, &no_core);
            ::close(go[1]);
            char byte;
            while (::read(go[0], &byte, 1) < 0 && errno == EINTR) { }
            if (status >= 0 && WIFSIGNALED(status)) {
                ::signal(WTERMSIG(status), SIG_DFL);
                sigset_t all;
                ::sigfillset(&all);
                ::sigprocmask(SIG_UNBLOCK, &all, nullptr);
                ::raise(WTERMSIG(status));
            }
            ::_exit(status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : 0);
        }
        auto reap = [&] {
            go_write.reset();
            int ignored;
            while (::waitpid(child, &ignored, 0) < 0 && errno == EINTR) { }
        };
        for (const auto& other : context.table->files()) {
            if (other.kind() != image::FILE_KIND_PIDFD || !other.pidfd().dead()
                || other.pidfd().target_id() != file.pidfd().target_id())
                continue;
            unsigned flags = (other.flags() & O_NONBLOCK) | (other.pidfd().thread() ? kPidfdThread : 0);
            auto opened = pidfd_open(child, flags);
            if (!opened) {
                kill_quietly(child);
                reap();
                return std::unexpected(std::move(opened.error()));
            }
            context.shared.emplace(fmt::format("pidfd {} {}", other.pidfd().target_id(), other.id()), std::move(*opened));
        }
        reap();
        return {};
    }
};

} // namespace

const FileKind& pidfd_kind()
{
    static const PidFdKind kind;
    return kind;
}

Result<void> check_pidfd_targets(const image::FileTable& files, const std::vector<const image::FdTable*>& tables,
                                 const image::ProcessTree& tree)
{
    for (const auto* table : tables)
        for (const auto& entry : table->fds()) {
            const auto& file = files.files(static_cast<int>(entry.file_id()) - 1);
            if (file.kind() != image::FILE_KIND_PIDFD || !file.has_pidfd() || file.pidfd().dead())
                continue;
            auto target = live_pidfd_target(file, tree, table->pid());
            if (!target)
                return fail("pid {}: fd {}: pidfd: {}", table->pid(), entry.fd(), target.error().message());
        }
    return {};
}

Result<pid_t> live_pidfd_target(const image::OpenFile& file, const image::ProcessTree& tree, pid_t owner)
{
    const auto& pidfd = file.pidfd();
    const image::ProcessEntry* owner_entry = nullptr;
    for (const auto& entry : tree.processes())
        if (entry.pid() == owner)
            owner_entry = &entry;
    if (!owner_entry)
        return fail("the owner, pid {}, is not in the tree", owner);
    size_t level = static_cast<size_t>(owner_entry->ns_pids_size()) - 1;
    for (const auto& entry : tree.processes()) {
        if (entry.pid() == pidfd.pid()) {
            if (static_cast<size_t>(entry.ns_pids_size()) <= level)
                return fail("its target, pid {}, is outside the owner's PID namespace", pidfd.pid());
            return entry.ns_pids(static_cast<int>(level));
        }
        for (int tid : entry.tids())
            if (tid == pidfd.pid()) {
                if (entry.ns_pids_size() > 1)
                    return fail("a pidfd to thread {} of a process in a PID namespace is not supported yet", tid);
                return tid;
            }
    }
    return fail("its target, pid {}, is outside the dumped tree (only pidfds to processes of the tree, or to "
                "processes that died, can be restored)",
                pidfd.pid());
}

} // namespace cryo::fds
