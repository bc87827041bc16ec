// UTS and IPC namespaces of the tree; see namespaces.h.
#include "ns/namespaces.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <set>
#include <cstring>
#include <functional>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/scope_guard.h"
#include "ns/ipc.h"
#include "proc/maps.h"

namespace cryo::ns {

namespace {

struct Kind {
    image::NamespaceKind kind;
    int flag;                 // CLONE_NEW*
    std::string_view file;    // under /proc/PID/ns
    std::string_view name;
};

constexpr std::array<Kind, 2> kKinds { {
    { image::NAMESPACE_KIND_UTS, CLONE_NEWUTS, "uts", "UTS" },
    { image::NAMESPACE_KIND_IPC, CLONE_NEWIPC, "ipc", "IPC" },
} };

uint64_t namespace_of(const image::ProcessEntry& entry, image::NamespaceKind kind)
{
    return kind == image::NAMESPACE_KIND_UTS ? entry.uts_ns() : entry.ipc_ns();
}

void set_namespace_of(image::ProcessEntry& entry, image::NamespaceKind kind, uint64_t id)
{
    if (kind == image::NAMESPACE_KIND_UTS)
        entry.set_uts_ns(id);
    else
        entry.set_ipc_ns(id);
}

// Runs `work` in a child of cryo and returns what it answered. With
// `while_held`, the child waits after answering until `while_held` (given
// its pid) returned, so that cryo can open its /proc/PID/ns files.
Result<std::string> run_helper(const std::function<Result<std::string>()>& work,
                               const std::function<Result<void>(pid_t)>& while_held = {})
{
    int answer_pipe[2], hold_pipe[2];
    if (::pipe2(answer_pipe, O_CLOEXEC) < 0)
        return fail_errno("pipe");
    UniqueFd answer_read(answer_pipe[0]), answer_write(answer_pipe[1]);
    if (::pipe2(hold_pipe, O_CLOEXEC) < 0)
        return fail_errno("pipe");
    UniqueFd hold_read(hold_pipe[0]), hold_write(hold_pipe[1]);
    pid_t child = ::fork();
    if (child < 0)
        return fail_errno("fork a namespace helper");
    if (child == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        answer_read.reset();
        hold_write.reset();
        auto result = work();
        std::string answer = result ? "+" + *result : "-" + result.error().message();
        bool sent = write_all(answer_write.get(), answer, "answer").has_value();
        answer_write.reset();
        char byte;
        while (::read(hold_read.get(), &byte, 1) < 0 && errno == EINTR) { }
        ::_exit(sent && result ? 0 : 1);
    }
    answer_write.reset();
    hold_read.reset();
    // Whatever happens below, the child is let go and reaped.
    ScopeGuard reap([&] {
        hold_write.reset();
        while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) { }
    });
    auto answer = TRY(read_all(answer_read.get(), "the namespace helper's answer"));
    if (answer.empty())
        return fail("the namespace helper pid {} died", child);
    if (answer[0] == '-')
        return fail("{}", answer.substr(1));
    if (while_held)
        TRY(while_held(child));
    return answer.substr(1);
}

Result<struct stat> stat_namespace(const std::string& path)
{
    struct stat status {};
    if (::stat(path.c_str(), &status) < 0)
        return fail_errno(fmt::format("stat {}", path));
    return status;
}

Result<image::Namespace> read_namespace(pid_t pid, const Kind& kind, uint64_t id)
{
    std::string path = fmt::format("/proc/{}/ns/{}", pid, kind.file);
    auto target = TRY(open_file(path, O_RDONLY | O_CLOEXEC));
    auto answer = TRY_CTX(run_helper([&]() -> Result<std::string> {
        if (::setns(target.get(), kind.flag) < 0)
            return fail_errno(fmt::format("setns {}", path));
        image::Namespace saved;
        if (kind.kind == image::NAMESPACE_KIND_UTS) {
            utsname names {};
            if (::uname(&names) < 0)
                return fail_errno("uname");
            saved.mutable_uts()->set_hostname(names.nodename);
            saved.mutable_uts()->set_domainname(names.domainname);
        } else {
            *saved.mutable_ipc() = TRY(read_ipc_namespace());
        }
        return saved.SerializeAsString();
    }), "pid {}: {} namespace {}:[{}]", pid, kind.name, kind.file, id);
    image::Namespace saved;
    if (!saved.ParseFromString(answer))
        return fail("pid {}: {} namespace: the helper's answer does not parse", pid, kind.name);
    saved.set_id(id);
    saved.set_kind(kind.kind);
    return saved;
}

Result<void> fill_namespace(const image::Namespace& saved)
{
    if (saved.kind() == image::NAMESPACE_KIND_UTS) {
        const auto& uts = saved.uts();
        if (::sethostname(uts.hostname().data(), uts.hostname().size()) < 0)
            return fail_errno(fmt::format("sethostname {}", uts.hostname()));
        if (::setdomainname(uts.domainname().data(), uts.domainname().size()) < 0)
            return fail_errno(fmt::format("setdomainname {}", uts.domainname()));
        return {};
    }
    return fill_ipc_namespace(saved.ipc());
}

const Kind& kind_of(image::NamespaceKind kind)
{
    return kind == image::NAMESPACE_KIND_UTS ? kKinds[0] : kKinds[1];
}

// The System V segments of cryo's IPC namespace that processes of the tree
// have attached (their VMAs name them /SYSVKEY, the inode is the id).
Result<void> record_host_segments(image::ProcessTree& tree)
{
    std::set<int> ids;
    for (const auto& entry : tree.processes()) {
        if (entry.state() != image::PROCESS_STATE_ALIVE || entry.ipc_ns() != 0)
            continue;
        for (const auto& map : TRY_CTX(proc::read_maps(entry.pid()), "pid {}", entry.pid()))
            if (map.shared && map.path.starts_with("/SYSV"))
                ids.insert(static_cast<int>(map.inode));
    }
    return read_shared_memory_segments(ids, *tree.mutable_host_shared_memory());
}

} // namespace

