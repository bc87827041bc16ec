// End-to-end tests: each victim is started, checkpointed (which kills it),
// restored, released with SIGUSR1, and must report PASS about its own state.
// Control runs release the victim without a checkpoint, so a broken victim
// is told apart from a broken cryo. Negative tests check that bad input gets
// a clear error and that nothing is lost or left behind.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "harness.h"
#include "steps.h"

namespace cryo::e2e {

namespace {

struct Scenario {
    std::string victim;
    std::vector<std::string> args {};
    bool new_pid_namespace { false };
};

void PrintTo(const Scenario& scenario, std::ostream* out)
{
    *out << scenario.victim;
    for (const auto& arg : scenario.args)
        *out << " " << arg;
}

std::string scenario_name(const testing::TestParamInfo<Scenario>& info)
{
    std::string name = info.param.victim;
    for (const auto& arg : info.param.args)
        name += "_" + arg;
    return name;
}

const std::vector<Scenario> kScenarios {
    { "counter" }, { "counter_static" }, { "memory" }, { "memory_static" }, { "signals" }, { "files" },
    { "fpu" }, { "syscalls" }, { "syscalls", { "nanosleep" } }, { "syscalls", { "clock_nanosleep" } }, { "syscalls", { "poll" } },
    { "syscalls", { "select" } }, { "syscalls", { "sigtimedwait" } }, { "sigsuspend" }, { "timers" }, { "eventfiles" }, { "memfd" }, { "pipes" }, { "unix" }, { "unix_scm" }, { "epoll" }, { "seccomp" }, { "seccomp_strict" }, { "cow" }, { "threads" }, { "leader_exited" }, { "tree" }, { "orphan" }, { "fd_table_shared" }, { "sessions" },
    { "fds_timers" }, { "fds_pidfd" }, { "file_locks" }, { "process_state" }, { "ids" }, { "fds_owner" }, { "chroot" }, { "futex" },
    { "pidns", {}, true }, { "pidns", { "nested" }, true },
};

pid_t start_scenario(Session& session, const Scenario& scenario)
{
    return start_and_wait_ready(session, scenario.victim, scenario.args, scenario.new_pid_namespace);
}

class Control : public testing::TestWithParam<Scenario> { };
class CheckpointRestore : public testing::TestWithParam<Scenario> { };
class CheckpointTwice : public testing::TestWithParam<Scenario> { };

} // namespace

TEST_P(Control, PassesWithoutCheckpoint)
{
    Session session;
    pid_t pid = start_scenario(session, GetParam());
    release_and_expect_pass(session, pid);
}

TEST_P(CheckpointRestore, RestoredVictimVerifiesItself)
{
    Session session;
    pid_t pid = start_scenario(session, GetParam());
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, images));
    release_and_expect_pass(session, pid);
}

TEST_P(CheckpointTwice, DumpRestoreDumpRestore)
{
    Session session;
    pid_t pid = start_scenario(session, GetParam());
    for (int round = 1; round <= 2; ++round) {
        std::string images = session.dir().file("images" + std::to_string(round));
        ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, images));
    }
    release_and_expect_pass(session, pid);
}

INSTANTIATE_TEST_SUITE_P(Victims, Control, testing::ValuesIn(kScenarios), scenario_name);
INSTANTIATE_TEST_SUITE_P(Victims, CheckpointRestore, testing::ValuesIn(kScenarios), scenario_name);
INSTANTIATE_TEST_SUITE_P(Victims, CheckpointTwice,
                         testing::Values(Scenario { "counter" }, Scenario { "memory" }, Scenario { "threads" }, Scenario { "leader_exited" }, Scenario { "pipes" }, Scenario { "unix" }, Scenario { "cow" }, Scenario { "timers" },
                                         Scenario { "tree" }, Scenario { "pidns", { "nested" }, true },
                                         Scenario { "fds_pidfd" }, Scenario { "file_locks" }, Scenario { "chroot" }, Scenario { "futex" }, Scenario { "seccomp_strict" },
                                         Scenario { "fd_table_shared" }, Scenario { "sessions" }),
                         scenario_name);

namespace {

// Checkpoints `victim`, checks that the image stays below `limit` bytes,
// then restores it and expects PASS.
void expect_image_below(const std::string& victim, uintmax_t limit)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, victim);
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    uintmax_t total = 0;
    for (const auto& entry : std::filesystem::directory_iterator(images))
        total += entry.file_size();
    EXPECT_LT(total, limit);
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
}

} // namespace

