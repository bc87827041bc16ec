// End-to-end tests of signalfd and timerfd (victim fds_timers): masks,
// a pending signal, O_NONBLOCK, time left and interval, clocks, absolute
// timers, unread expirations and a one-shot that fires after the restore.
#include <signal.h>
#include <sys/wait.h>

#include <string>

#include <gtest/gtest.h>

#include "harness.h"

namespace cryo::e2e {

namespace {

constexpr const char* kVictim = "fds_timers";

pid_t start_and_wait_ready(Session& session)
{
    pid_t pid = session.start_victim(kVictim);
    EXPECT_GT(pid, 1);
    EXPECT_TRUE(session.wait_for_log("READY")) << session.diagnostics();
    return pid;
}

void release_and_expect_pass(Session& session, pid_t pid)
{
    ASSERT_TRUE(send_signal(pid, SIGUSR1));
    auto status = session.wait_for_exit(pid);
    ASSERT_TRUE(status.has_value()) << "victim did not exit\n" << session.diagnostics();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "status " << *status << "\n" << session.diagnostics();
    std::string log = session.log();
    EXPECT_NE(log.find("PASS"), std::string::npos) << session.diagnostics();
    EXPECT_EQ(log.find("FAIL"), std::string::npos) << session.diagnostics();
}

} // namespace

// The victim checks itself without a checkpoint, so a broken victim is told
// apart from a broken cryo.
TEST(FdsTimers, Control)
{
    Session session;
    pid_t pid = start_and_wait_ready(session);
    release_and_expect_pass(session, pid);
}

TEST(FdsTimers, CheckpointRestore)
{
    Session session;
    pid_t pid = start_and_wait_ready(session);
    std::string images = session.dir().file("images");
    auto dumped = session.cryo({ "dump", "-t", std::to_string(pid), "-D", images, "-v", "-o", images + "-dump.log" });
    ASSERT_EQ(dumped.exit_code, 0) << dumped.output << session.diagnostics();
    ASSERT_TRUE(session.wait_until_gone(session.image_pids(images))) << "the checkpointed victim is still alive";

    std::string pidfile = images + ".pid";
    auto restored = session.cryo({ "restore", "-D", images, "-d", "--pidfile", pidfile, "-v", "-o", images + "-restore.log" });
    ASSERT_EQ(restored.exit_code, 0) << restored.output << session.diagnostics();
    for (pid_t restored_pid : session.image_pids(images))
        session.track(restored_pid);
    EXPECT_EQ(std::stoi(read_file(pidfile)), pid);
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e
