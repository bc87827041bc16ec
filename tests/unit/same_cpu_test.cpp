// Where ptrace/same_cpu.h puts cryo and the threads it drives, tried on a
// thread of the test itself: SameCpu with Hold::both pins cryo and the
// thread to one CPU and gives both their own CPUs back; ApartCpu keeps
// cryo on its CPU and sends a thread to the others.
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <future>
#include <optional>
#include <thread>

#include "base/fd.h"
#include "ptrace/same_cpu.h"

namespace cryo::ptrace {
namespace {

cpu_set_t affinity(pid_t tid)
{
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    EXPECT_EQ(::sched_getaffinity(tid, sizeof(cpus), &cpus), 0) << "thread " << tid;
    return cpus;
}

// A thread of this process that waits until the object ends.
class WaitingThread {
public:
    WaitingThread()
    {
        int ends[2];
        EXPECT_EQ(::pipe(ends), 0);
        m_read.reset(ends[0]);
        m_write.reset(ends[1]);
        auto tid = m_started.get_future();
        m_thread = std::thread([this, fd = m_read.get()] {
            m_started.set_value(::gettid());
            char byte;
            (void)!::read(fd, &byte, 1);
        });
        m_tid = tid.get();
    }
    ~WaitingThread()
    {
        m_write.reset();
        m_thread.join();
    }
    pid_t tid() const { return m_tid; }

private:
    UniqueFd m_read;
    UniqueFd m_write;
    std::promise<pid_t> m_started;
    std::thread m_thread;
    pid_t m_tid { 0 };
};

// Each test places the test's own thread and a waiting thread: they need
// two CPUs this process may use.
class CpuPlacement : public testing::Test {
protected:
    void SetUp() override
    {
        cpu_set_t own = affinity(0);
        if (CPU_COUNT(&own) < 2)
            GTEST_SKIP() << "needs two CPUs this test may use";
        m_waiting.emplace();
    }
    pid_t waiting_tid() const { return m_waiting->tid(); }

private:
    std::optional<WaitingThread> m_waiting;
};

TEST_F(CpuPlacement, SameCpuHoldBothPinsTheThreadAndPutsBothBack)
{
    cpu_set_t own_before = affinity(0);
    cpu_set_t thread_before = affinity(waiting_tid());
    {
        SameCpu beside(waiting_tid(), SameCpu::Hold::both);
        cpu_set_t own = affinity(0);
        cpu_set_t thread = affinity(waiting_tid());
        EXPECT_EQ(CPU_COUNT(&own), 1);
        EXPECT_EQ(CPU_COUNT(&thread), 1);
        EXPECT_TRUE(CPU_EQUAL(&own, &thread)) << "cryo and the thread on different CPUs";
    }
    cpu_set_t own_after = affinity(0);
    cpu_set_t thread_after = affinity(waiting_tid());
    EXPECT_TRUE(CPU_EQUAL(&own_before, &own_after));
    EXPECT_TRUE(CPU_EQUAL(&thread_before, &thread_after));
}

TEST_F(CpuPlacement, SameCpuWithoutHoldTheThreadKeepsItsCpus)
{
    cpu_set_t thread_before = affinity(waiting_tid());
    {
        SameCpu beside(waiting_tid());
        cpu_set_t own = affinity(0);
        cpu_set_t thread = affinity(waiting_tid());
        EXPECT_EQ(CPU_COUNT(&own), 1);
        EXPECT_TRUE(CPU_EQUAL(&thread_before, &thread));
    }
}

TEST_F(CpuPlacement, ApartCpuSendsTheThreadToTheOtherCpus)
{
    cpu_set_t own_before = affinity(0);
    cpu_set_t thread_before = affinity(waiting_tid());
    {
        ApartCpu apart;
        cpu_set_t own = affinity(0);
        ASSERT_EQ(CPU_COUNT(&own), 1);
        apart.send_away(waiting_tid());
        cpu_set_t thread = affinity(waiting_tid());
        cpu_set_t both;
        CPU_AND(&both, &own, &thread);
        EXPECT_EQ(CPU_COUNT(&both), 0) << "the thread may still run on cryo's CPU";
        EXPECT_EQ(CPU_COUNT(&thread), CPU_COUNT(&thread_before) - 1);
    }
    cpu_set_t own_after = affinity(0);
    EXPECT_TRUE(CPU_EQUAL(&own_before, &own_after));
    // The thread is not given its CPUs back: ApartCpu is for threads about
    // to be killed.
    ASSERT_EQ(::sched_setaffinity(waiting_tid(), sizeof(thread_before), &thread_before), 0);
}

} // namespace
} // namespace cryo::ptrace
