// /proc/PID/limits parsing (proc/limits.h).
#include <gtest/gtest.h>

#include <unistd.h>

#include "proc/limits.h"

namespace cryo::proc {
namespace {

TEST(ProcLimits, OwnLimitsMatchGetrlimit)
{
    auto limits = read_limits(::getpid());
    ASSERT_TRUE(limits.has_value());
    ASSERT_EQ(limits->size(), static_cast<size_t>(RLIM_NLIMITS));
    for (int resource = 0; resource < RLIM_NLIMITS; ++resource) {
        rlimit expected {};
        ASSERT_EQ(::getrlimit(static_cast<__rlimit_resource>(resource), &expected), 0);
        EXPECT_EQ((*limits)[static_cast<size_t>(resource)].rlim_cur, expected.rlim_cur) << "resource " << resource;
        EXPECT_EQ((*limits)[static_cast<size_t>(resource)].rlim_max, expected.rlim_max) << "resource " << resource;
    }
}

TEST(ProcLimits, ChangedLimitIsRead)
{
    rlimit old {};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
    rlimit lower { .rlim_cur = 77, .rlim_max = old.rlim_max };
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lower), 0);
    auto limits = read_limits(::getpid());
    ::setrlimit(RLIMIT_NOFILE, &old);
    ASSERT_TRUE(limits.has_value());
    EXPECT_EQ((*limits)[RLIMIT_NOFILE].rlim_cur, 77u);
}

TEST(ProcLimits, UnexpectedTextIsRefused)
{
    EXPECT_FALSE(parse_limits("").has_value());
    EXPECT_FALSE(parse_limits("Limit  Soft Limit  Hard Limit  Units\nMax cpu time  unlimited  unlimited  seconds\n").has_value());
    std::string text = "Limit                     Soft Limit           Hard Limit           Units     \n";
    for (int i = 0; i < RLIM_NLIMITS; ++i)
        text += "Max something             12                   lots                 bytes     \n";
    EXPECT_FALSE(parse_limits(text).has_value());
}

} // namespace
} // namespace cryo::proc
