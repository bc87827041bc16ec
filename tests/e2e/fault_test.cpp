// Fault injection (src/base/fault.h): step K of a dump or a restore is made
// to fail, for K walked over the steps, and nothing may be lost.
//
// Dump walk: for each K a fresh fault_mix victim; `cryo dump` fails with
// "injected fault at step K (NAME)" and exit 1, leaves no manifest, no file
// and no directory it created, and the victim, released, passes its checks
// (which compare its memory map, descriptors, signal masks and tracers with
// what they were before). Restore walk: one checkpoint; for each K `cryo
// restore` fails, no pid or tid of the tree exists afterwards, the image
// directory is unchanged, and a last restore without the switch passes.
// Killed: cryo is SIGKILLed while stalled at step K of a dump (the victim
// runs on and passes) or of a restore (nothing of the tree remains).
//
// By default the walks visit every step that is not an injected system
// call, the first of each run of the same call, and every 8th step;
// CRYO_FAULT_STRIDE=1 (scripts/fault-walk, the ctest label `long`) visits
// every step, CRYO_FAULT_STRIDE=N every Nth.
#include <signal.h>
#include <sys/personality.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "steps.h"

namespace cryo::e2e {

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kVictim = "fault_mix";

// Sets an environment variable for the cryo commands started while it
// lives (they inherit the harness's environment).
class ScopedEnv {
public:
    ScopedEnv(const char* name, const std::string& value) : m_name(name) { ::setenv(name, value.c_str(), 1); }
    ~ScopedEnv() { ::unsetenv(m_name); }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    const char* m_name;
};

struct Step {
    int number { 0 };
    std::string name;
};

// The "cryo: step K: NAME" lines of a run with CRYO_FAULT_LIST=1.
std::vector<Step> parse_steps(const std::string& output)
{
    std::vector<Step> steps;
    std::regex line("^cryo: step ([0-9]+): (.*)$");
    std::istringstream lines(output);
    std::string text;
    while (std::getline(lines, text)) {
        std::smatch match;
        if (std::regex_match(text, match, line))
            steps.push_back({ std::stoi(match[1]), match[2] });
    }
    return steps;
}

int stride()
{
    const char* text = std::getenv("CRYO_FAULT_STRIDE");
    int value = text ? std::atoi(text) : 0;
    return value > 0 ? value : 8;
}

// "syscall rt_sigaction in thread 12" -> "syscall rt_sigaction".
std::string kind_of(const std::string& name)
{
    auto in = name.find(" in thread ");
    return in == std::string::npos ? name : name.substr(0, in);
}

// The steps a walk visits (see the top of this file).
std::vector<Step> steps_to_walk(const std::vector<Step>& steps)
{
    std::vector<Step> chosen;
    int every = stride();
    for (size_t i = 0; i < steps.size(); ++i) {
        const auto& step = steps[i];
        bool syscall = step.name.starts_with("syscall ");
        bool first_of_run = i == 0 || kind_of(steps[i - 1].name) != kind_of(step.name);
        if (every == 1 || !syscall || first_of_run || step.number % every == 0 || i + 1 == steps.size())
            chosen.push_back(step);
    }
    return chosen;
}

// Every pid and tid of the victim's tree, from its "PIDS ..." line.
std::vector<pid_t> tree_ids(const Session& session)
{
    std::istringstream lines(session.log());
    std::string line;
    while (std::getline(lines, line)) {
        if (!line.starts_with("PIDS "))
            continue;
        std::istringstream numbers(line.substr(5));
        std::vector<pid_t> ids;
        pid_t id = 0;
        while (numbers >> id)
            ids.push_back(id);
        return ids;
    }
    return {};
}

// A step's name with every number as '#': pids and tids differ from one
// victim to the next.
std::string without_numbers(const std::string& name)
{
    return std::regex_replace(name, std::regex("[0-9]+"), "#");
}

// Whether `output` holds the error of an injected fault at `step` (the
// name compared without numbers).
bool reports_fault(const std::string& output, const Step& step)
{
    std::smatch match;
    std::string prefix = "injected fault at step " + std::to_string(step.number) + " \\((.*)\\)";
    if (!std::regex_search(output, match, std::regex(prefix)))
        return false;
    return without_numbers(match[1]) == without_numbers(step.name);
}

// The ids of `ids` that exist in /proc (a tid is found there too).
std::vector<pid_t> still_there(const std::vector<pid_t>& ids)
{
    std::vector<pid_t> present;
    for (pid_t id : ids)
        if (process_exists(id))
            present.push_back(id);
    return present;
}

std::string describe(const std::vector<pid_t>& ids)
{
    std::string text;
    for (pid_t id : ids)
        text += process_report(id);
    return text;
}

// Name, size and a checksum of every file of a directory.
std::map<std::string, std::string> directory_contents(const std::string& path)
{
    std::map<std::string, std::string> contents;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(path, error)) {
        std::string data = read_file(entry.path().string());
        uint64_t hash = 1469598103934665603ull;
        for (unsigned char byte : data)
            hash = (hash ^ byte) * 1099511628211ull;
        contents[entry.path().filename().string()] = std::to_string(data.size()) + ":" + std::to_string(hash);
    }
    return contents;
}

