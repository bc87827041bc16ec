// End-to-end tests of memfds and deleted ("ghost") files (victim fds_memfd):
// content with holes, seals, shared and write-only open files, a deleted
// file whose name was taken again, a 2 GiB sparse deleted file that must
// cost little in the image and stay sparse, and the cases a dump refuses
// (too much data, a deleted file with another link), after which the victim
// must run on untouched.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "harness.h"

namespace cryo::e2e {

namespace {

constexpr const char* kVictim = "fds_memfd";

pid_t start_and_wait_ready(Session& session, const std::vector<std::string>& args = {})
{
    pid_t pid = session.start_victim(kVictim, args);
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

uintmax_t directory_size(const std::string& path)
{
    uintmax_t total = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(path))
        if (entry.is_regular_file())
            total += entry.file_size();
    return total;
}

// Starts the victim in `mode`, expects the dump to fail with every one of
// `expected` in its output and no checkpoint written, then expects the
// victim, never restored, to pass.
void expect_dump_refused(const std::string& mode, const std::vector<std::string>& expected)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, { mode });
    std::string images = session.dir().file("images");
    auto result = session.cryo({ "dump", "-t", std::to_string(pid), "-D", images });
    EXPECT_EQ(result.exit_code, 1) << result.output;
    for (const auto& text : expected)
        EXPECT_NE(result.output.find(text), std::string::npos) << "no '" << text << "' in:\n" << result.output;
    EXPECT_FALSE(file_exists(images + "/manifest.img"));
    release_and_expect_pass(session, pid);
}

} // namespace

// The victim checks itself without a checkpoint, so a broken victim is told
// apart from a broken cryo.
TEST(FdsMemfd, Control)
{
    Session session;
    pid_t pid = start_and_wait_ready(session);
    release_and_expect_pass(session, pid);
}

// Everything comes back; the 2 GiB sparse file and the 1 MiB memfd with
// 12 KiB of data keep the image small.
TEST(FdsMemfd, CheckpointRestore)
{
    Session session;
    pid_t pid = start_and_wait_ready(session);
    std::string images = session.dir().file("images");
    auto dumped = session.cryo({ "dump", "-t", std::to_string(pid), "-D", images, "-v", "-o", images + "-dump.log" });
    ASSERT_EQ(dumped.exit_code, 0) << dumped.output << session.diagnostics();
    ASSERT_TRUE(session.wait_until_gone(session.image_pids(images))) << "the checkpointed victim is still alive";
    EXPECT_LT(directory_size(images), 10u << 20) << "holes were saved as data";

    std::string pidfile = images + ".pid";
    auto restored = session.cryo({ "restore", "-D", images, "-d", "--pidfile", pidfile, "-v", "-o", images + "-restore.log" });
    ASSERT_EQ(restored.exit_code, 0) << restored.output << session.diagnostics();
    for (pid_t restored_pid : session.image_pids(images))
        session.track(restored_pid);
    EXPECT_EQ(std::stoi(read_file(pidfile)), pid);
    release_and_expect_pass(session, pid);
}

// 65 MiB of data in a deleted file is over the default --ghost-limit.
TEST(FdsMemfd, GhostOverTheLimitIsRefused)
{
    expect_dump_refused("big", { "(deleted file)", "/victim.log.big holds more than 67108864 bytes" });
}

TEST(FdsMemfd, MemfdOverTheLimitIsRefused)
{
    expect_dump_refused("bigmemfd", { "(memfd)", "memfd cryo-big holds more than 67108864 bytes" });
}

// Four deleted files of 50 MiB each: each is under the limit, together they
// would make files.img too big to read back, so the dump refuses them.
TEST(FdsMemfd, ImageDataBudgetIsRespected)
{
    expect_dump_refused("budget", { "(deleted file)", "would pass its limit of 192.0 MiB of file data" });
}

// A deleted name of a file that still has another one: restoring a copy
// would split it, so it is refused.
TEST(FdsMemfd, DeletedFileWithAnotherLinkIsRefused)
{
    expect_dump_refused("hardlink", { "(deleted file)", "victim.log.hardlink was deleted but its inode still has 1 other link(s)" });
}

} // namespace cryo::e2e
