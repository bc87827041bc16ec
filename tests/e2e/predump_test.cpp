// End-to-end tests of iterative pre-dumps and incremental dumps (victim
// predump): a chain of pre-dumps of a process that writes all the time, then
// an incremental dump and a restore of the chain; layout changes between
// pre-dump and dump (forks, munmap/mmap at the same address, MADV_DONTNEED,
// mremap, mprotect) fall back to storing pages; a process with its own
// userfaultfd is not tracked; a lost tracker or a damaged parent is handled;
// cryo mem, diff, show and check -D read through the chain; cryo dedup and
// --auto-dedup free what the newest checkpoint does not need, and a deduped
// ancestor is not restored. Every test checks that no tracker process is
// left behind.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
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

// Disk used by the regular files under `path` (allocated blocks, as du).
uintmax_t disk_usage(const std::string& path)
{
    uintmax_t bytes = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(path)) {
        struct stat st;
        if (entry.is_regular_file() && ::stat(entry.path().c_str(), &st) == 0)
            bytes += static_cast<uintmax_t>(st.st_blocks) * 512;
    }
    return bytes;
}

// The number after `"key": "` (uint64 fields are strings in protobuf's JSON).
uint64_t json_number(const std::string& json, const std::string& key)
{
    std::smatch match;
    if (!std::regex_search(json, match, std::regex("\"" + key + "\": \"?([0-9]+)")))
        return UINT64_MAX;
    return std::stoull(match[1]);
}

// "MARKS <page 3> <page 9>" of the victim in mode "marks".
std::pair<uint64_t, uint64_t> mark_addresses(Session& session)
{
    std::smatch match;
    std::string log = session.log();
    if (!std::regex_search(log, match, std::regex("MARKS 0x([0-9a-f]+) 0x([0-9a-f]+)")))
        return { 0, 0 };
    return { std::stoull(match[1], nullptr, 16), std::stoull(match[2], nullptr, 16) };
}

std::string hex(uint64_t value)
{
    std::ostringstream out;
    out << std::hex << value;
    return out.str();
}

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
    restore_and_expect_pass(session, pid, images[3]);
}

// A dump that keeps tracking (--leave-running --track-mem) is a parent too.
// Restorable by itself until the dump on top of it deduplicates it
// (--auto-dedup): then it is refused, the newest is restored.
TEST(PreDump, DumpWithTrackMemIsAParent)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump");
    std::string first = session.dir().file("full");
    std::string last = session.dir().file("final");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, first, true, { "--track-mem" }));
    EXPECT_EQ(trackers().size(), 1u) << session.diagnostics();
    std::this_thread::sleep_for(100ms);
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, last, false, { "--prev-images-dir", "../full", "--auto-dedup" }));
    EXPECT_LT(file_size(pages_file(last, pid)), kRegion / 4);
    expect_no_tracker_left(session);
    auto refused = session.cryo({ "restore", "-D", first, "-d" });
    EXPECT_NE(refused.exit_code, 0);
    EXPECT_NE(refused.output.find("full was deduplicated for"), std::string::npos) << refused.output;
    EXPECT_NE(refused.output.find("cannot be the target of a restore"), std::string::npos) << refused.output;
    EXPECT_FALSE(process_exists(pid));
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

// A parent that changed or went away is refused before anything is made,
// by restore, cryo check -D and cryo dedup (which changes nothing then).
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
    std::string manifests = read_file(first + "/manifest.img") + read_file(last + "/manifest.img");
    uintmax_t usage = disk_usage(first);
    for (const char* command : { "restore", "check", "dedup" }) {
        SCOPED_TRACE(command);
        auto damaged = session.cryo({ command, "-D", last });
        EXPECT_NE(damaged.exit_code, 0);
        EXPECT_NE(damaged.output.find("parent checkpoint"), std::string::npos) << damaged.output;
        EXPECT_NE(damaged.output.find("pages-" + std::to_string(pid) + ".img: checksum mismatch"), std::string::npos)
            << damaged.output;
    }
    EXPECT_EQ(read_file(first + "/manifest.img") + read_file(last + "/manifest.img"), manifests);
    EXPECT_EQ(disk_usage(first), usage);
    std::filesystem::rename(first, first + ".moved");
    for (const char* command : { "restore", "check", "dedup" }) {
        SCOPED_TRACE(command);
        auto missing = session.cryo({ command, "-D", last });
        EXPECT_NE(missing.exit_code, 0);
        EXPECT_NE(missing.output.find("parent checkpoint ../pre"), std::string::npos) << missing.output;
    }
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

