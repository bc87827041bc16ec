// Tests for listing threads, children and descriptors under /proc.
//
// These read the test process itself: a thread it starts must show up in
// task/, a child it forks in task/TID/children of the forking thread, a
// descriptor it opens in fd/. Children are killed through the safe-kill
// helper and reaped before each test ends, and die with us if we die first.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "base/fd.h"
#include "base/kill.h"
#include "proc/task.h"

namespace cryo::proc {
namespace {

pid_t current_tid() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// A child that sleeps until killed; killed and reaped when dropped.
class SleepingChild {
public:
    SleepingChild()
    {
        pid_t parent = ::getpid();
        m_pid = ::fork();
        if (m_pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent)
                ::_exit(1);
            for (;;)
                ::pause();
        }
    }
    SleepingChild(const SleepingChild&) = delete;
    SleepingChild& operator=(const SleepingChild&) = delete;
    ~SleepingChild()
    {
        if (m_pid <= 0)
            return;
        kill_quietly(m_pid);
        ::waitpid(m_pid, nullptr, 0);
    }
    pid_t pid() const { return m_pid; }

private:
    pid_t m_pid { -1 };
};

bool contains(const auto& values, auto value) { return std::ranges::find(values, value) != values.end(); }

TEST(ProcTask, ListsOwnThreads)
{
    auto before = list_threads(::getpid());
    ASSERT_TRUE(before) << before.error().message();
    EXPECT_TRUE(contains(*before, ::getpid()));
    EXPECT_TRUE(std::ranges::is_sorted(*before));

    std::atomic<pid_t> thread_tid { 0 };
    std::atomic<bool> stop { false };
    std::thread thread([&] {
        thread_tid = current_tid();
        while (!stop)
            std::this_thread::yield();
    });
    while (thread_tid == 0)
        std::this_thread::yield();
    auto during = list_threads(::getpid());
    stop = true;
    thread.join();
    ASSERT_TRUE(during) << during.error().message();
    EXPECT_TRUE(contains(*during, thread_tid.load()));
    EXPECT_EQ(during->size(), before->size() + 1);
    EXPECT_TRUE(std::ranges::is_sorted(*during));
}

TEST(ProcTask, ListsChildrenOfTheForkingThread)
{
    SleepingChild first;
    SleepingChild second;
    ASSERT_GT(first.pid(), 0);
    ASSERT_GT(second.pid(), 0);
    auto children = list_children(::getpid(), current_tid());
    ASSERT_TRUE(children) << children.error().message();
    EXPECT_TRUE(contains(*children, first.pid()));
    EXPECT_TRUE(contains(*children, second.pid()));

    auto all = list_process_children(::getpid());
    ASSERT_TRUE(all) << all.error().message();
    EXPECT_TRUE(contains(*all, first.pid()));
    EXPECT_TRUE(contains(*all, second.pid()));
    EXPECT_TRUE(std::ranges::is_sorted(*all));
    EXPECT_EQ(std::ranges::adjacent_find(*all), all->end());
}

TEST(ProcTask, ChildrenOfAnotherThreadAreFound)
{
    // task/TID/children lists only what that thread forked, so a child
    // forked by a second thread is missing from the main thread's list and
    // must still be found by list_process_children().
    std::atomic<pid_t> forker_tid { 0 };
    std::atomic<bool> stop { false };
    std::optional<SleepingChild> child;
    std::thread thread([&] {
        child.emplace();
        forker_tid = current_tid();
        while (!stop)
            std::this_thread::yield();
    });
    while (forker_tid == 0)
        std::this_thread::yield();
    auto main_thread = list_children(::getpid(), current_tid());
    auto forker = list_children(::getpid(), forker_tid);
    auto all = list_process_children(::getpid());
    stop = true;
    thread.join();
    ASSERT_GT(child->pid(), 0);
    ASSERT_TRUE(main_thread) << main_thread.error().message();
    ASSERT_TRUE(forker) << forker.error().message();
    ASSERT_TRUE(all) << all.error().message();
    EXPECT_FALSE(contains(*main_thread, child->pid()));
    EXPECT_EQ(*forker, std::vector<pid_t> { child->pid() });
    EXPECT_TRUE(contains(*all, child->pid()));
}

TEST(ProcTask, NoChildren)
{
    auto children = list_children(::getpid(), current_tid());
    ASSERT_TRUE(children) << children.error().message();
    EXPECT_TRUE(children->empty());
}

TEST(ProcTask, ListsOwnDescriptors)
{
    // A high number, so the descriptor the listing itself opens cannot take
    // the number back once it is closed.
    UniqueFd file(::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 700));
    ASSERT_TRUE(file.valid());
    int number = file.get();
    auto fds = list_fds(::getpid());
    ASSERT_TRUE(fds) << fds.error().message();
    EXPECT_TRUE(contains(*fds, number));
    EXPECT_TRUE(contains(*fds, STDERR_FILENO));
    EXPECT_TRUE(std::ranges::is_sorted(*fds));
    file.reset();
    auto after = list_fds(::getpid());
    ASSERT_TRUE(after) << after.error().message();
    EXPECT_FALSE(contains(*after, number));
}

TEST(ProcTask, ProcessExists)
{
    EXPECT_TRUE(process_exists(::getpid()));
    EXPECT_FALSE(process_exists(0));
    EXPECT_FALSE(process_exists(-1));
    EXPECT_FALSE(process_exists(0x7ffffff0));
}

TEST(ProcTask, MissingProcessErrorsNameThePath)
{
    auto threads = list_threads(0x7ffffff0);
    ASSERT_FALSE(threads);
    EXPECT_EQ(threads.error().code(), ENOENT);
    EXPECT_EQ(threads.error().message(), "open /proc/2147483632/task: No such file or directory");

    auto fds = list_fds(0x7ffffff0);
    ASSERT_FALSE(fds);
    EXPECT_EQ(fds.error().message(), "open /proc/2147483632/fd: No such file or directory");

    auto children = list_children(::getpid(), 0x7ffffff0);
    ASSERT_FALSE(children);
    EXPECT_EQ(children.error().code(), ENOENT);
    EXPECT_NE(children.error().message().find("/task/2147483632/children"), std::string::npos)
        << children.error().message();

    EXPECT_FALSE(list_process_children(0x7ffffff0));
}

} // namespace
} // namespace cryo::proc