Result<void> record_namespaces(image::ProcessTree& tree)
{
    std::map<pid_t, const image::ProcessEntry*> by_pid;
    for (auto& entry : *tree.mutable_processes()) {
        if (entry.state() != image::PROCESS_STATE_ALIVE) {
            // Gone from /proc/PID/ns: a zombie stays where its parent is.
            if (auto parent = by_pid.find(entry.ppid()); parent != by_pid.end()) {
                entry.set_uts_ns(parent->second->uts_ns());
                entry.set_ipc_ns(parent->second->ipc_ns());
            }
            by_pid[entry.pid()] = &entry;
            continue;
        }
        for (const auto& kind : kKinds) {
            auto own = TRY(stat_namespace(fmt::format("/proc/self/ns/{}", kind.file)));
            // Through a live thread: a leader that exited has no namespaces.
            pid_t thread = entry.tids_size() > 0 ? entry.tids(0) : entry.pid();
            auto target = TRY_CTX(stat_namespace(fmt::format("/proc/{}/ns/{}", thread, kind.file)), "pid {}",
                                  entry.pid());
            if (target.st_ino == own.st_ino && target.st_dev == own.st_dev)
                continue;
            set_namespace_of(entry, kind.kind, target.st_ino);
            bool recorded = false;
            for (const auto& saved : tree.namespaces())
                recorded = recorded || (saved.kind() == kind.kind && saved.id() == target.st_ino);
            if (!recorded)
                *tree.add_namespaces() = TRY(read_namespace(thread, kind, target.st_ino));
        }
        by_pid[entry.pid()] = &entry;
    }
    return record_host_segments(tree);
}

std::string describe_namespace(const image::Namespace& saved, const image::ProcessTree& tree)
{
    const Kind& kind = kind_of(saved.kind());
    std::vector<int> pids;
    for (const auto& entry : tree.processes())
        if (namespace_of(entry, kind.kind) == saved.id())
            pids.push_back(entry.pid());
    std::string content;
    if (saved.kind() == image::NAMESPACE_KIND_UTS) {
        content = fmt::format("hostname {}, domain name {}", saved.uts().hostname(), saved.uts().domainname());
    } else {
        const auto& ipc = saved.ipc();
        uint64_t stored = 0, messages = 0;
        for (const auto& segment : ipc.shared_memory())
            stored += segment.content().size();
        for (const auto& queue : ipc.message_queues())
            messages += static_cast<uint64_t>(queue.messages_size());
        content = fmt::format("{} shared memory segments ({} bytes stored), {} semaphore sets, {} message queues ({} "
                              "messages), {} sysctls",
                              ipc.shared_memory_size(), stored, ipc.semaphores_size(), ipc.message_queues_size(), messages,
                              ipc.sysctls_size());
    }
    return fmt::format("{}:[{}] {} (pids {})", kind.file, saved.id(), content, fmt::join(pids, ", "));
}

