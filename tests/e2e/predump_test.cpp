// End-to-end tests of iterative pre-dumps and incremental dumps (victim
// predump): a chain of pre-dumps of a process that writes all the time, then
// an incremental dump and a restore of the chain; layout changes between
// pre-dump and dump (forks, munmap/mmap at the same address, MADV_DONTNEED,
// mremap, mprotect) fall back to storing pages; a process with its own
// userfaultfd is not tracked; a lost tracker or a damaged parent is handled.
// Every test checks that no tracker process is left behind.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "steps.h"

namespace cryo::e2e {

namespace {

using namespace std::chrono_literals;

// The tracker processes that came back to this test (the sub-reaper).
std::vector<pid_t> trackers()
{
    std::vector<pid_t> found;
    for (pid_t pid : children_of_self()) {
        std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
        std::string name;
        std::getline(comm, name);
        if (name == "cryo-tracker")
            found.push_back(pid);
    }
    return found;
}

CommandResult pre_dump(Session& session, pid_t pid, const std::string& images, const std::string& parent = {},
                       const std::vector<std::string>& options = {})
{
    std::vector<std::string> args { "pre-dump", "-t", std::to_string(pid), "-D", images, "-o", images + "-predump.log" };
    if (!parent.empty()) {
        args.push_back("--prev-images-dir");
        args.push_back(parent);
    }
    args.insert(args.end(), options.begin(), options.end());
    auto result = session.cryo(args);
    EXPECT_EQ(result.exit_code, 0) << result.output << session.diagnostics();
    return result;
}

// Pre-dumps `pid` into "pre"; returns it and "final", where its dump goes
// (with --prev-images-dir ../pre).
std::pair<std::string, std::string> start_chain(Session& session, pid_t pid)
{
    std::string first = session.dir().file("pre");
    pre_dump(session, pid, first);
    return { first, session.dir().file("final") };
}

void expect_no_tracker_left(Session& session)
{
    EXPECT_TRUE(session.wait_until_gone(trackers(), 10s)) << "a tracker process is left\n" << session.diagnostics();
}

constexpr uintmax_t kRegion = 64ull << 20;

} // namespace

// Three pre-dumps while the victim writes a few pages every millisecond,
// then the incremental dump; the restored victim checks every page.
TEST(PreDump, ChainOfThreeThenIncrementalDump)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump");
    std::string images[4];
    for (int i = 0; i < 4; ++i)
        images[i] = session.dir().file("round" + std::to_string(i + 1));

    pre_dump(session, pid, images[0]);
    EXPECT_EQ(trackers().size(), 1u) << session.diagnostics();
    EXPECT_GE(file_size(pages_file(images[0], pid)), kRegion);
    for (int i = 1; i < 3; ++i) {
        std::this_thread::sleep_for(100ms);
        pre_dump(session, pid, images[i], "../round" + std::to_string(i));
        // Only the pages written since the previous round are stored.
        EXPECT_LT(file_size(pages_file(images[i], pid)), kRegion / 4);
        EXPECT_EQ(trackers().size(), 1u) << "the previous tracker must hand over and exit\n" << session.diagnostics();
    }
    std::this_thread::sleep_for(100ms);
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images[3], false, { "--prev-images-dir", "../round3", "--track-mem" }));
    EXPECT_LT(file_size(pages_file(images[3], pid)), kRegion / 4);
    expect_no_tracker_left(session);
    auto show = session.cryo({ "show", images[3] });
    EXPECT_EQ(show.exit_code, 0) << show.output;
    EXPECT_NE(show.output.find("../round3"), std::string::npos) << show.output;
    auto mem = session.cryo({ "mem", "-D", images[3], "--search", "nothing" });
    EXPECT_NE(mem.exit_code, 0);
    EXPECT_NE(mem.output.find("does not read through chains yet"), std::string::npos) << mem.output;
    restore_and_expect_pass(session, pid, images[3]);
}