// Without stats-restore.img, which only a successful restore writes.
std::map<std::string, std::string> checkpoint_contents(const std::string& path)
{
    auto contents = directory_contents(path);
    contents.erase("stats-restore.img");
    return contents;
}

std::vector<std::string> dump_command(pid_t pid, const std::string& images, const std::vector<std::string>& extra = {})
{
    std::vector<std::string> args { "dump", "-t", std::to_string(pid), "-D", images };
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

std::vector<std::string> restore_command(const std::string& images)
{
    return { "restore", "-D", images, "-d", "--pidfile", images + ".pid" };
}

// The steps of a dump of a fresh victim, from a run with the list switch
// (with --leave-running, which takes the same steps; the victim must pass
// after it too). Computed once.
const std::vector<Step>& dump_steps()
{
    static std::vector<Step> steps = [] {
        Session session;
        pid_t pid = start_and_wait_ready(session, kVictim);
        std::string images = session.dir().file("images");
        ScopedEnv list("CRYO_FAULT_LIST", "1");
        auto result = session.cryo(dump_command(pid, images, { "--leave-running" }));
        EXPECT_EQ(result.exit_code, 0) << result.output;
        EXPECT_TRUE(file_exists(images + "/manifest.img"));
        release_and_expect_pass(session, pid);
        auto parsed = parse_steps(result.output);
        EXPECT_NE(result.output.find("cryo: fault steps: " + std::to_string(parsed.size()) + "\n"), std::string::npos)
            << result.output;
        return parsed;
    }();
    return steps;
}

// A checkpoint of a victim in "restored" mode, for the restore tests.
struct Checkpoint {
    std::string images;
    std::vector<pid_t> ids;
};

Checkpoint make_checkpoint(Session& session)
{
    pid_t pid = start_and_wait_ready(session, kVictim, { "restored" });
    Checkpoint checkpoint { session.dir().file("images"), tree_ids(session) };
    EXPECT_EQ(checkpoint.ids.size(), 8u) << session.log();
    dump(session, pid, checkpoint.images);
    return checkpoint;
}

// Restores without a switch, releases the tree and expects one more PASS.
void restore_and_expect_pass(Session& session, const Checkpoint& checkpoint)
{
    auto passes = [&] {
        std::istringstream lines(session.log());
        std::string line;
        int count = 0;
        while (std::getline(lines, line))
            count += line == "PASS";
        return count;
    };
    int before = passes();
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, checkpoint.ids.front(), checkpoint.images));
    ASSERT_TRUE(send_signal(checkpoint.ids.front(), SIGUSR1));
    auto status = session.wait_for_exit(checkpoint.ids.front());
    ASSERT_TRUE(status.has_value()) << session.diagnostics();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "status " << *status << "\n" << session.diagnostics();
    EXPECT_EQ(passes(), before + 1) << session.diagnostics();
    EXPECT_EQ(session.log().find("FAIL"), std::string::npos) << session.diagnostics();
}

void report_figures(const std::string& what, size_t steps, size_t walked, Clock::time_point started)
{
    double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    std::cout << "[ fault    ] " << what << ": " << steps << " steps, " << walked << " walked in " << seconds << " s\n";
    testing::Test::RecordProperty(what + "_steps", static_cast<int>(steps));
    testing::Test::RecordProperty(what + "_walked", static_cast<int>(walked));
}

// Waits until `path` holds `text` or `pid` exited.
bool wait_for_output(Session& session, pid_t pid, const std::string& path, const std::string& text)
{
    auto deadline = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < deadline) {
        if (read_file(path).find(text) != std::string::npos)
            return true;
        if (!process_exists(pid))
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    (void)session;
    return false;
}

