// Tests for the /proc/PID/cgroup parser, with text captured on a hybrid
// (v1 and v2) machine, a unified-only one and a v1-only one.
#include <unistd.h>

#include <gtest/gtest.h>

#include "proc/cgroup.h"

namespace cryo::proc {

TEST(ProcCgroup, UnifiedLineOfAHybridMachine)
{
    const char* text = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/94bdc206\n1:cpu:/\n0::/user.slice/a b\n";
    EXPECT_EQ(parse_cgroup_v2_path(text), "/user.slice/a b");
}

TEST(ProcCgroup, UnifiedOnly)
{
    EXPECT_EQ(parse_cgroup_v2_path("0::/\n"), "/");
    EXPECT_EQ(parse_cgroup_v2_path("0::/system.slice/cron.service"), "/system.slice/cron.service");
}

TEST(ProcCgroup, NoUnifiedHierarchy)
{
    EXPECT_EQ(parse_cgroup_v2_path("3:cpuset:/\n2:cpu,cpuacct:/\n"), std::nullopt);
    EXPECT_EQ(parse_cgroup_v2_path(""), std::nullopt);
}

TEST(ProcCgroup, OwnProcessAndThreadAgree)
{
    auto path = read_process_cgroup(::getpid(), { ::getpid() });
    ASSERT_TRUE(path) << path.error().message();
    EXPECT_TRUE(path->empty() || path->starts_with("/"));
}

} // namespace cryo::proc