// A dump that keeps tracking (--leave-running --track-mem) is a parent too.
TEST(PreDump, DumpWithTrackMemIsAParent)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump");
    std::string first = session.dir().file("full");
    std::string last = session.dir().file("final");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, first, true, { "--track-mem" }));
    EXPECT_EQ(trackers().size(), 1u) << session.diagnostics();
    std::this_thread::sleep_for(100ms);
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, last, false, { "--prev-images-dir", "../full" }));
    EXPECT_LT(file_size(pages_file(last, pid)), kRegion / 4);
    expect_no_tracker_left(session);
    restore_and_expect_pass(session, pid, last);
}

// Trees, threads and memory shared copy-on-write between parent and child
// (restored by inheritance, mem/cow.h) through a pre-dump and its dump.
TEST(PreDump, TreesThreadsAndCopyOnWrite)
{
    for (const char* victim : { "cow", "tree", "threads", "memory" }) {
        SCOPED_TRACE(victim);
        Session session;
        pid_t pid = start_and_wait_ready(session, victim);
        auto [first, last] = start_chain(session, pid);
        ASSERT_NO_FATAL_FAILURE(dump(session, pid, last, false, { "--prev-images-dir", "../pre" }));
        expect_no_tracker_left(session);
        restore_and_expect_pass(session, pid, last);
    }
}

// Layout changes after the pre-dump: nothing may come from the parent that
// the process no longer has the same way.
TEST(PreDump, LayoutChangesBetweenPreDumpAndDump)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump", { "changes" });
    auto [first, last] = start_chain(session, pid);
    ASSERT_TRUE(send_signal(pid, SIGUSR2));
    ASSERT_TRUE(session.wait_for_log("CHANGED")) << session.diagnostics();
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, last, false, { "--prev-images-dir", "../pre" }));
    expect_no_tracker_left(session);
    restore_and_expect_pass(session, pid, last);
}

// A process with a userfaultfd of its own is not tracked: said once, and
// the dump after it stores everything.
TEST(PreDump, OwnUserfaultfdIsNotTracked)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump", { "uffd" });
    auto [first, last] = start_chain(session, pid);
    auto log = read_file(first + "-predump.log");
    EXPECT_NE(log.find("has a userfaultfd open"), std::string::npos) << log;
    EXPECT_NE(log.find("its memory is not tracked"), std::string::npos) << log;
    EXPECT_TRUE(trackers().empty()) << "nothing is tracked: no tracker\n" << session.diagnostics();
    ASSERT_TRUE(send_signal(pid, SIGUSR2));
    ASSERT_TRUE(session.wait_for_log("CHANGED")) << session.diagnostics();
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, last, false, { "--prev-images-dir", "../pre" }));
    EXPECT_GE(file_size(pages_file(last, pid)), kRegion);
    restore_and_expect_pass(session, pid, last);
}

// Without the tracker (gone, killed) the dump stores everything again.
TEST(PreDump, LostTrackerMeansAFullDump)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump");
    auto [first, last] = start_chain(session, pid);
    auto found = trackers();
    ASSERT_EQ(found.size(), 1u) << session.diagnostics();
    ASSERT_TRUE(send_signal(found[0], SIGKILL));
    ASSERT_TRUE(session.wait_until_gone(found));
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, last, false, { "--prev-images-dir", "../pre" }));
    EXPECT_NE(read_file(last + "-dump.log").find("is gone: memory is stored in full"), std::string::npos);
    EXPECT_GE(file_size(pages_file(last, pid)), kRegion);
    restore_and_expect_pass(session, pid, last);
}

// The tracker goes away by itself when the tree exits, and after its
// timeout; a pre-dump itself cannot be restored.
TEST(PreDump, TrackerEndsWithTheTreeOrItsTimeout)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump");
    std::string first = session.dir().file("pre");
    pre_dump(session, pid, first, {}, { "--tracker-timeout", "1" });
    auto found = trackers();
    ASSERT_EQ(found.size(), 1u) << session.diagnostics();
    EXPECT_TRUE(session.wait_until_gone(found, 10s)) << "the tracker outlived its timeout\n" << session.diagnostics();
    auto restore = session.cryo({ "restore", "-D", first, "-d" });
    EXPECT_NE(restore.exit_code, 0);
    EXPECT_NE(restore.output.find("is a pre-dump"), std::string::npos) << restore.output;

    std::string second = session.dir().file("pre2");
    pre_dump(session, pid, second);
    found = trackers();
    ASSERT_EQ(found.size(), 1u) << session.diagnostics();
    ASSERT_TRUE(send_signal(pid, SIGKILL));
    session.wait_for_exit(pid);
    EXPECT_TRUE(session.wait_until_gone(found, 10s)) << "the tracker outlived the tree\n" << session.diagnostics();
}

