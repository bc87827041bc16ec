// Tests for the safe-kill guard in base/kill.
//
// signal_process() must refuse pid 0 (our own process group), 1 (init) and
// any negative pid (-1 is every process we may signal) before calling kill().
// To show that nothing is sent, the dangerous calls that use a real signal
// run in a forked child that is alone in a new process group and has the
// signal blocked: had the guard let kill(0, ...) through, the signal would
// be pending in that child only. Calls with -1 and 1 use the null signal, so
// even a broken guard could not hurt the machine.
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <gtest/gtest.h>

#include "base/kill.h"

namespace cryo {
namespace {

TEST(SafeKill, RefusesPidsAtMostOne)
{
    for (pid_t pid : { 0, 1, -1, -2, -1000 }) {
        auto result = signal_process(pid, 0);
        ASSERT_FALSE(result) << "pid " << pid << " was accepted";
        EXPECT_EQ(result.error().code(), EINVAL);
        EXPECT_NE(result.error().message().find("refusing"), std::string::npos) << result.error().message();
    }
}

TEST(SafeKill, RefusedThreadTargets)
{
    for (pid_t pid : { 0, 1, -1 }) {
        auto by_tgid = signal_thread(pid, ::getpid(), 0);
        ASSERT_FALSE(by_tgid);
        EXPECT_EQ(by_tgid.error().code(), EINVAL);
        auto by_tid = signal_thread(::getpid(), pid, 0);
        ASSERT_FALSE(by_tid);
        EXPECT_EQ(by_tid.error().code(), EINVAL);
    }
}

TEST(SafeKill, ProcessGroupZeroIsNeverSignalled)
{
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // Only async-signal-safe calls from here on; the exit code reports.
        if (::setpgid(0, 0) < 0)
            ::_exit(10);
        sigset_t blocked;
        sigemptyset(&blocked);
        sigaddset(&blocked, SIGUSR1);
        if (::sigprocmask(SIG_BLOCK, &blocked, nullptr) < 0)
            ::_exit(11);
        auto result = signal_process(0, SIGUSR1);
        if (result || result.error().code() != EINVAL)
            ::_exit(12);
        sigset_t pending;
        sigemptyset(&pending);
        ::sigpending(&pending);
        ::_exit(sigismember(&pending, SIGUSR1) ? 13 : 0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
    EXPECT_EQ(WEXITSTATUS(status), 0) << "10: setpgid, 11: sigprocmask, 12: not refused, 13: signal was sent";
}

TEST(SafeKill, SignalsARealChild)
{
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        for (;;)
            ::pause();
    }
    auto probe = signal_process(child, 0);
    EXPECT_TRUE(probe) << probe.error().message();
    auto result = signal_process(child, SIGKILL);
    EXPECT_TRUE(result) << result.error().message();
    if (!result && child > 1)
        ::kill(child, SIGKILL); // do not leave the child behind
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGKILL);

    auto gone = signal_process(child, 0);
    ASSERT_FALSE(gone);
    EXPECT_EQ(gone.error().code(), ESRCH);
}

} // namespace
} // namespace cryo