// 1 GiB reserved, ~100 MiB written: the image holds only what was written.
TEST(Checkpoint, UntouchedReservationCostsNothing) { expect_image_below("memory", 256ull << 20); }

TEST(Checkpoint, LeaveRunningKeepsTheVictimAndTheImageRestores)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "counter");
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, true));
    ASSERT_TRUE(process_exists(pid));
    release_and_expect_pass(session, pid);
    // The checkpoint taken while it ran restores too, once the pid is free.
    ASSERT_TRUE(session.wait_until_gone({ pid }));
    std::filesystem::resize_file(session.log_path(), 0);   // the restored victim appends to it
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
}

TEST(Checkpoint, ForegroundRestoreExitsWithTheVictimStatus)
{
    for (int code : { 0, 3 }) {
        Session session;
        pid_t pid = start_and_wait_ready(session, "counter", { "--exit-code", std::to_string(code) });
        std::string images = session.dir().file("images");
        ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
        pid_t cryo = session.start_cryo({ "restore", "-D", images, "--pidfile", images + ".pid" }, session.dir().file("restore.out"));
        session.track(cryo);
        session.track(pid);
        for (int i = 0; i < 500 && !file_exists(images + ".pid"); ++i)
            usleep(10000);
        ASSERT_TRUE(send_signal(pid, SIGUSR1));
        auto status = session.wait_for_exit(cryo);
        ASSERT_TRUE(status.has_value());
        EXPECT_TRUE(WIFEXITED(*status));
        EXPECT_EQ(WEXITSTATUS(*status), code) << session.diagnostics() << read_file(session.dir().file("restore.out"));
    }
}

TEST(Errors, DumpOfMissingPidNamesIt)
{
    Session session;
    pid_t missing = unused_pid();
    auto result = session.cryo({ "dump", "-t", std::to_string(missing), "-D", session.dir().file("images") });
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("pid " + std::to_string(missing)), std::string::npos) << result.output;
    EXPECT_FALSE(file_exists(session.dir().file("images/manifest.img")));
}

namespace {

// A checkpoint of the counter whose victim is gone, for damaging.
std::string make_checkpoint(Session& session, pid_t& pid)
{
    pid = start_and_wait_ready(session, "counter");
    std::string images = session.dir().file("images");
    dump(session, pid, images);
    return images;
}

void expect_refused(Session& session, pid_t pid, const std::string& images, const std::string& mention)
{
    auto result = session.cryo({ "restore", "-D", images, "-d" });
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find(mention), std::string::npos) << result.output;
    EXPECT_FALSE(process_exists(pid)) << "a process was left behind";
}

} // namespace

TEST(Errors, CorruptedPageFileIsRefused)
{
    Session session;
    pid_t pid = 0;
    auto images = make_checkpoint(session, pid);
    std::string pages = images + "/pages-" + std::to_string(pid) + ".img";
    std::fstream file(pages, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(static_cast<std::streamoff>(std::filesystem::file_size(pages) / 2));
    char byte = 0;
    file.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x5a);
    file.seekp(static_cast<std::streamoff>(std::filesystem::file_size(pages) / 2));
    file.write(&byte, 1);
    file.close();
    expect_refused(session, pid, images, "pages-" + std::to_string(pid) + ".img");
}

TEST(Errors, TruncatedCoreIsRefused)
{
    Session session;
    pid_t pid = 0;
    auto images = make_checkpoint(session, pid);
    std::string core = images + "/core-" + std::to_string(pid) + ".img";
    std::filesystem::resize_file(core, std::filesystem::file_size(core) / 2);
    expect_refused(session, pid, images, "core-" + std::to_string(pid) + ".img");
}

TEST(Errors, MissingManifestIsRefused)
{
    Session session;
    pid_t pid = 0;
    auto images = make_checkpoint(session, pid);
    std::filesystem::remove(images + "/manifest.img");
    expect_refused(session, pid, images, "manifest");
}

TEST(Errors, RestoreWhilePidIsTakenNamesItAndLeavesTheOriginal)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "counter");
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, true));
    auto result = session.cryo({ "restore", "-D", images, "-d" });
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("pid " + std::to_string(pid) + " is already in use"), std::string::npos) << result.output;
    release_and_expect_pass(session, pid);
}

