// The planning of restore/sessions.h on made-up trees: which processes are
// created before their parent's setsid(), which need a session helper, and
// what is refused.
#include <gtest/gtest.h>

#include "restore/sessions.h"

namespace cryo::restore {
namespace {

class Tree {
public:
    Tree& add(pid_t pid, pid_t ppid, pid_t sid, pid_t pgid)
    {
        auto& entry = *m_tree.add_processes();
        entry.set_pid(pid);
        entry.set_ppid(ppid);
        entry.set_sid(sid);
        entry.set_pgid(pgid);
        entry.add_ns_pids(pid);
        entry.set_state(image::PROCESS_STATE_ALIVE);
        return *this;
    }
    const image::ProcessTree& get() const { return m_tree; }

private:
    image::ProcessTree m_tree;
};

bool never(pid_t) { return false; }

TEST(SessionPlan, OwnAndInheritedSessionsNeedNothing)
{
    Tree tree;
    tree.add(10, 0, 10, 10).add(11, 10, 10, 10).add(12, 10, 12, 12).add(13, 12, 12, 13);
    auto plan = plan_sessions(tree.get(), never);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_TRUE(plan->before_parent_setsid.empty());
    EXPECT_TRUE(plan->helpers.empty());
}

// zdtm session00's CHANGESID and DOUBLE_CHANGESID cases.
TEST(SessionPlan, BornBeforeTheParentsSetsid)
{
    Tree tree;
    tree.add(10, 0, 10, 10).add(20, 10, 20, 20).add(21, 20, 10, 10);
    tree.add(30, 10, 30, 30).add(31, 30, 31, 31).add(32, 31, 10, 10);
    auto plan = plan_sessions(tree.get(), never);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_EQ(plan->before_parent_setsid, (std::set<pid_t> { 21, 31, 32 }));
    EXPECT_TRUE(plan->helpers.empty());
}

TEST(SessionPlan, GoneLeaderUnderASubreaperGetsOneHelper)
{
    Tree tree;
    tree.add(10, 0, 10, 10).add(41, 10, 40, 40).add(42, 10, 40, 40).add(43, 41, 40, 40);
    auto plan = plan_sessions(tree.get(), [](pid_t pid) { return pid == 10; });
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_TRUE(plan->before_parent_setsid.empty());
    ASSERT_EQ(plan->helpers.size(), 1u);
    EXPECT_EQ(plan->helpers[0].sid, 40);
    EXPECT_EQ(plan->helpers[0].parent, 10);
    EXPECT_EQ(plan->helpers[0].children, (std::vector<pid_t> { 41, 42 }));
}

TEST(SessionPlan, GoneLeaderWithoutASubreaperIsRefused)
{
    Tree tree;
    tree.add(10, 0, 10, 10).add(41, 10, 40, 40);
    auto plan = plan_sessions(tree.get(), never);
    ASSERT_FALSE(plan);
    EXPECT_NE(plan.error().message().find("pid 41 is in session 40, whose leader is gone, and its ancestor 10 is no "
                                          "child sub-reaper"),
              std::string::npos)
        << plan.error().message();
}

TEST(SessionPlan, LeaderElsewhereInTheTreeIsRefused)
{
    Tree tree;
    tree.add(10, 0, 10, 10).add(20, 10, 20, 20).add(30, 10, 30, 30).add(31, 30, 20, 20);
    auto plan = plan_sessions(tree.get(), [](pid_t) { return true; });
    ASSERT_FALSE(plan);
    EXPECT_NE(plan.error().message().find("whose leader pid 20 is elsewhere in the tree"), std::string::npos)
        << plan.error().message();
}

TEST(SessionPlan, BornInTwoSessionsIsRefused)
{
    // 20 would have to be born in 10's session for 21 and in 5's for 22.
    Tree tree;
    tree.add(5, 0, 5, 5).add(10, 5, 10, 10).add(20, 10, 20, 20).add(21, 20, 10, 10).add(22, 20, 5, 5);
    auto plan = plan_sessions(tree.get(), never);
    ASSERT_FALSE(plan);
    EXPECT_NE(plan.error().message().find("pid 20 would have to be born both in session"), std::string::npos)
        << plan.error().message();
}

} // namespace
} // namespace cryo::restore