// The steps a killed-midway test stalls at: the first step of each phase
// and of each kind of step, and one in the middle of every run of injected
// calls of one kind.
std::vector<Step> stall_points(const std::vector<Step>& steps)
{
    std::vector<Step> chosen;
    for (size_t i = 0; i < steps.size(); ++i) {
        bool first = i == 0 || kind_of(steps[i - 1].name) != kind_of(steps[i].name);
        if (steps[i].name.starts_with("phase ") || (first && steps[i].name.starts_with("syscall ")))
            chosen.push_back(steps[i]);
        else if (first) {
            size_t end = i;
            while (end < steps.size() && kind_of(steps[end].name) == kind_of(steps[i].name))
                ++end;
            if (end - i > 2)
                chosen.push_back(steps[i + (end - i) / 2]);
        }
    }
    return chosen;
}

// The walks count on every run taking the same steps, but the restore's
// steps depend on where things are: memory a restorer prepares in place is
// not where cryo's own mappings happened to land, and address space
// layout randomisation moves those from run to run. Every process this
// test starts (cryo, the victims) gets one fixed layout.
class FixedLayout {
public:
    FixedLayout() : m_saved(::personality(0xffffffff))
    {
        if (m_saved != -1)
            ::personality(static_cast<unsigned long>(m_saved) | ADDR_NO_RANDOMIZE);
    }
    ~FixedLayout()
    {
        if (m_saved != -1)
            ::personality(static_cast<unsigned long>(m_saved));
    }
    FixedLayout(const FixedLayout&) = delete;
    FixedLayout& operator=(const FixedLayout&) = delete;

private:
    int m_saved;
};

} // namespace

TEST(FaultWalk, EveryFailedDumpLeavesTheTreeAsItWas)
{
    FixedLayout layout;
    const auto& steps = dump_steps();
    ASSERT_GT(steps.size(), 10u);
    auto walk = steps_to_walk(steps);
    auto started = Clock::now();
    for (size_t index = 0; index < walk.size(); ++index) {
        const auto& step = walk[index];
        SCOPED_TRACE("dump with a fault at step " + std::to_string(step.number) + " (" + step.name + ")");
        Session session;
        pid_t pid = start_and_wait_ready(session, kVictim);
        std::string images = session.dir().file("images");
        // Half of the runs write into a directory that exists already: it
        // must stay, empty; a directory cryo made must go.
        bool existing = index % 2 == 1;
        if (existing)
            std::filesystem::create_directory(images);
        ScopedEnv fault("CRYO_FAULT_AT", std::to_string(step.number));
        auto result = session.cryo(dump_command(pid, images));
        EXPECT_EQ(result.exit_code, 1) << result.output;
        EXPECT_TRUE(reports_fault(result.output, step)) << result.output;
        if (existing) {
            EXPECT_TRUE(std::filesystem::is_directory(images));
            EXPECT_TRUE(directory_contents(images).empty()) << "left in " << images << ": "
                                                            << directory_contents(images).begin()->first;
        } else {
            EXPECT_FALSE(file_exists(images)) << images << " was left behind";
        }
        ASSERT_TRUE(process_exists(pid));
        release_and_expect_pass(session, pid);
        if (HasFailure())
            break;
    }
    report_figures("dump", steps.size(), walk.size(), started);
}

TEST(FaultWalk, EveryFailedRestoreLeavesNothing)
{
    FixedLayout layout;
    Session session;
    auto checkpoint = make_checkpoint(session);
    ASSERT_FALSE(HasFailure());
    ASSERT_TRUE(session.wait_until_gone(checkpoint.ids));
    auto contents = checkpoint_contents(checkpoint.images);

    // The list run restores the tree for real; it must pass, then be gone.
    std::vector<Step> steps;
    {
        ScopedEnv list("CRYO_FAULT_LIST", "1");
        auto result = session.cryo(restore_command(checkpoint.images));
        ASSERT_EQ(result.exit_code, 0) << result.output << session.diagnostics();
        steps = parse_steps(result.output);
        for (pid_t id : checkpoint.ids)
            session.track(id);
    }
    ASSERT_GT(steps.size(), 10u);
    ASSERT_NO_FATAL_FAILURE(release_and_expect_pass(session, checkpoint.ids.front()));
    ASSERT_TRUE(session.wait_until_gone(checkpoint.ids)) << session.diagnostics();
    std::filesystem::remove(checkpoint.images + ".pid");

    auto walk = steps_to_walk(steps);
    auto started = Clock::now();
    for (const auto& step : walk) {
        SCOPED_TRACE("restore with a fault at step " + std::to_string(step.number) + " (" + step.name + ")");
        ScopedEnv fault("CRYO_FAULT_AT", std::to_string(step.number));
        auto result = session.cryo(restore_command(checkpoint.images));
        EXPECT_EQ(result.exit_code, 1) << result.output;
        std::string expected = "injected fault at step " + std::to_string(step.number) + " (" + step.name + ")";
        EXPECT_NE(result.output.find(expected), std::string::npos) << "no '" << expected << "' in:\n" << result.output;
        // Right after cryo exits, before anything is reaped here: no
        // process or thread of the tree, running, stopped or zombie.
        auto left = still_there(checkpoint.ids);
        EXPECT_TRUE(left.empty()) << describe(left) << result.output;
        EXPECT_TRUE(children_of_self().empty()) << session.diagnostics();
        EXPECT_EQ(checkpoint_contents(checkpoint.images), contents);
        EXPECT_FALSE(file_exists(checkpoint.images + ".pid"));
        if (HasFailure())
            break;
        session.wait_until_gone(checkpoint.ids);
    }
    report_figures("restore", steps.size(), walk.size(), started);
    ASSERT_FALSE(HasFailure());
    restore_and_expect_pass(session, checkpoint);
}