// A process outside the tree still in the session the root led (zdtm
// session00 in the host flavour) keeps the root's pid taken: the error
// says who.
TEST(Errors, RestoreWhilePidIsAnOutsidersSessionNamesIt)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "sessions", { "outside" });
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    auto result = session.cryo({ "restore", "-D", images, "-d" });
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("pid " + std::to_string(pid) + " is already in use: cannot restore pid " + std::to_string(pid)
                                 + " (it is the session id of pid "),
              std::string::npos)
        << result.output;
}

TEST(Errors, UnsupportedDescriptorLeavesTheVictimRunning)
{
    expect_dump_refused("socket", {}, {}, { "fd 10: IPv4 socket (socket:[", "]) is not supported (if it is outside the tree on purpose, dump with --external socket:[" });
}

// Only PID, UTS and IPC namespaces are restored: a process in another
// mount namespace would come back with cryo's mounts.
TEST(Errors, ProcessInAnotherNamespaceIsRefused)
{
    expect_dump_refused("namespaces", {}, {}, { "is in another mount namespace (mnt:[", "only PID, UTS and IPC namespaces are restored" });
}

TEST(Errors, MessageQueueIsRefused)
{
    expect_dump_refused("namespaces", { "mqueue" }, {}, { "POSIX message queue (/cryo-victim-", "is not supported" });
}

// A child sharing its parent's fd table comes back sharing it (victim
// fd_table_shared), but a table shared by two processes neither of which
// made the other (the one in between exited) cannot be made again.
TEST(Errors, FdTableSharedWithoutTheParentIsRefused)
{
    expect_dump_refused("namespaces", { "clone-files" }, {}, { "share a file descriptor table, and neither is the parent that made the other" });
}

// A parent waiting in vfork() cannot be stopped by ptrace until its child
// execs or exits: the dump refuses at once (it used to wait forever).
TEST(Errors, ParentInVforkIsRefusedAtOnce)
{
    expect_dump_refused("vfork", {}, {}, { "shares its memory (vfork() not followed by exec yet" });
}

TEST(Check, ReportsEveryFeatureAndFindsTheRequiredOnes)
{
    Session session;
    auto result = session.cryo({ "check" });
    EXPECT_EQ(result.exit_code, 0) << result.output;
    for (const char* feature : { "ptrace seize", "clone3 with set_tid", "PAGEMAP_SCAN", "PR_SET_MM_MAP", "userfaultfd", "TCP_REPAIR" })
        EXPECT_NE(result.output.find(feature), std::string::npos) << feature << "\n" << result.output;
}


namespace {

// Starts the counter victim with its stdout (and its log, /dev/stdout) on
// the write end of a pipe.
pid_t start_counter_writing_to(int pipe_write_end)
{
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(pipe_write_end, 1);
        ::dup2(pipe_write_end, 2);
        int null_fd = ::open("/dev/null", O_RDONLY);
        ::dup2(null_fd, 0);
        for (int fd = 3; fd < 1024; ++fd)
            ::close(fd);
        std::string victim = std::string(CRYO_VICTIM_DIR) + "/victim_counter";
        ::execl(victim.c_str(), victim.c_str(), "/dev/stdout", nullptr);
        ::_exit(127);
    }
    return pid;
}

// Reads from a pipe until `word` shows up or the time runs out.
bool read_until(int fd, const std::string& word, std::string& seen, std::chrono::seconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buffer[4096];
    while (std::chrono::steady_clock::now() < deadline) {
        if (seen.find(word) != std::string::npos)
            return true;
        ssize_t got = ::read(fd, buffer, sizeof(buffer));
        if (got > 0)
            seen.append(buffer, static_cast<size_t>(got));
        else
            usleep(10000);
    }
    return seen.find(word) != std::string::npos;
}

} // namespace

// The victim's output goes into a pipe the harness reads: on the same
// machine the restored victim is connected to that same pipe again.
TEST(Checkpoint, OutputPipeToTheHarnessKeepsWorking)
{
    Session session;
    int ends[2];
    ASSERT_EQ(::pipe2(ends, O_CLOEXEC | O_NONBLOCK), 0);
    pid_t pid = start_counter_writing_to(ends[1]);
    ::close(ends[1]);
    session.track(pid);
    std::string seen;
    ASSERT_TRUE(read_until(ends[0], "READY", seen, std::chrono::seconds(20))) << seen;
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, images));
    ASSERT_TRUE(send_signal(pid, SIGUSR1));
    EXPECT_TRUE(read_until(ends[0], "PASS", seen, std::chrono::seconds(30))) << seen << session.diagnostics();
    auto status = session.wait_for_exit(pid);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << seen;
    ::close(ends[0]);
}


