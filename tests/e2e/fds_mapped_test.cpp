// End-to-end tests of memory mappings of memfds, deleted files and
// memfd_secret memory (victim fds_mapped): shared and private mappings, with
// and without an open fd, shared by a parent and its child, double mappings;
// a big memfd that only a mapping holds; memfd_secret descriptors kept open
// (victim fds_secret); and what a dump refuses, after which the victim must
// run on untouched.
#include <sys/types.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "harness.h"
#include "steps.h"

namespace cryo::e2e {

namespace {

constexpr const char* kVictim = "fds_mapped";
constexpr const char* kSecretVictim = "fds_secret";

// The victim said SKIP (no memfd_secret): let it pass and tell the test.
bool skipped(Session& session, pid_t pid)
{
    if (session.log().find("SKIP") == std::string::npos)
        return false;
    release_and_expect_pass(session, pid);
    return true;
}

} // namespace

// The victim checks itself without a checkpoint, so a broken victim is told
// apart from a broken cryo.
TEST(FdsMapped, Control)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    release_and_expect_pass(session, pid);
}

TEST(FdsMapped, CheckpointRestore)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, images));
    release_and_expect_pass(session, pid);
}

// A restored tree can be checkpointed again: the files made again are
// memfds and deleted files like the originals.
TEST(FdsMapped, CheckpointTwice)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    std::string first = session.dir().file("first");
    std::string second = session.dir().file("second");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, first));
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, second));
    release_and_expect_pass(session, pid);
}

// 100 MiB in a memfd that only a mapping holds: more than an open memfd may
// keep in files.img, so it travels in the page file, and files.img stays
// small.
TEST(FdsMapped, BigMappedMemfdGoesToThePageFile)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim, { "big" });
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    EXPECT_LT(std::filesystem::file_size(images + "/files.img"), 1u << 20);
    EXPECT_GT(directory_size(images), 100u << 20) << "the big memfd's data is not in the image";
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
}

TEST(FdsMapped, DeletedFileWithAnotherLinkIsRefused)
{
    expect_dump_refused(kVictim, { "hardlink" }, {},
                        { "{log}.hardlink was deleted but its inode still has 1 other link(s)", "mapping 0x" });
}

TEST(FdsMapped, DeletedFileOverTheLimitIsRefused)
{
    expect_dump_refused(kVictim, { "bigdeleted" }, {},
                        { "deleted file {log}.bigdeleted holds more than 67108864 bytes", "--ghost-limit" });
}

TEST(FdsMapped, FutureWriteSealedWritableMappingIsRefused)
{
    expect_dump_refused(kVictim, { "futurewrite" }, {},
                        { "/memfd:cryo-future) is shared and writable, but memfd cryo-future is sealed with "
                          "F_SEAL_FUTURE_WRITE" });
}

// A System V segment marked removed while attached (more in
// namespaces_test.cpp).
TEST(FdsMapped, SystemVSharedMemoryComesBack)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim, { "sysv" });
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, session.dir().file("images")));
    release_and_expect_pass(session, pid);
}

// memfd_secret memory, shared by a parent and its child, mapped twice, with
// a page only the child had present: read by the processes themselves
// through injected calls, made again with memfd_secret().
TEST(FdsMapped, SecretMemory)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim, { "secret" });
    if (session.log().find("SKIP") != std::string::npos) {
        release_and_expect_pass(session, pid);
        GTEST_SKIP() << "no memfd_secret on this kernel";
    }
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, images));
    release_and_expect_pass(session, pid);
}

// memfd_secret descriptors kept open (victim fds_secret), shared by a parent
// and its child: one mapped by both, one mapped by nobody at the dump, one
// never given a size. cryo reads each file through its own mapping of the
// descriptor; after the restore the descriptor and the mappings are one file
// again, with the same size, content and holes.
TEST(FdsMapped, SecretDescriptorsControl)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kSecretVictim);
    release_and_expect_pass(session, pid);
}

TEST(FdsMapped, SecretDescriptors)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kSecretVictim);
    if (skipped(session, pid))
        GTEST_SKIP() << "no memfd_secret on this kernel";
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, images));
    release_and_expect_pass(session, pid);
}

// The restored files are memfd_secret files again, dumped the same way.
TEST(FdsMapped, SecretDescriptorsTwice)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kSecretVictim);
    if (skipped(session, pid))
        GTEST_SKIP() << "no memfd_secret on this kernel";
    std::string first = session.dir().file("first");
    std::string second = session.dir().file("second");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, first));
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, second));
    release_and_expect_pass(session, pid);
}

// A dump that leaves the tree running leaves the files as they were (the
// victim checks that the pages never touched are still holes).
TEST(FdsMapped, SecretDescriptorsLeaveRunning)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kSecretVictim);
    if (skipped(session, pid))
        GTEST_SKIP() << "no memfd_secret on this kernel";
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, /*leave_running=*/true));
    release_and_expect_pass(session, pid);
}

// More data than an open memfd_secret descriptor may keep in files.img.
TEST(FdsMapped, SecretDescriptorOverTheLimitIsRefused)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kSecretVictim, { "big" });
    if (skipped(session, pid))
        GTEST_SKIP() << "no memfd_secret on this kernel";
    std::string images = session.dir().file("images");
    auto result = session.cryo({ "dump", "-t", std::to_string(pid), "-D", images });
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("holds more than 67108864 bytes of data (size 68157440): over the limit for an open "
                                 "memfd_secret descriptor"),
              std::string::npos)
        << result.output;
    EXPECT_FALSE(std::filesystem::exists(images + "/manifest.img"));
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e
