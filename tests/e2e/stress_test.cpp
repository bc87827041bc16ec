// The stress loop: the stress_mix victim (threads, children, a grandchild,
// a zombie, pipes and sockets that carry numbers all the time) is dumped and
// restored again and again, and each cycle dumps the tree the previous cycle
// restored: a restored tree must dump again, exactly like the original. After
// every restore the victim checks itself (tests/victims/stress_mix.c) and
// the loop stops at the first FAIL.
//
// cryo itself must not grow either. Every cryo here runs with
// CRYO_CHECK_LEAKS=1, so it fails if it leaves a descriptor open at exit that
// it did not have at start; and the peak RSS of each dump and restore (from
// wait4) must not grow between the first cycles and the last ones.
//
// CI runs 20 cycles (CRYO_STRESS_CYCLES sets the number); the 1,000-cycle
// run is e2e.stress.cycles_1000 (label `stress`, run by scripts/stress).
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"
#include "steps.h"

namespace cryo::e2e {
namespace {

// Sets an environment variable for the lifetime of the object (so running
// the whole test program by hand does not leak it into other tests).
class ScopedEnvironment {
public:
    ScopedEnvironment(const char* name, const char* value)
        : m_name(name)
    {
        ::setenv(name, value, 1);
    }
    ~ScopedEnvironment() { ::unsetenv(m_name); }
    ScopedEnvironment(const ScopedEnvironment&) = delete;
    ScopedEnvironment& operator=(const ScopedEnvironment&) = delete;

private:
    const char* m_name;
};

int cycles_wanted()
{
    const char* text = ::getenv("CRYO_STRESS_CYCLES");
    int cycles = text ? std::atoi(text) : 20;
    return cycles > 0 ? cycles : 20;
}

struct Cycle {
    double dump_ms { 0 };
    double restore_ms { 0 };
    double total_ms { 0 };
    long dump_rss_kb { 0 };
    long restore_rss_kb { 0 };
};

double milliseconds_since(std::chrono::steady_clock::time_point start)
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// The largest value of `field` over cycles [first, last).
long peak(const std::vector<Cycle>& cycles, size_t first, size_t last, long Cycle::* field)
{
    long most = 0;
    for (size_t i = first; i < last && i < cycles.size(); ++i)
        most = std::max(most, cycles[i].*field);
    return most;
}

double average(const std::vector<Cycle>& cycles, double Cycle::* field)
{
    double sum = 0;
    for (const auto& cycle : cycles)
        sum += cycle.*field;
    return cycles.empty() ? 0 : sum / static_cast<double>(cycles.size());
}

// One cycle: dump the running tree (the original or the last restore's),
// restore it, ask the victim to check itself (SIGUSR2) and wait for its
// CHECK line. Images and logs of the previous cycle are removed first.
void run_cycle(Session& session, pid_t pid, int number, Cycle& cycle)
{
    std::string images = session.dir().file("images");
    for (const char* suffix : { "", "-dump.log", "-restore.log", ".pid" })
        std::filesystem::remove_all(images + suffix);
    auto start = std::chrono::steady_clock::now();
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images)) << "cycle " << number;
    cycle.dump_ms = milliseconds_since(start);
    cycle.dump_rss_kb = session.last_cryo_peak_rss_kb();
    auto restore_start = std::chrono::steady_clock::now();
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images)) << "cycle " << number;
    cycle.restore_ms = milliseconds_since(restore_start);
    cycle.restore_rss_kb = session.last_cryo_peak_rss_kb();
    ASSERT_TRUE(send_signal(pid, SIGUSR2));
    ASSERT_TRUE(session.wait_for_log("CHECK", number, std::chrono::seconds(30)))
        << "cycle " << number << ": no CHECK line\n" << session.diagnostics();
    cycle.total_ms = milliseconds_since(start);
    ASSERT_EQ(session.log().find("FAIL"), std::string::npos) << "cycle " << number << "\n" << session.diagnostics();
}

TEST(Stress, RestoredTreeDumpsAgain)
{
    ScopedEnvironment leak_check("CRYO_CHECK_LEAKS", "1");
    const int wanted = cycles_wanted();
    Session session;
    pid_t pid = start_and_wait_ready(session, "stress_mix");
    std::vector<Cycle> cycles;
    for (int number = 1; number <= wanted; ++number) {
        Cycle cycle;
        ASSERT_NO_FATAL_FAILURE(run_cycle(session, pid, number, cycle));
        cycles.push_back(cycle);
        if (number % 100 == 0)
            std::printf("stress: cycle %d: %.1f ms (dump %.1f ms, restore %.1f ms), cryo peak RSS dump %ld KiB, "
                        "restore %ld KiB\n",
                        number, cycle.total_ms, cycle.dump_ms, cycle.restore_ms, cycle.dump_rss_kb, cycle.restore_rss_kb);
        std::fflush(stdout);   // progress while ctest -V shows it
    }
    ASSERT_NO_FATAL_FAILURE(release_and_expect_pass(session, pid));
    EXPECT_NE(session.log().find("ROUNDS " + std::to_string(wanted)), std::string::npos) << session.diagnostics();

    // cryo's peak RSS: the last cycles against the first ones (each cryo is
    // a new process, so growth here would mean the checkpoint grows).
    size_t window = std::max<size_t>(3, cycles.size() / 10);
    size_t late = cycles.size() > window ? cycles.size() - window : 0;
    for (auto [field, what] : { std::pair { &Cycle::dump_rss_kb, "dump" }, std::pair { &Cycle::restore_rss_kb, "restore" } }) {
        long early_peak = peak(cycles, 0, window, field);
        long late_peak = peak(cycles, late, cycles.size(), field);
        EXPECT_GT(early_peak, 0) << what;
        EXPECT_LE(late_peak, early_peak + early_peak / 10 + 1024)
            << "cryo " << what << "'s peak RSS grew from " << early_peak << " KiB (first " << window
            << " cycles) to " << late_peak << " KiB (last " << window << ")";
    }
    std::printf("stress: %zu cycles, 0 failures, %.1f ms per cycle (dump %.1f ms, restore %.1f ms); "
                "cryo peak RSS first/last %zu cycles: dump %ld/%ld KiB, restore %ld/%ld KiB\n",
                cycles.size(), average(cycles, &Cycle::total_ms), average(cycles, &Cycle::dump_ms),
                average(cycles, &Cycle::restore_ms), window, peak(cycles, 0, window, &Cycle::dump_rss_kb),
                peak(cycles, late, cycles.size(), &Cycle::dump_rss_kb), peak(cycles, 0, window, &Cycle::restore_rss_kb),
                peak(cycles, late, cycles.size(), &Cycle::restore_rss_kb));
}

} // namespace
} // namespace cryo::e2e