// A failure in the middle of the restore (a mapped file is gone) leaves no
// process of the tree behind, and the error names the file.
TEST(Errors, FailureDuringMorphLeavesNothingBehind)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "tree");
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    auto pids = session.image_pids(images);
    std::string shared_file = session.log_path() + ".shared";
    ASSERT_TRUE(std::filesystem::remove(shared_file));
    auto result = session.cryo({ "restore", "-D", images, "-d" });
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find(shared_file), std::string::npos) << result.output;
    EXPECT_TRUE(session.wait_until_gone(pids, std::chrono::seconds(5))) << "a restored process was left behind";
    for (pid_t restored : pids)
        EXPECT_FALSE(process_exists(restored)) << restored;
}


// --inherit-fd fd[N]:pipe:[INODE]: the victim's output pipe is replaced on
// restore by a new pipe that cryo got as its fd 3.
TEST(Checkpoint, InheritFdReplacesAPipe)
{
    Session session;
    int original[2], replacement[2];
    ASSERT_EQ(::pipe2(original, O_CLOEXEC | O_NONBLOCK), 0);
    ASSERT_EQ(::pipe2(replacement, O_CLOEXEC | O_NONBLOCK), 0);
    pid_t pid = start_counter_writing_to(original[1]);
    session.track(pid);
    struct stat st {};
    ASSERT_EQ(::fstat(original[1], &st), 0);
    ::close(original[1]);
    std::string seen;
    ASSERT_TRUE(read_until(original[0], "READY", seen, std::chrono::seconds(20))) << seen;
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    ::close(original[0]);   // the original pipe is gone for good

    std::string inherit = "fd[3]:pipe:[" + std::to_string(st.st_ino) + "]";
    auto restored = session.cryo({ "restore", "-D", images, "-d", "--inherit-fd", inherit }, replacement[1]);
    ::close(replacement[1]);
    ASSERT_EQ(restored.exit_code, 0) << restored.output;
    ASSERT_TRUE(send_signal(pid, SIGUSR1));
    std::string after;
    EXPECT_TRUE(read_until(replacement[0], "PASS", after, std::chrono::seconds(30))) << after;
    auto victim_status = session.wait_for_exit(pid);
    ASSERT_TRUE(victim_status.has_value());
    EXPECT_TRUE(WIFEXITED(*victim_status) && WEXITSTATUS(*victim_status) == 0) << after;
    ::close(replacement[0]);
}

TEST(Errors, InheritFdNeedsAnOpenDescriptor)
{
    Session session;
    pid_t pid = 0;
    auto images = make_checkpoint(session, pid);
    auto result = session.cryo({ "restore", "-D", images, "-d", "--inherit-fd", "fd[77]:pipe:[1]" });
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("no open fd 77"), std::string::npos) << result.output;
    EXPECT_FALSE(process_exists(pid));
}

TEST(Show, PrintsTheTreeMemoryAndFilesOfACheckpoint)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "tree");
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    auto result = session.cryo({ "show", images });
    EXPECT_EQ(result.exit_code, 0) << result.output;
    for (pid_t process : session.image_pids(images))
        EXPECT_NE(result.output.find("process " + std::to_string(process)), std::string::npos) << result.output;
    for (const char* expected : { "checksums verified", "├─ ", "└─ ", "(zombie, status", "[stack]", "victim.log",
                                  "shared with", "command: ", "victims/victim_tree ", "dump statistics", "pages scanned" })
        EXPECT_NE(result.output.find(expected), std::string::npos) << expected << "\n" << result.output;

    // One process, one section; the environment only on request.
    result = session.cryo({ "show", images, "--pid", std::to_string(pid), "--files" });
    EXPECT_EQ(result.exit_code, 0) << result.output;
    EXPECT_NE(result.output.find("descriptors:"), std::string::npos) << result.output;
    EXPECT_EQ(result.output.find("memory:"), std::string::npos) << result.output;
    EXPECT_EQ(result.output.find("tree:"), std::string::npos) << result.output;
    EXPECT_EQ(result.output.find("PATH="), std::string::npos) << result.output;
    result = session.cryo({ "show", images, "--pid", std::to_string(pid), "--env" });
    EXPECT_NE(result.output.find("PATH="), std::string::npos) << result.output;
    result = session.cryo({ "show", images, "--pid", "1" });
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("no process 1 in this checkpoint"), std::string::npos) << result.output;

    // JSON: one document with the schema's field names.
    result = session.cryo({ "show", images, "--format", "json" });
    EXPECT_EQ(result.exit_code, 0) << result.output;
    EXPECT_TRUE(result.output.starts_with("{")) << result.output;
    for (std::string expected : { std::string("\"checkpoint\""), std::string("\"processes\""),
                                  "\"pid\": " + std::to_string(pid), std::string("\"shared_with\""),
                                  std::string("\"stored_bytes\""), std::string("\"dump_stats\""),
                                  std::string("\"state\": \"zombie\"") })
        EXPECT_NE(result.output.find(expected), std::string::npos) << expected << "\n" << result.output;

    std::filesystem::resize_file(images + "/tree.img", 10);
    result = session.cryo({ "show", images });
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("tree.img"), std::string::npos) << result.output;
}

