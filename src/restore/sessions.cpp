// Planning the sessions of a restored tree; see sessions.h.
#include "restore/sessions.h"

#include <algorithm>
#include <map>

namespace cryo::restore {

namespace {

class SessionPlanner {
public:
    SessionPlanner(const image::ProcessTree& tree, const std::function<bool(pid_t)>& is_subreaper)
        : m_is_subreaper(is_subreaper)
    {
        for (const auto& entry : tree.processes())
            m_by_pid[entry.pid()] = &entry;
    }

    Result<void> place(const image::ProcessEntry& entry)
    {
        if (entry.ppid() == 0 || entry.sid() == entry.pid() || parent(entry).sid() == entry.sid())
            return {};
        pid_t sid = entry.sid();
        // Up from the process: each one is created by its parent while the
        // parent is still in the session, before the parent's setsid().
        const image::ProcessEntry* child = &entry;
        for (;;) {
            const auto& up = parent(*child);
            if (up.sid() == sid)
                return {};
            if (up.ppid() == 0 || up.sid() != up.pid())
                return add_to_helper(entry, *child, up);
            auto born = m_born_in.find(up.pid());
            if (born != m_born_in.end() && born->second != sid)
                return fail("pid {} would have to be born both in session {} and in session {} (for its descendants {} "
                            "and {}): not supported",
                            up.pid(), born->second, sid, m_born_for.at(up.pid()), entry.pid());
            m_born_in[up.pid()] = sid;
            m_born_for[up.pid()] = entry.pid();
            m_plan.before_parent_setsid.insert(child->pid());
            child = &up;
        }
    }

    // dump/tree.cpp lets a process be in the group of its session's gone
    // leader only when it is a helper's child: the helper leads the group.
    Result<void> check_group(const image::ProcessEntry& entry) const
    {
        if (entry.ppid() == 0 || entry.pgid() != entry.sid() || m_by_pid.contains(entry.sid())
            || parent(entry).sid() == entry.sid() || parent(entry).pgid() == entry.pgid())
            return {};
        for (const auto& helper : m_plan.helpers)
            if (std::ranges::find(helper.children, entry.pid()) != helper.children.end())
                return {};
        return fail("not supported yet: pid {} is in process group {}, whose leader is gone, in session {} (not its "
                    "parent's)",
                    entry.pid(), entry.pgid(), entry.sid());
    }

    SessionPlan take() { return std::move(m_plan); }

private:
    const image::ProcessEntry& parent(const image::ProcessEntry& entry) const { return *m_by_pid.at(entry.ppid()); }

    // `top` (`entry` or its ancestor) is born in the session of `entry`,
    // whose leader is gone, from a helper under `adopter`.
    Result<void> add_to_helper(const image::ProcessEntry& entry, const image::ProcessEntry& top,
                               const image::ProcessEntry& adopter)
    {
        pid_t sid = entry.sid();
        if (m_by_pid.contains(sid))
            return fail("not supported yet: pid {} is in session {}, whose leader pid {} is elsewhere in the tree (not "
                        "its ancestor)",
                        entry.pid(), sid, sid);
        if (top.ns_pids_size() > 1)
            return fail("not supported yet: pid {} is in session {}, whose leader is gone, inside a PID namespace",
                        entry.pid(), sid);
        if (adopter.state() != image::PROCESS_STATE_ALIVE || !m_is_subreaper(adopter.pid()))
            return fail("not supported yet: pid {} is in session {}, whose leader is gone, and its ancestor {} is no "
                        "child sub-reaper (restoring it needs a helper process that pid {} adopts the children of)",
                        entry.pid(), sid, adopter.pid(), adopter.pid());
        auto helper = std::ranges::find(m_plan.helpers, sid, &SessionHelper::sid);
        if (helper == m_plan.helpers.end())
            helper = m_plan.helpers.insert(helper, SessionHelper { .sid = sid, .parent = adopter.pid() });
        if (helper->parent != adopter.pid())
            return fail("not supported yet: pid {} and pid {} are both in session {}, whose leader is gone, under "
                        "different parents",
                        helper->children.front(), top.pid(), sid);
        if (std::ranges::find(helper->children, top.pid()) == helper->children.end())
            helper->children.push_back(top.pid());
        return {};
    }

    const std::function<bool(pid_t)>& m_is_subreaper;
    std::map<pid_t, const image::ProcessEntry*> m_by_pid;
    std::map<pid_t, pid_t> m_born_in;    // pid -> the session it must be born in
    std::map<pid_t, pid_t> m_born_for;   // pid -> the descendant that needs it
    SessionPlan m_plan;
};

} // namespace

Result<SessionPlan> plan_sessions(const image::ProcessTree& tree, const std::function<bool(pid_t)>& is_subreaper)
{
    SessionPlanner planner(tree, is_subreaper);
    for (const auto& entry : tree.processes())
        TRY(planner.place(entry));
    for (const auto& entry : tree.processes())
        TRY(planner.check_group(entry));
    auto plan = planner.take();
    for (const auto& helper : plan.helpers)
        for (pid_t child : helper.children)
            if (plan.before_parent_setsid.contains(child))
                return fail("not supported yet: pid {} would have to be born both from a helper for session {} and before "
                            "its parent's setsid()",
                            child, helper.sid);
    return plan;
}

} // namespace cryo::restore
