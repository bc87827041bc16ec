// End-to-end tests of pidfds (victim fds_pidfd): to a live child, a zombie,
// dead and reaped children (two pidfds to one of them), the process itself
// and one of its threads; and the refusal of a pidfd to a process outside
// the tree.
#include <string>

#include <gtest/gtest.h>

#include "harness.h"
#include "steps.h"

namespace cryo::e2e {

namespace {

constexpr const char* kVictim = "fds_pidfd";

} // namespace

TEST(FdsPidfd, Control)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    release_and_expect_pass(session, pid);
}

TEST(FdsPidfd, CheckpointRestore)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
}

// The restored pidfds (stand-ins for the dead included) are dumped again.
TEST(FdsPidfd, CheckpointRestoreTwice)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    std::string first = session.dir().file("first");
    std::string second = session.dir().file("second");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, first));
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, first));
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, second));
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, second));
    release_and_expect_pass(session, pid);
}

TEST(FdsPidfd, PidfdToAProcessOutsideTheTreeIsRefused)
{
    expect_dump_refused(kVictim, { "outside" }, {},
                        { "fd 29: pidfd: its target, pid " + std::to_string(::getpid()) + ", is outside the dumped tree" });
}

} // namespace cryo::e2e
