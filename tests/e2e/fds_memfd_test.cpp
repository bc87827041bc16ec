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
#include "steps.h"

namespace cryo::e2e {

namespace {

constexpr const char* kVictim = "fds_memfd";

} // namespace

// The victim checks itself without a checkpoint, so a broken victim is told
// apart from a broken cryo.
TEST(FdsMemfd, Control)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    release_and_expect_pass(session, pid);
}

// Everything comes back; the 2 GiB sparse file and the 1 MiB memfd with
// 12 KiB of data keep the image small.
TEST(FdsMemfd, CheckpointRestore)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    EXPECT_LT(directory_size(images), 10u << 20) << "holes were saved as data";

    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
}

// 65 MiB of data in a deleted file is over the default --ghost-limit.
TEST(FdsMemfd, GhostOverTheLimitIsRefused)
{
    expect_dump_refused(kVictim, { "big" }, {}, { "(deleted file)", "/victim.log.big holds more than 67108864 bytes" });
}

TEST(FdsMemfd, MemfdOverTheLimitIsRefused)
{
    expect_dump_refused(kVictim, { "bigmemfd" }, {}, { "(memfd)", "memfd cryo-big holds more than 67108864 bytes" });
}

// Four deleted files of 50 MiB each: each is under the limit, together they
// would make files.img too big to read back, so the dump refuses them.
TEST(FdsMemfd, ImageDataBudgetIsRespected)
{
    expect_dump_refused(kVictim, { "budget" }, {}, { "(deleted file)", "would pass its limit of 192.0 MiB of file data" });
}

// A deleted name of a file that still has another one: restoring a copy
// would split it, so it is refused.
TEST(FdsMemfd, DeletedFileWithAnotherLinkIsRefused)
{
    expect_dump_refused(kVictim, { "hardlink" }, {}, { "(deleted file)", "victim.log.hardlink was deleted but its inode still has 1 other link(s)" });
}

} // namespace cryo::e2e
