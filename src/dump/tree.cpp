// See tree.h.
#include "dump/tree.h"

#include <sys/ptrace.h>
#include <unistd.h>

#include <deque>
#include <map>
#include <ranges>

#include "proc/cgroup.h"
#include "proc/stat.h"
#include "proc/status.h"
#include "proc/task.h"
#include "ptrace/same_cpu.h"

namespace cryo::dump {

namespace {

Result<image::ProcessEntry> make_entry(const proc::ProcStat& stat, pid_t ppid)
{
    image::ProcessEntry entry;
    auto status = TRY(proc::read_status(stat.pid));
    for (pid_t pid : status.ns_pid)
        entry.add_ns_pids(pid);
    if (status.ns_pid.empty())
        entry.add_ns_pids(stat.pid);
    entry.set_own_ns_pgid(status.ns_pgid.empty() ? stat.pgrp : status.ns_pgid.back());
    entry.set_pid(stat.pid);
    entry.set_ppid(ppid);
    entry.set_pgid(stat.pgrp);
    entry.set_sid(stat.session);
    entry.set_comm(stat.comm);
    return entry;
}

} // namespace

Result<FrozenTree> FrozenTree::freeze(pid_t root)
{
    if (!proc::process_exists(root))
        return fail("pid {}: no such process", root);
    FrozenTree tree;
    tree.m_tree.set_root_pid(root);
    // Breadth first, so parents come before their children.
    std::deque<std::pair<pid_t, pid_t>> pending { { root, 0 } };
    while (!pending.empty()) {
        auto [pid, ppid] = pending.front();
        pending.pop_front();
        auto stat = TRY_CTX(proc::read_stat(pid), "pid {}", pid);
        // A zombie leader whose threads run on is a live process.
        if ((stat.state != 'Z' && stat.state != 'X') || has_exited_leader(pid)) {
            auto frozen = FrozenProcess::freeze(pid);
            if (frozen) {
                auto entry = TRY_CTX(make_entry(TRY_CTX(proc::read_stat(pid), "pid {}", pid), ppid), "pid {}", pid);
                entry.set_state(image::PROCESS_STATE_ALIVE);
                entry.set_stop_signal(frozen->stop_signal());
                for (auto& thread : frozen->threads())
                    entry.add_tids(thread.tid());
                entry.set_cgroup(TRY_CTX(proc::read_process_cgroup(pid, { entry.tids().begin(), entry.tids().end() }),
                                         "pid {}", pid));
                *tree.m_tree.add_processes() = std::move(entry);
                for (pid_t child : TRY_CTX(proc::list_process_children(pid), "pid {}", pid))
                    pending.emplace_back(child, pid);
                tree.m_processes.push_back(std::move(*frozen));
                continue;
            }
            // It may have exited while we were freezing it.
            auto again = proc::read_stat(pid);
            if (!again || (again->state != 'Z' && again->state != 'X') || has_exited_leader(pid) || pid == root)
                return std::unexpected(std::move(frozen.error()));
            stat = *again;
        }
        if (pid == root)
            return fail("pid {} is a zombie: nothing to checkpoint", pid);
        auto entry = TRY_CTX(make_entry(stat, ppid), "pid {}", pid);
        entry.set_state(image::PROCESS_STATE_ZOMBIE);
        entry.add_tids(pid);
        entry.set_exit_status(stat.exit_code);
        *tree.m_tree.add_processes() = std::move(entry);
    }
    TRY(tree.check_sessions());
    return tree;
}

Result<void> FrozenTree::check_sessions() const
{
    std::map<pid_t, const image::ProcessEntry*> by_pid;
    for (const auto& entry : m_tree.processes())
        by_pid[entry.pid()] = &entry;
    int own_levels = 1;
    if (auto status = proc::read_status(::getpid()); status && !status->ns_pid.empty())
        own_levels = static_cast<int>(status->ns_pid.size());
    for (const auto& entry : m_tree.processes()) {
        if (entry.ppid() == 0) {
            // A tree can own a PID namespace (its root is pid 1 there) but
            // cannot be restored into a namespace it shares with others.
            if (entry.ns_pids_size() > own_levels && entry.ns_pids(entry.ns_pids_size() - 1) != 1)
                return fail("not supported yet: pid {} is pid {} of a PID namespace it does not own", entry.pid(),
                            entry.ns_pids(entry.ns_pids_size() - 1));
            continue;   // the root keeps the session and group it is restored into
        }
        // A session neither its own nor its parent's: restore/sessions.h,
        // checked once the sub-reapers are known.
        const auto& parent = *by_pid.at(entry.ppid());
        if (entry.pgid() == entry.pid() || entry.pgid() == parent.pgid())
            continue;
        // A group that is its session whose leader is gone: the session's
        // helper leads both.
        if (entry.pgid() == entry.sid() && entry.sid() != parent.sid() && !by_pid.contains(entry.sid()))
            continue;
        auto leader = by_pid.find(entry.pgid());
        if (leader != by_pid.end() && leader->second->sid() != entry.sid())
            return fail("pid {} is in process group {} of another session", entry.pid(), entry.pgid());
        // A group whose leader is gone is held by a helper process on
        // restore, created by this process's parent in its session.
        if (leader == by_pid.end() && (entry.sid() != parent.sid() || entry.ns_pids_size() > 2))
            return fail("not supported yet: pid {} is in process group {}, whose leader is gone, in session {} "
                        "(not its parent's)", entry.pid(), entry.pgid(), entry.sid());
    }
    return {};
}

Result<void> FrozenTree::kill()
{
    // Children first, so no parent is left to notice a child's death.
    ptrace::ApartCpu apart;
    for (auto& process : m_processes | std::views::reverse)
        TRY(process.kill(apart));
    return {};
}

} // namespace cryo::dump