// A parent that changed or went away is refused before anything is made.
TEST(PreDump, DamagedOrMissingParentIsRefused)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump");
    auto [first, last] = start_chain(session, pid);
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, last, false, { "--prev-images-dir", "../pre" }));
    expect_no_tracker_left(session);
    std::string pages = pages_file(first, pid);
    {
        std::fstream file(pages, std::ios::in | std::ios::out | std::ios::binary);
        file.seekp(4096 * 100 + 17);
        file.put('\x5a');
    }
    auto damaged = session.cryo({ "restore", "-D", last, "-d" });
    EXPECT_NE(damaged.exit_code, 0);
    EXPECT_NE(damaged.output.find("parent checkpoint"), std::string::npos) << damaged.output;
    EXPECT_NE(damaged.output.find("pages-" + std::to_string(pid) + ".img"), std::string::npos) << damaged.output;
    std::filesystem::rename(first, first + ".moved");
    auto missing = session.cryo({ "restore", "-D", last, "-d" });
    EXPECT_NE(missing.exit_code, 0);
    EXPECT_NE(missing.output.find("parent checkpoint ../pre"), std::string::npos) << missing.output;
    EXPECT_FALSE(process_exists(pid));
}

// Every step of a pre-dump made to fail (src/base/fault.h): the pre-dump
// fails, leaves no checkpoint and no tracker, the victim keeps no
// userfaultfd, and it passes its checks.
TEST(PreDump, EveryFailedPreDumpLeavesTheTreeAsItWas)
{
    std::vector<std::pair<int, std::string>> steps;
    {
        Session session;
        pid_t pid = start_and_wait_ready(session, "predump");
        ::setenv("CRYO_FAULT_LIST", "1", 1);
        auto result = pre_dump(session, pid, session.dir().file("list"));
        ::unsetenv("CRYO_FAULT_LIST");
        std::regex line("^cryo: step ([0-9]+): (.*)$");
        std::istringstream lines(result.output);
        for (std::string text; std::getline(lines, text);)
            if (std::smatch match; std::regex_match(text, match, line))
                steps.push_back({ std::stoi(match[1]), match[2] });
        ASSERT_TRUE(send_signal(trackers().at(0), SIGKILL));
    }
    ASSERT_GT(steps.size(), 3u);
    for (const auto& [step, name] : steps) {
        SCOPED_TRACE("pre-dump with a fault at step " + std::to_string(step) + " (" + name + ")");
        // A failed close of the target's userfaultfd is tried once more:
        // that pre-dump succeeds.
        bool retried = name.starts_with("syscall close userfaultfd");
        Session session;
        pid_t pid = start_and_wait_ready(session, "predump");
        std::string images = session.dir().file("images");
        ::setenv("CRYO_FAULT_AT", std::to_string(step).c_str(), 1);
        auto result = session.cryo({ "pre-dump", "-t", std::to_string(pid), "-D", images });
        ::unsetenv("CRYO_FAULT_AT");
        if (retried) {
            EXPECT_EQ(result.exit_code, 0) << result.output;
            auto found = trackers();
            ASSERT_EQ(found.size(), 1u) << session.diagnostics();
            ASSERT_TRUE(send_signal(found[0], SIGKILL));
        } else {
            EXPECT_EQ(result.exit_code, 1) << result.output;
            EXPECT_NE(result.output.find("injected fault at step " + std::to_string(step)), std::string::npos)
                << result.output;
            EXPECT_FALSE(file_exists(images + "/manifest.img"));
        }
        expect_no_tracker_left(session);
        for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
            EXPECT_NE(std::filesystem::read_symlink(entry.path()).string(), "anon_inode:[userfaultfd]") << entry.path();
        release_and_expect_pass(session, pid);
        if (HasFailure())
            break;
    }
}

} // namespace cryo::e2e
