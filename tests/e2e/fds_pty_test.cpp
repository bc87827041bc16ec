// End-to-end tests of pseudo-terminal pairs inside the tree (victim
// fds_pty): the same /dev/pts index, termios, window size, packet and
// exclusive modes, two slave open files, data both ways after the restore,
// and a session whose controlling terminal is the slave with its foreground
// group; bytes left unread both ways (victim "queued"), after a restore and
// in a tree left running. A slave of a terminal outside the tree is reopened by path, as
// before. The refusals: the index is taken when restoring (nothing may be
// left running), and a master whose slave is the controlling terminal of a
// session outside the dumped tree.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"
#include "steps.h"

namespace cryo::e2e {

namespace {

constexpr const char* kVictim = "fds_pty";

// The kernel hands out the lowest free /dev/pts index, so a pty opened by
// one test between another's dump and restore could take the index that
// restore needs. The tests of this file (each a process of its own under
// ctest -j) take turns: an exclusive flock on the victim's executable,
// which leaves no file behind.
class PtyTurn {
public:
    PtyTurn() : m_fd(::open(CRYO_VICTIM_DIR "/victim_fds_pty", O_RDONLY | O_CLOEXEC))
    {
        if (m_fd >= 0)
            while (::flock(m_fd, LOCK_EX) < 0 && errno == EINTR) { }
    }
    ~PtyTurn()
    {
        if (m_fd >= 0)
            ::close(m_fd);
    }
    PtyTurn(const PtyTurn&) = delete;
    PtyTurn& operator=(const PtyTurn&) = delete;

private:
    int m_fd;
};

// The number after `word ` on the victim's log line starting with it.
pid_t logged_pid(const Session& session, const std::string& word)
{
    std::string log = session.log();
    auto at = log.find(word + " ");
    if (at == std::string::npos)
        return -1;
    return static_cast<pid_t>(std::stol(log.substr(at + word.size() + 1)));
}

std::vector<pid_t> tree_of(pid_t root)
{
    std::vector<pid_t> tree { root };
    for (size_t i = 0; i < tree.size(); ++i)
        for (pid_t child : children_of(tree[i]))
            tree.push_back(child);
    std::ranges::sort(tree);
    return tree;
}

} // namespace

// The victim checks itself without a checkpoint, so a broken victim is told
// apart from a broken cryo.
TEST(FdsPty, Control)
{
    PtyTurn turn;
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    release_and_expect_pass(session, pid);
}

namespace {

// Dumps and restores the victim run with `arguments`, which checks itself;
// the dump reports no bytes lost.
void checkpoint_restore(const std::vector<std::string>& arguments)
{
    PtyTurn turn;
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim, arguments);
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    EXPECT_EQ(read_file(images + "-dump.log").find("are not kept"), std::string::npos) << read_file(images + "-dump.log");
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
}

} // namespace

TEST(FdsPty, CheckpointRestore)
{
    checkpoint_restore({});
}

// Bytes left unread in a pair, both ways, come back in the same shape: a
// whole line and a partial one in the slave's canonical input queue, echo
// and output waiting for the master.
TEST(FdsPty, QueuedBytesAreKept)
{
    checkpoint_restore({ "queued" });
}

// Reading the queued bytes consumes them: a tree left running gets them
// back as they were.
TEST(FdsPty, QueuedBytesStayWithLeaveRunning)
{
    PtyTurn turn;
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim, { "queued" });
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, true));
    release_and_expect_pass(session, pid);
}

// A restored pair is an ordinary pair: it can be checkpointed again.
TEST(FdsPty, CheckpointRestoreTwice)
{
    PtyTurn turn;
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    std::string first = session.dir().file("first");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, first));
    std::string second = session.dir().file("second");
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, second));
    release_and_expect_pass(session, pid);
}

// The victim holds the slave of a pty whose master the test holds (like the
// terminal a program was started on): it stays a device reopened by path,
// connected to the same outside master.
TEST(FdsPty, SlaveOfAnOutsideTerminalIsReopenedByPath)
{
    PtyTurn turn;
    int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    ASSERT_GE(master, 0);
    struct termios raw {};
    ASSERT_EQ(::grantpt(master), 0);
    ASSERT_EQ(::unlockpt(master), 0);
    ASSERT_EQ(::tcgetattr(master, &raw), 0);
    ::cfmakeraw(&raw);
    ASSERT_EQ(::tcsetattr(master, TCSANOW, &raw), 0);
    std::string slave = ::ptsname(master);
    {
        Session session;
        pid_t pid = start_and_wait_ready(session, kVictim, { "outer", slave });
        std::string images = session.dir().file("images");
        ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
        auto shown = session.cryo({ "show", images });
        EXPECT_NE(shown.output.find("device " + slave + " ("), std::string::npos) << shown.output;
        ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
        ASSERT_EQ(::write(master, "ping", 4), 4);
        release_and_expect_pass(session, pid);
        char answer[8] = "";
        pollfd ready { .fd = master, .events = POLLIN, .revents = 0 };
        EXPECT_EQ(::poll(&ready, 1, 5000), 1);
        EXPECT_EQ(::read(master, answer, sizeof(answer) - 1), 4);
        EXPECT_STREQ(answer, "pong");
    }
    ::close(master);
}

// The original still runs (dumped with --leave-running) and holds its
// /dev/pts index: the restore is refused before any process is created,
// and the original is untouched.
TEST(FdsPty, IndexInUseIsRefusedAtRestore)
{
    PtyTurn turn;
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, true));
    auto before = children_of_self();
    auto tree_before = tree_of(pid);
    ASSERT_EQ(tree_before.size(), 3u) << session.diagnostics();

    auto result = session.cryo({ "restore", "-D", images, "-d" });
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("is in use: /dev/ptmx handed out /dev/pts/"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("pseudo-terminal /dev/pts/"), std::string::npos) << result.output;
    // No restored process is left, and the original tree is as it was.
    EXPECT_EQ(children_of_self(), before) << session.diagnostics();
    EXPECT_EQ(tree_of(pid), tree_before) << session.diagnostics();
    release_and_expect_pass(session, pid);
}

// A process holds the master of the controlling terminal of its parent's
// session: restoring it alone could not give the session its terminal.
TEST(FdsPty, SessionOutsideTheTreeIsRefused)
{
    PtyTurn turn;
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim, { "outside" });
    pid_t holder = logged_pid(session, "HOLDER");
    ASSERT_GT(holder, 1) << session.diagnostics();
    std::string images = session.dir().file("images");
    auto result = session.cryo({ "dump", "-t", std::to_string(holder), "-D", images });
    EXPECT_EQ(result.exit_code, 1) << result.output;
    for (const std::string& text : std::vector<std::string> { "pid " + std::to_string(holder) + ": fd ", "(pseudo-terminal): not supported yet: pseudo-terminal /dev/pts/",
                              "is the controlling terminal of session ", "whose leader is not in the dumped tree" })
        EXPECT_NE(result.output.find(text), std::string::npos) << "no '" << text << "' in:\n" << result.output;
    EXPECT_FALSE(file_exists(images + "/manifest.img"));
    // The holder runs on untouched and checks its master.
    release_and_expect_pass(session, pid);
}

// A slave whose master was closed has no node in /dev/pts any more
// (zdtm pty04): it comes back hung up, as a slave of a new pair whose
// master is closed again, without taking the index a pair needs.
TEST(FdsPty, SlaveWhoseMasterWasClosedStaysHungUp)
{
    checkpoint_restore({ "orphan" });
}

} // namespace cryo::e2e
