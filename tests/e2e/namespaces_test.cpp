// UTS and IPC namespaces (ns/namespaces.h): the victim builds a tree of
// processes in new UTS and IPC namespaces, with System V objects, and
// checks after restore that each process shares with the others what it
// shared before and that every object came back with its id and content;
// System V shared memory attachments; a deleted working directory.
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "harness.h"
#include "steps.h"

namespace cryo::e2e {

TEST(Namespaces, UtsAndIpcControl)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "ipc_ns");
    release_and_expect_pass(session, pid);
}

TEST(Namespaces, UtsAndIpcComeBackWithTheirContent)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "ipc_ns");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, session.dir().file("images")));
    release_and_expect_pass(session, pid);
}

// A restored tree is dumped again from its new namespaces.
TEST(Namespaces, UtsAndIpcTwice)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "ipc_ns");
    for (int round = 1; round <= 2; ++round)
        ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, session.dir().file("images" + std::to_string(round))));
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e

namespace cryo::e2e {

class SysvSharedMemory : public testing::TestWithParam<std::vector<std::string>> { };

TEST_P(SysvSharedMemory, Control)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "shm", GetParam());
    release_and_expect_pass(session, pid);
}

// Attachments come back at their addresses, with their protections and
// holes, the segments with their ids, removed marks and attach counts.
TEST_P(SysvSharedMemory, AttachmentsComeBack)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "shm", GetParam());
    for (int round = 1; round <= 2; ++round)
        ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, session.dir().file("images" + std::to_string(round))));
    release_and_expect_pass(session, pid);
}

INSTANTIATE_TEST_SUITE_P(Namespaces, SysvSharedMemory,
                         testing::Values(std::vector<std::string> {}, std::vector<std::string> { "ns" },
                                         std::vector<std::string> { "keep" }),
                         [](const auto& info) { return info.param.empty() ? std::string("host") : info.param[0]; });

} // namespace cryo::e2e

namespace cryo::e2e {

TEST(DeletedWorkingDirectory, Control)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "cwd_deleted");
    release_and_expect_pass(session, pid);
}

TEST(DeletedWorkingDirectory, ComesBackRemovedAndShared)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "cwd_deleted");
    for (int round = 1; round <= 2; ++round)
        ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, session.dir().file("images" + std::to_string(round))));
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e

namespace cryo::e2e {

// Killing the dumped process applies its SEM_UNDO entries to the
// semaphores of cryo's IPC namespace: the dump says which set changed, and
// the restored process finds it changed (documented).
TEST(SemaphoreUndo, InCryosNamespaceTheDumpSaysTheKillChangedIt)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "ipc_sem_undo");
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    std::ifstream log(images + "-dump.log");
    std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("its values changed from 0 to 1 when the dumped tree was killed"), std::string::npos) << text;
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
}

// In an IPC namespace of the tree the values were saved before the kill.
TEST(SemaphoreUndo, InItsOwnNamespaceTheValueStays)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "ipc_sem_undo", { "ns" });
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, session.dir().file("images")));
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e
