// The CRYO_CHECK_LEAKS switch (src/cli/leak_check.h): off unless the
// variable is 1; a descriptor opened after the start is reported, with what
// it is, and no longer once it is closed.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "cli/leak_check.h"

namespace {

TEST(LeakCheck, OffUnlessAskedFor)
{
    ::unsetenv("CRYO_CHECK_LEAKS");
    EXPECT_FALSE(cryo::cli::LeakCheck::from_environment().has_value());
    ::setenv("CRYO_CHECK_LEAKS", "0", 1);
    EXPECT_FALSE(cryo::cli::LeakCheck::from_environment().has_value());
    ::unsetenv("CRYO_CHECK_LEAKS");
}

TEST(LeakCheck, ReportsADescriptorOpenedSinceTheStart)
{
    ::setenv("CRYO_CHECK_LEAKS", "1", 1);
    auto check = cryo::cli::LeakCheck::from_environment();
    ::unsetenv("CRYO_CHECK_LEAKS");
    ASSERT_TRUE(check.has_value());
    EXPECT_EQ(check->leaks(), "");
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    std::string leaks = check->leaks();
    EXPECT_NE(leaks.find("fd " + std::to_string(fd) + " (/dev/null)"), std::string::npos) << leaks;
    ::close(fd);
    EXPECT_EQ(check->leaks(), "");
}

} // namespace
