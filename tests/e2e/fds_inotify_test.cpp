// End-to-end tests of inotify (victim fds_inotify) and fanotify (victim
// fds_fanotify): watches with their wds and masks, a one-shot watch, a
// high wd, one inode watched by two instances, a pending event that comes
// back as IN_Q_OVERFLOW, flags; fanotify inode, mount and filesystem marks
// with ignore masks and evictable marks; an inotify watch on a deleted file
// that is still open. And the refusals: a watch on a deleted file only
// mapped (inotify) or a mark on any deleted file (fanotify) stops the dump
// (the victim runs on), a watched file gone before the restore stops the
// restore, naming the wd and the path.
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "harness.h"
#include "steps.h"

namespace cryo::e2e {

namespace {

constexpr const char* kInotify = "fds_inotify";
constexpr const char* kFanotify = "fds_fanotify";

// The inotify victim with `args`, dumped and restored twice (the second
// time as a restored instance), then released.
void checkpoint_twice_and_expect_pass(const std::vector<std::string>& args)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kInotify, args);
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, images));
    std::string again = session.dir().file("images2");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, again));
    release_and_expect_pass(session, pid);
}

} // namespace

// The victims check themselves without a checkpoint, so a broken victim is
// told apart from a broken cryo.
TEST(FdsInotify, Control)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kInotify);
    release_and_expect_pass(session, pid);
    EXPECT_NE(session.log().find("B: pending event kept"), std::string::npos) << session.log();
}

TEST(FdsInotify, CheckpointRestore)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kInotify);
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    EXPECT_NE(read_file(images + "-dump.log").find("32 bytes of inotify events not read yet are lost"), std::string::npos)
        << read_file(images + "-dump.log");

    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
    EXPECT_NE(session.log().find("B: pending event lost, IN_Q_OVERFLOW"), std::string::npos) << session.log();
}

// A restored instance is checkpointed and restored again.
TEST(FdsInotify, CheckpointRestoreTwice)
{
    checkpoint_twice_and_expect_pass({});
}

// The watched directory is replaced by a new one of the same name between
// dump and restore (as after a reboot, or a copy to another machine): its
// file handle no longer opens, so the watch is put on the path.
TEST(FdsInotify, WatchedDirectoryReplacedIsFoundByPath)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kInotify, { "replaced" });
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    std::string watched = session.log_path() + ".inotify/watched";
    std::filesystem::remove_all(watched);
    std::filesystem::create_directory(watched);

    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
}

TEST(FdsInotify, ControlWithDeletedFiles)
{
    for (const char* mode : { "deleted", "deleted_mapped" }) {
        Session session;
        pid_t pid = start_and_wait_ready(session, kInotify, { mode });
        release_and_expect_pass(session, pid);
    }
}

// A watch on a file that was deleted but is still open (as a log file
// rotated away): the watch comes back with its wd and mask on the deleted
// file made again, and reports the program's writes and last close.
TEST(FdsInotify, WatchOnDeletedOpenFileComesBack)
{
    checkpoint_twice_and_expect_pass({ "deleted" });
}

// A watch on a deleted file that only a mapping holds cannot be put back:
// the dump names it and the victim runs on (and still gets its events).
TEST(FdsInotify, WatchOnDeletedMappedFileIsRefused)
{
    expect_dump_refused(kInotify, { "deleted_mapped" }, {},
                        { "inotify watch wd 46: the watched regular file '{log}.inotify/deleted'", "was deleted",
                          "no open file of the dumped tree holds it" });
}

// A watched file that is gone when the restore comes: the restore fails
// before any process exists, naming the wd and the path.
TEST(FdsInotify, WatchedFileGoneAtRestoreIsRefused)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kInotify);
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    std::string high = session.log_path() + ".inotify/high";
    ASSERT_TRUE(std::filesystem::remove(high));

    auto result = session.cryo({ "restore", "-D", images, "-d", "--pidfile", images + ".pid" });
    EXPECT_NE(result.exit_code, 0) << result.output;
    EXPECT_NE(result.output.find("(inotify): watch wd 45: the watched object, '" + high + "'"), std::string::npos)
        << result.output;
    EXPECT_NE(result.output.find("is gone"), std::string::npos) << result.output;
    EXPECT_FALSE(process_exists(pid)) << session.diagnostics();
}

TEST(FdsFanotify, Control)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kFanotify);
    release_and_expect_pass(session, pid);
}

TEST(FdsFanotify, CheckpointRestore)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kFanotify);
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, images));
    release_and_expect_pass(session, pid);
}

TEST(FdsFanotify, MarkOnDeletedFileIsRefused)
{
    expect_dump_refused(kFanotify, { "deleted" }, {},
                        { "(fanotify): inode mark: the watched regular file '{log}.fanotify/deleted'", "was deleted" });
}

} // namespace cryo::e2e