TEST(FaultKill, DumpKilledMidwayLeavesTheTreeRunning)
{
    const auto& steps = dump_steps();
    ASSERT_GT(steps.size(), 10u);
    for (const auto& step : stall_points(steps)) {
        SCOPED_TRACE("dump killed at step " + std::to_string(step.number) + " (" + step.name + ")");
        Session session;
        pid_t pid = start_and_wait_ready(session, kVictim);
        std::string images = session.dir().file("images");
        std::string output = session.dir().file("cryo-output-stalled");
        pid_t cryo = 0;
        {
            ScopedEnv stall("CRYO_FAULT_STALL_AT", std::to_string(step.number));
            cryo = session.start_cryo(dump_command(pid, images), output);
        }
        std::string stalled = "cryo: stalled at step " + std::to_string(step.number) + " (";
        EXPECT_TRUE(wait_for_output(session, cryo, output, stalled)) << read_file(output);
        send_signal(cryo, SIGKILL);
        auto status = session.wait_for_exit(cryo);
        EXPECT_TRUE(status && WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
        EXPECT_FALSE(file_exists(images + "/manifest.img"));
        ASSERT_TRUE(process_exists(pid));
        release_and_expect_pass(session, pid);
        if (HasFailure())
            break;
    }
}

TEST(FaultKill, RestoreKilledMidwayLeavesNothing)
{
    Session session;
    auto checkpoint = make_checkpoint(session);
    ASSERT_FALSE(HasFailure());
    ASSERT_TRUE(session.wait_until_gone(checkpoint.ids));
    auto contents = checkpoint_contents(checkpoint.images);
    std::vector<Step> steps;
    {
        // The steps of a restore, from a run that restores the tree for
        // real, which is then killed.
        ScopedEnv list("CRYO_FAULT_LIST", "1");
        auto result = session.cryo(restore_command(checkpoint.images));
        ASSERT_EQ(result.exit_code, 0) << result.output;
        steps = parse_steps(result.output);
        for (pid_t id : checkpoint.ids)
            session.track(id);
        for (pid_t id : checkpoint.ids)
            send_signal(id, SIGKILL);
        ASSERT_TRUE(session.wait_until_gone(checkpoint.ids)) << session.diagnostics();
        std::filesystem::remove(checkpoint.images + ".pid");
    }
    ASSERT_GT(steps.size(), 10u);
    for (const auto& step : stall_points(steps)) {
        SCOPED_TRACE("restore killed at step " + std::to_string(step.number) + " (" + step.name + ")");
        std::string output = session.dir().file("cryo-output-stalled-" + std::to_string(step.number));
        pid_t cryo = 0;
        {
            ScopedEnv stall("CRYO_FAULT_STALL_AT", std::to_string(step.number));
            cryo = session.start_cryo(restore_command(checkpoint.images), output);
        }
        std::string stalled = "cryo: stalled at step " + std::to_string(step.number) + " (" + step.name + ")";
        EXPECT_TRUE(wait_for_output(session, cryo, output, stalled)) << read_file(output);
        send_signal(cryo, SIGKILL);
        auto status = session.wait_for_exit(cryo);
        EXPECT_TRUE(status && WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
        // The restorers die with cryo (the kernel kills its tracees, and
        // those not seized yet have SIGKILL as their parent-death signal);
        // what they leave as zombies comes to this sub-reaper and is reaped.
        EXPECT_TRUE(session.wait_until_gone(checkpoint.ids, std::chrono::seconds(10))) << describe(still_there(checkpoint.ids));
        EXPECT_EQ(checkpoint_contents(checkpoint.images), contents);
        if (HasFailure())
            break;
    }
    ASSERT_FALSE(HasFailure());
    restore_and_expect_pass(session, checkpoint);
}

} // namespace cryo::e2e