Result<NamespaceSet> NamespaceSet::create(const image::ProcessTree& tree)
{
    NamespaceSet set;
    for (const auto& segment : tree.host_shared_memory())
        if (TRY(restore_host_segment(segment)))
            set.m_host_segments.push_back(segment.permissions().id());
    if (tree.namespaces_size() == 0)
        return set;
    for (const auto& kind : kKinds)
        set.m_own[kind.kind] = TRY(open_file(fmt::format("/proc/self/ns/{}", kind.file), O_RDONLY | O_CLOEXEC));
    for (const auto& saved : tree.namespaces()) {
        const Kind& kind = kind_of(saved.kind());
        UniqueFd created;
        TRY_CTX(run_helper(
                    [&]() -> Result<std::string> {
                        if (::unshare(kind.flag) < 0)
                            return fail_errno(fmt::format("unshare(CLONE_NEW{})", kind.name));
                        TRY(fill_namespace(saved));
                        return std::string();
                    },
                    [&](pid_t helper) -> Result<void> {
                        created = TRY(open_file(fmt::format("/proc/{}/ns/{}", helper, kind.file), O_RDONLY | O_CLOEXEC));
                        return {};
                    }),
                "{} namespace {}:[{}] of the checkpoint", kind.name, kind.file, saved.id());
        if (saved.kind() == image::NAMESPACE_KIND_IPC)
            TRY_CTX(run_helper([&]() -> Result<std::string> {
                        if (::setns(created.get(), CLONE_NEWIPC) < 0)
                            return fail_errno("setns");
                        TRY(write_shm_rmid_forced(saved.ipc()));
                        return std::string();
                    }),
                    "IPC namespace ipc:[{}] of the checkpoint", saved.id());
        set.m_created[{ saved.kind(), saved.id() }] = std::move(created);
    }
    return set;
}

Result<void> NamespaceSet::enter(const image::ProcessEntry& entry, const image::ProcessEntry* parent) const
{
    if (m_own.empty())
        return {};
    for (const auto& kind : kKinds) {
        uint64_t wanted = namespace_of(entry, kind.kind);
        if (wanted == (parent ? namespace_of(*parent, kind.kind) : 0))
            continue;
        int fd = wanted == 0 ? m_own.at(kind.kind).get() : m_created.at({ kind.kind, wanted }).get();
        if (::setns(fd, kind.flag) < 0)
            return fail_errno(fmt::format("enter the {} namespace {}:[{}] of the checkpoint", kind.name, kind.file, wanted));
    }
    return {};
}

NamespaceSet::~NamespaceSet()
{
    for (int id : m_host_segments)
        (void)remove_segment(id);
}

Result<void> NamespaceSet::remove_destroyed_segments(const image::ProcessTree& tree) const
{
    for (const auto& segment : tree.host_shared_memory())
        if (segment.removed())
            TRY(remove_segment(segment.permissions().id()));
    for (const auto& saved : tree.namespaces()) {
        if (saved.kind() != image::NAMESPACE_KIND_IPC)
            continue;
        const auto& segments = saved.ipc().shared_memory();
        if (std::ranges::none_of(segments, [](const auto& segment) { return segment.removed(); }))
            continue;
        int fd = m_created.at({ saved.kind(), saved.id() }).get();
        TRY_CTX(run_helper([&]() -> Result<std::string> {
                    if (::setns(fd, CLONE_NEWIPC) < 0)
                        return fail_errno("setns");
                    for (const auto& segment : segments)
                        if (segment.removed())
                            TRY(remove_segment(segment.permissions().id()));
                    return std::string();
                }),
                "IPC namespace ipc:[{}] of the checkpoint", saved.id());
    }
    return {};
}

} // namespace cryo::ns
