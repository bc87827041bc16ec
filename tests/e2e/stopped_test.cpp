// End-to-end tests of processes in a job-control stop when dumped (victim
// stopped, zdtm stopped and stoppedNN, also sent SIGSTOP twice): they come
// back stopped, with no signal left pending, and run on with their state
// intact after SIGCONT; a dump with --leave-running leaves them stopped.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "steps.h"

namespace cryo::e2e {

namespace {

// The value of `field` ("State", "SigPnd", ...) in /proc/PID/status.
std::string status_field(pid_t pid, const std::string& field)
{
    std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
    auto start = status.find("\n" + field + ":");
    if (start == std::string::npos)
        return {};
    start = status.find_first_not_of(" \t", start + field.size() + 2);
    return status.substr(start, status.find('\n', start) - start);
}

// Waits (at most 10 s) until the process is in a job-control stop.
bool wait_until_stopped(pid_t pid)
{
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (status_field(pid, "State") != "T (stopped)") {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
}

// Stopped after restore, nothing pending; then SIGCONT and the release.
void expect_stopped_then_continue(Session& session, pid_t pid)
{
    ASSERT_TRUE(wait_until_stopped(pid)) << "pid " << pid << " is " << status_field(pid, "State") << "\n"
                                         << session.diagnostics();
    EXPECT_EQ(status_field(pid, "SigPnd"), "0000000000000000");
    EXPECT_EQ(status_field(pid, "ShdPnd"), "0000000000000000");
    ASSERT_TRUE(send_signal(pid, SIGCONT));
    release_and_expect_pass(session, pid);
}

} // namespace

TEST(Stopped, StoppedProcessComesBackStopped)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "stopped", { "self" });
    ASSERT_TRUE(send_signal(pid, SIGSTOP));
    ASSERT_TRUE(wait_until_stopped(pid)) << session.diagnostics();
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, images));
    expect_stopped_then_continue(session, pid);
}

// SIGSTOP sent to a process already stopped stays pending (zdtm stopped01
// and stopped02): the dump's injected calls must not trip over it.
TEST(Stopped, StoppedTwiceComesBackStopped)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "stopped", { "self" });
    ASSERT_TRUE(send_signal(pid, SIGSTOP));
    ASSERT_TRUE(wait_until_stopped(pid)) << session.diagnostics();
    ASSERT_TRUE(send_signal(pid, SIGSTOP));
    ASSERT_NE(status_field(pid, "ShdPnd"), "0000000000000000") << "the second SIGSTOP is not pending";
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, images));
    expect_stopped_then_continue(session, pid);
}

TEST(Stopped, LeaveRunningLeavesItStopped)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "stopped", { "self" });
    ASSERT_TRUE(send_signal(pid, SIGSTOP));
    ASSERT_TRUE(wait_until_stopped(pid)) << session.diagnostics();
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, session.dir().file("images"), true));
    // Detached, its threads go back to the group stop; give a thread that
    // wrongly ran on the time to show it.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    expect_stopped_then_continue(session, pid);
}

// The victim stops its own child (SIGTSTP) and checks, after restore, that
// it is still stopped before continuing it.
TEST(Stopped, StoppedChildComesBackStopped)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "stopped", { "child" });
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, images));
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e