// cryo mem, diff, show and check -D on a pre-dump and the dump made on top
// of it: a mark written before the pre-dump is read from the parent, one
// written after it from the dump itself.
TEST(PreDump, InspectionFollowsTheChain)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump", { "marks" });
    auto [before_page, after_page] = mark_addresses(session);
    ASSERT_NE(before_page, 0u) << session.log();
    auto [first, last] = start_chain(session, pid);
    ASSERT_TRUE(send_signal(pid, SIGUSR2));
    ASSERT_TRUE(session.wait_for_log("CHANGED")) << session.diagnostics();
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, last, false, { "--prev-images-dir", "../pre" }));
    expect_no_tracker_left(session);

    // --search finds both marks in the dump, only the first in the pre-dump.
    auto before = session.cryo({ "mem", "-D", last, "--search", "CRYO-MARK-BEFORE" });
    EXPECT_EQ(before.exit_code, 0) << before.output;
    EXPECT_NE(before.output.find("address 0x" + hex(before_page + 96) + " "), std::string::npos) << before.output;
    auto after = session.cryo({ "mem", "-D", last, "--search", "CRYO-MARK-AFTER!" });
    EXPECT_EQ(after.exit_code, 0) << after.output;
    EXPECT_NE(after.output.find("address 0x" + hex(after_page + 96) + " "), std::string::npos) << after.output;
    auto old = session.cryo({ "mem", "-D", first, "--search", "CRYO-MARK-AFTER!" });
    EXPECT_EQ(old.exit_code, 0) << old.output;
    EXPECT_NE(old.output.find("0 matches"), std::string::npos) << old.output;
    // --addr reads the page from the parent, --extract too.
    auto dumped = session.cryo({ "mem", "-D", last, "--addr", hex(before_page + 96), "--len", "16" });
    EXPECT_EQ(dumped.exit_code, 0) << dumped.output;
    EXPECT_NE(dumped.output.find("|CRYO-MARK-BEFORE|"), std::string::npos) << dumped.output;
    EXPECT_NE(dumped.output.find("stored in an earlier checkpoint of the chain: " + first + "/pages-"), std::string::npos)
        << dumped.output;
    std::string extracted = session.dir().file("marks.bin");
    auto extract = session.cryo({ "mem", "-D", last, "--addr", hex(before_page - 3 * 4096), "--len", "65536",
                                  "--extract", extracted });
    EXPECT_EQ(extract.exit_code, 0) << extract.output;
    std::string bytes = read_file(extracted);
    ASSERT_EQ(bytes.size(), 65536u);
    EXPECT_EQ(bytes.substr(3 * 4096 + 96, 16), "CRYO-MARK-BEFORE");
    EXPECT_EQ(bytes.substr(9 * 4096 + 96, 16), "CRYO-MARK-AFTER!");

    // diff lists the one page of the marks region that changed.
    auto diff = session.cryo({ "diff", first, last });
    EXPECT_EQ(diff.exit_code, 0) << diff.output;
    std::string region = hex(before_page - 3 * 4096) + "-" + hex(before_page + 13 * 4096);
    EXPECT_NE(diff.output.find("~ mapping " + region + " rw-p (anonymous): 1 of 16 pages differ: " + hex(after_page)
                               + "-" + hex(after_page + 4096) + "\n"),
              std::string::npos)
        << diff.output;
    EXPECT_NE(diff.output.find("open files are not compared"), std::string::npos) << diff.output;

    // show: what is here and what is in the parent adds up.
    auto json = session.cryo({ "show", last, "--format", "json" });
    ASSERT_EQ(json.exit_code, 0) << json.output;
    uint64_t here = json_number(json.output, "pages_here_bytes");
    uint64_t in_ancestors = json_number(json.output, "pages_in_ancestors_bytes");
    EXPECT_GT(here, 0u);
    EXPECT_GE(in_ancestors, kRegion / 2) << json.output;
    EXPECT_EQ(json_number(json.output, "referenced_bytes"), in_ancestors);
    EXPECT_EQ(json_number(json.output, "stored_in_ancestors_bytes"), in_ancestors);
    uint64_t stored = 0;
    std::regex mapping_stored("\"stored_bytes\": \"([0-9]+)\"");
    for (auto it = std::sregex_iterator(json.output.begin(), json.output.end(), mapping_stored);
         it != std::sregex_iterator(); ++it)
        stored += std::stoull((*it)[1]);
    // Each mapping's stored bytes, and the process's total: twice the pages.
    EXPECT_EQ(stored, 2 * (here + in_ancestors)) << json.output;
    auto text = session.cryo({ "show", last, "--memory" });
    EXPECT_NE(text.output.find("in ancestors\n  ancestor 1 "), std::string::npos) << text.output;
    EXPECT_NE(text.output.find(" in ancestors)"), std::string::npos) << text.output;
    auto check = session.cryo({ "check", "-D", last });
    EXPECT_EQ(check.exit_code, 0) << check.output;
    EXPECT_NE(check.output.find("ancestor 1 "), std::string::npos) << check.output;
    restore_and_expect_pass(session, pid, last);
}

