// End-to-end tests of pidfds (victim fds_pidfd) beyond the Control,
// CheckpointRestore and CheckpointTwice runs every victim of kScenarios in
// e2e_test.cpp gets: the refusal of a pidfd to a process outside the tree.
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "steps.h"

namespace cryo::e2e {

// The victim's parent (this test) is outside its tree.
TEST(FdsPidfd, PidfdToAProcessOutsideTheTreeIsRefused)
{
    expect_dump_refused("fds_pidfd", { "outside" }, {},
                        { "fd 29: pidfd: its target, pid " + std::to_string(::getpid()) + ", is outside the dumped tree" });
}

} // namespace cryo::e2e
