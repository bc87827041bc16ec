// End-to-end tests of signalfd and timerfd (victim fds_timers): masks,
// a pending signal, O_NONBLOCK, time left and interval, clocks, absolute
// timers, unread expirations and a one-shot that fires after the restore.
#include <signal.h>
#include <sys/wait.h>

#include <string>

#include <gtest/gtest.h>

#include "harness.h"
#include "steps.h"

namespace cryo::e2e {

namespace {

constexpr const char* kVictim = "fds_timers";

} // namespace

// The victim checks itself without a checkpoint, so a broken victim is told
// apart from a broken cryo.
TEST(FdsTimers, Control)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    release_and_expect_pass(session, pid);
}

TEST(FdsTimers, CheckpointRestore)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));

    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e