// Three pre-dump rounds (the third with --auto-dedup), the dump, cryo
// dedup: the chain shrinks on disk, every checksum still holds, an
// ancestor is no parent for a new round any more, and the newest restores
// with every page right.
TEST(PreDump, DedupOfAThreeRoundChain)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump");
    std::string rounds[3];
    for (int i = 0; i < 3; ++i) {
        rounds[i] = session.dir().file("round" + std::to_string(i + 1));
        if (i > 0)
            std::this_thread::sleep_for(200ms);
        std::vector<std::string> options;
        if (i == 2)
            options.push_back("--auto-dedup");
        pre_dump(session, pid, rounds[i], i == 0 ? "" : "../round" + std::to_string(i), options);
    }
    // Round 3 freed what it supersedes in rounds 1 and 2.
    auto show = session.cryo({ "show", rounds[0] });
    EXPECT_NE(show.output.find("deduplicated for"), std::string::npos) << show.output;
    auto refused = session.cryo({ "pre-dump", "-t", std::to_string(pid), "-D", session.dir().file("branch"),
                                  "--prev-images-dir", "../round2" });
    EXPECT_NE(refused.exit_code, 0);
    EXPECT_NE(refused.output.find("was deduplicated for"), std::string::npos) << refused.output;
    EXPECT_FALSE(file_exists(session.dir().file("branch") + "/manifest.img"));

    std::string last = session.dir().file("final");
    std::this_thread::sleep_for(200ms);
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, last, false, { "--prev-images-dir", "../round3" }));
    expect_no_tracker_left(session);
    uintmax_t before = disk_usage(rounds[0]) + disk_usage(rounds[1]) + disk_usage(rounds[2]);
    auto dedup = session.cryo({ "dedup", "-D", last });
    ASSERT_EQ(dedup.exit_code, 0) << dedup.output;
    EXPECT_NE(dedup.output.find("3 ancestor(s) deduplicated"), std::string::npos) << dedup.output;
    uintmax_t after = disk_usage(rounds[0]) + disk_usage(rounds[1]) + disk_usage(rounds[2]);
    EXPECT_LT(after, before) << dedup.output;
    std::cout << "chain of 3 pre-dumps: " << (before >> 10) << " KiB on disk before cryo dedup, " << (after >> 10)
              << " KiB after\n";
    auto check = session.cryo({ "check", "-D", last });
    EXPECT_EQ(check.exit_code, 0) << check.output;
    // Dedup again: nothing more to free, still consistent.
    auto again = session.cryo({ "dedup", "-D", last });
    EXPECT_EQ(again.exit_code, 0) << again.output;
    EXPECT_EQ(disk_usage(rounds[0]) + disk_usage(rounds[1]) + disk_usage(rounds[2]), after);
    check = session.cryo({ "check", "-D", last });
    EXPECT_EQ(check.exit_code, 0) << check.output;
    restore_and_expect_pass(session, pid, last);
}

// A dedup made to fail at each of its steps (src/base/fault.h) on a copy of
// the chain: before its journal nothing changed; after it the chain is
// refused with the way out, and cryo dedup run again finishes it; every
// checksum then holds and the newest restores with every page right.
TEST(PreDump, InterruptedDedupIsFinishedByRunningItAgain)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump");
    auto [first, last] = start_chain(session, pid);
    std::this_thread::sleep_for(100ms);
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, last, false, { "--prev-images-dir", "../pre" }));
    expect_no_tracker_left(session);
    auto copy_chain = [&](const std::string& name) {
        std::string top = session.dir().file(name);
        std::filesystem::create_directory(top);
        std::filesystem::copy(first, top + "/pre", std::filesystem::copy_options::recursive);
        std::filesystem::copy(last, top + "/final", std::filesystem::copy_options::recursive);
        return top + "/final";
    };
    std::vector<std::pair<int, std::string>> steps;
    {
        std::string newest = copy_chain("list");
        ::setenv("CRYO_FAULT_LIST", "1", 1);
        auto listed = session.cryo({ "dedup", "-D", newest });
        ::unsetenv("CRYO_FAULT_LIST");
        ASSERT_EQ(listed.exit_code, 0) << listed.output;
        std::regex line("^cryo: step ([0-9]+): (dedup .*)$");
        std::istringstream lines(listed.output);
        for (std::string text; std::getline(lines, text);)
            if (std::smatch match; std::regex_match(text, match, line))
                steps.push_back({ std::stoi(match[1]), match[2] });
    }
    ASSERT_EQ(steps.size(), 4u) << "punch, punched, two manifests";
    std::string newest;
    for (const auto& [step, name] : steps) {
        SCOPED_TRACE("dedup with a fault at step " + std::to_string(step) + " (" + name + ")");
        newest = copy_chain("step" + std::to_string(step));
        ::setenv("CRYO_FAULT_AT", std::to_string(step).c_str(), 1);
        auto failed = session.cryo({ "dedup", "-D", newest });
        ::unsetenv("CRYO_FAULT_AT");
        EXPECT_EQ(failed.exit_code, 1) << failed.output;
        auto check = session.cryo({ "check", "-D", newest });
        EXPECT_NE(check.exit_code, 0) << check.output;
        EXPECT_NE(check.output.find("an interrupted cryo dedup"), std::string::npos) << check.output;
        auto again = session.cryo({ "dedup", "-D", newest });
        EXPECT_EQ(again.exit_code, 0) << again.output;
        check = session.cryo({ "check", "-D", newest });
        EXPECT_EQ(check.exit_code, 0) << check.output;
        EXPECT_NE(check.output.find("deduplicated for"), std::string::npos) << check.output;
    }
    restore_and_expect_pass(session, pid, newest);
}

} // namespace cryo::e2e