// A 2 GiB sparse deleted file with 8 KiB of data costs about 8 KiB.
TEST(Checkpoint, SparseDeletedFileStaysSmall) { expect_image_below("memfd", 10ull << 20); }


// A read-only open file that changed after the dump is refused, naming it;
// --no-file-check restores anyway.
TEST(Errors, ChangedFileIsRefusedUnlessTold)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "files");
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    std::string changed = session.log_path() + ".ro";
    {
        std::ofstream append(changed, std::ios::app);
        append << "more";
    }
    auto result = session.cryo({ "restore", "-D", images, "-d" });
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find(changed + " changed since the checkpoint"), std::string::npos) << result.output;
    EXPECT_FALSE(process_exists(pid));
    result = session.cryo({ "restore", "-D", images, "-d", "--no-file-check" });
    ASSERT_EQ(result.exit_code, 0) << result.output;
    session.track(pid);
    release_and_expect_pass(session, pid);
}


// A deleted file with more data than --ghost-limit is refused, naming it,
// and the victim runs on untouched.
TEST(Errors, GhostFileOverTheLimitIsRefused)
{
    expect_dump_refused("memfd", {}, { "--ghost-limit", "4K" }, { "{log}.sparse holds more than 4096 bytes" });
}


// A dump into a directory that holds an older checkpoint (a stale manifest,
// page file and core of the same pid, and a stray file) replaces it: the
// restore sees only the new checkpoint.
TEST(Checkpoint, DumpOverwritesAStaleImageDirectory)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "memory");
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, true));   // the stale checkpoint, of the same process
    {
        std::ofstream junk(images + "/pages-" + std::to_string(pid) + ".img", std::ios::app | std::ios::binary);
        junk << std::string(1 << 20, 'J');
    }
    {
        std::ofstream stray(images + "/stray.txt");
        stray << "not part of any checkpoint\n";
    }
    ::chmod((images + "/stray.txt").c_str(), 0600);
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, images));
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e

namespace cryo::e2e {

// --display-stats prints the table of each phase; both commands leave their
// statistics in the checkpoint directory (the dump's under the manifest).
TEST(Checkpoint, StatisticsArePrintedAndKept)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "counter");
    std::string images = session.dir().file("images");
    auto dumped = session.cryo({ "dump", "-t", std::to_string(pid), "-D", images, "--display-stats" });
    ASSERT_EQ(dumped.exit_code, 0) << dumped.output;
    for (const char* expected : { "freeze", "memory", "frozen for", "pages stored", "pages skipped" })
        EXPECT_NE(dumped.output.find(expected), std::string::npos) << expected << "\n" << dumped.output;
    EXPECT_TRUE(file_exists(images + "/stats-dump.img"));
    ASSERT_TRUE(session.wait_until_gone({ pid }));
    auto restored = session.cryo({ "restore", "-D", images, "-d", "--display-stats" });
    ASSERT_EQ(restored.exit_code, 0) << restored.output;
    session.track(pid);
    for (const char* expected : { "create the tree", "memory and state", "page reads", "total" })
        EXPECT_NE(restored.output.find(expected), std::string::npos) << expected << "\n" << restored.output;
    EXPECT_TRUE(file_exists(images + "/stats-restore.img"));
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e
