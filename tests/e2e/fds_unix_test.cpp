// End-to-end tests of named unix sockets (victims unix_named, unix_peers):
// bound, listening and accepted sockets, pending connections, datagrams
// with their senders, and sockets whose peer is outside the tree: refused,
// or declared with --external and connected again (or given back with
// --inherit-fd) on restore.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "harness.h"
#include "steps.h"

namespace cryo::e2e {

namespace {

constexpr const char* kVictim = "unix_named";

socklen_t address_of(const std::string& path, sockaddr_un& address)
{
    address = {};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof(address.sun_path) - 1);
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
}

int listen_at(const std::string& path)
{
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address;
    socklen_t length = address_of(path, address);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), length) < 0 || ::listen(fd, 8) < 0)
        return -1;
    return fd;
}

int connect_to(const std::string& path)
{
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address;
    socklen_t length = address_of(path, address);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), length) < 0)
        return -1;
    return fd;
}

bool readable(int fd, int milliseconds)
{
    pollfd poll_fd { fd, POLLIN, 0 };
    return ::poll(&poll_fd, 1, milliseconds) == 1;
}

// The victim's "after" arrives on `fd`: answer "welcome".
bool answer(int fd)
{
    char buffer[64] = {};
    if (!readable(fd, 20000))
        return false;
    ssize_t got = ::recv(fd, buffer, sizeof(buffer) - 1, MSG_DONTWAIT);
    if (got != 5 || std::string(buffer, 5) != "after")
        return false;
    return ::send(fd, "welcome", 7, MSG_NOSIGNAL) == 7;
}

// Accepts connections on `listener` until one says "after" (connections
// of a dumped and killed victim just end), and answers it.
bool serve(int listener)
{
    for (int attempt = 0; attempt < 4; ++attempt) {
        if (!readable(listener, 20000))
            return false;
        int connection = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (connection < 0)
            return false;
        bool answered = answer(connection);
        ::close(connection);
        if (answered)
            return true;
    }
    return false;
}

void release_serve_and_expect_pass(Session& session, pid_t pid, int fd, bool listener)
{
    ASSERT_TRUE(send_signal(pid, SIGUSR1));
    EXPECT_TRUE(listener ? serve(fd) : answer(fd)) << session.diagnostics();
    auto status = session.wait_for_exit(pid);
    ASSERT_TRUE(status.has_value()) << session.diagnostics();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "status " << *status << "\n" << session.diagnostics();
    EXPECT_NE(session.log().find("PASS"), std::string::npos) << session.diagnostics();
}

// "socket:[INODE]" of the victim's fd 10.
std::string socket_id(pid_t pid)
{
    char link[128] = {};
    std::string path = "/proc/" + std::to_string(pid) + "/fd/10";
    ssize_t length = ::readlink(path.c_str(), link, sizeof(link) - 1);
    return length > 0 ? std::string(link, static_cast<size_t>(length)) : std::string();
}

} // namespace

// The victim checks itself without a checkpoint, so a broken victim is told
// apart from a broken cryo.
TEST(FdsUnix, Control)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    release_and_expect_pass(session, pid);
}

// The dumped victim's socket files stay behind: the restore replaces them.
TEST(FdsUnix, CheckpointRestore)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    ASSERT_TRUE(file_exists(session.dir().file("listen.sock")));
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
}

TEST(FdsUnix, CheckpointTwice)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    for (int round = 1; round <= 2; ++round) {
        std::string images = session.dir().file("images" + std::to_string(round));
        ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, images));
    }
    release_and_expect_pass(session, pid);
}

// A path a live socket holds at restore time is not taken from it; once it
// is free the same checkpoint restores.
TEST(FdsUnix, RestoreRefusesAPathALiveSocketHolds)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim);
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    std::string path = session.dir().file("listen.sock");
    ASSERT_EQ(::unlink(path.c_str()), 0);
    int holder = listen_at(path);
    ASSERT_GE(holder, 0);
    auto result = session.cryo({ "restore", "-D", images, "-d" });
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find(path + ": a running program's socket is bound to it"), std::string::npos) << result.output;
    EXPECT_TRUE(session.wait_until_gone(session.image_pids(images), std::chrono::seconds(5)));
    ::close(holder);
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
}

// Files in flight are restored (victim unix_scm, a scenario of
// e2e_test.cpp), but not a unix socket in flight: refused rather than
// restored without it.
TEST(FdsUnix, SocketInFlightIsRefused)
{
    expect_dump_refused("unix_scm", { "socket" }, {},
                        { "(unix socket): message 1 of its queue: not supported yet: a unix socket in flight (socket:[",
                          "], sent with SCM_RIGHTS and not received yet)" });
}

TEST(FdsUnix, PeerOutsideTheTreeIsRefused)
{
    Session session;
    std::string path = session.dir().file("outside.sock");
    int listener = listen_at(path);
    ASSERT_GE(listener, 0);
    pid_t pid = start_and_wait_ready(session, "unix_peers", { "client", path });
    std::string id = socket_id(pid);
    ASSERT_FALSE(id.empty());
    std::string images = session.dir().file("images");
    auto result = session.cryo({ "dump", "-t", std::to_string(pid), "-D", images });
    EXPECT_EQ(result.exit_code, 1);
    std::string expected = "pid " + std::to_string(pid) + ": fd 10: unix socket connected to a peer outside the dumped tree ("
        + id + ", peer " + path + "): declare it with --external " + id;
    EXPECT_NE(result.output.find(expected), std::string::npos) << result.output;
    EXPECT_FALSE(file_exists(images + "/manifest.img"));
    release_serve_and_expect_pass(session, pid, listener, true);
    ::close(listener);
}

// --external (or criu's --ext-unix-sk, which declares every such socket):
// the peer had a path, so the restored socket connects to it again (a new
// connection the outside server accepts). The criu options a script
// passes out of habit are accepted on both sides.
void expect_external_peer_connected_again(bool declare_all)
{
    Session session;
    std::string path = session.dir().file("outside.sock");
    int listener = listen_at(path);
    ASSERT_GE(listener, 0);
    pid_t pid = start_and_wait_ready(session, "unix_peers", { "client", path });
    std::string id = socket_id(pid);
    std::string images = session.dir().file("images");
    std::vector<std::string> dump_args { "dump", "-t", std::to_string(pid), "-D", images };
    std::vector<std::string> declare = declare_all
        ? std::vector<std::string> { "--ext-unix-sk", "--file-locks", "--link-remap", "--manage-cgroups", "--timeout", "10" }
        : std::vector<std::string> { "--external", id };
    dump_args.insert(dump_args.end(), declare.begin(), declare.end());
    auto result = session.cryo(dump_args);
    ASSERT_EQ(result.exit_code, 0) << result.output;
    ASSERT_TRUE(session.wait_until_gone({ pid }));
    std::vector<std::string> criu_habits { "--ext-unix-sk", "--file-locks", "--restore-sibling", "--manage-cgroups=soft" };
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images, declare_all ? criu_habits : std::vector<std::string> {}));
    release_serve_and_expect_pass(session, pid, listener, true);
    ::close(listener);
}

TEST(FdsUnix, ExternalPeerWithAPathIsConnectedAgain)
{
    expect_external_peer_connected_again(false);
}

TEST(FdsUnix, ExtUnixSkDeclaresEveryPeerOutsideExternal)
{
    expect_external_peer_connected_again(true);
}

// --external with an unnamed peer (the victim accepted a connection from
// us): the restore needs --inherit-fd, and says so; with it the victim
// talks to the socket cryo was given.
TEST(FdsUnix, ExternalPeerWithoutANameNeedsInheritFd)
{
    Session session;
    std::string path = session.dir().file("victim.sock");
    pid_t pid = session.start_victim("unix_peers", { "server", path });
    int client = -1;
    for (int attempt = 0; attempt < 200 && client < 0; ++attempt) {
        client = connect_to(path);
        if (client < 0)
            ::usleep(50000);
    }
    ASSERT_GE(client, 0);
    ASSERT_TRUE(session.wait_for_log("READY")) << session.diagnostics();
    std::string id = socket_id(pid);
    std::string images = session.dir().file("images");
    auto result = session.cryo({ "dump", "-t", std::to_string(pid), "-D", images, "--external", id });
    ASSERT_EQ(result.exit_code, 0) << result.output;
    ASSERT_TRUE(session.wait_until_gone({ pid }));
    ::close(client);

    result = session.cryo({ "restore", "-D", images, "-d" });
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("--inherit-fd fd[N]:" + id), std::string::npos) << result.output;
    EXPECT_TRUE(session.wait_until_gone({ pid }, std::chrono::seconds(5)));

    int ends[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends), 0);
    std::string output = session.dir().file("restore.out");
    pid_t cryo = ::fork();
    if (cryo == 0) {
        ::dup2(ends[1], 3);
        int out = ::open(output.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        ::dup2(out, 1);
        ::dup2(out, 2);
        for (int fd = 4; fd < 1024; ++fd)
            ::close(fd);
        std::string inherit = "fd[3]:" + id;
        ::execl(CRYO_BINARY, CRYO_BINARY, "restore", "-D", images.c_str(), "-d", "--inherit-fd", inherit.c_str(), nullptr);
        ::_exit(127);
    }
    ::close(ends[1]);
    auto status = session.wait_for_exit(cryo);
    ASSERT_TRUE(status.has_value() && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << read_file(output);
    session.track(pid);
    release_serve_and_expect_pass(session, pid, ends[0], false);
    ::close(ends[0]);
}

// A connection to the victim's listener from outside, not accepted yet.
TEST(FdsUnix, PendingConnectionFromOutsideIsRefused)
{
    Session session;
    std::string path = session.dir().file("victim.sock");
    pid_t pid = start_and_wait_ready(session, "unix_peers", { "listen", path });
    int client = connect_to(path);
    ASSERT_GE(client, 0);
    std::string images = session.dir().file("images");
    auto result = session.cryo({ "dump", "-t", std::to_string(pid), "-D", images });
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("pid " + std::to_string(pid) + ": fd 10: listening unix socket " + path
                                 + " has a pending connection from socket:["),
              std::string::npos)
        << result.output;
    EXPECT_NE(result.output.find("outside the dumped tree"), std::string::npos) << result.output;
    EXPECT_FALSE(file_exists(images + "/manifest.img"));
    release_and_expect_pass(session, pid);
    ::close(client);
}

// The data of a connection not accepted yet cannot be read without
// accepting it: refused, and the victim still gets it.
TEST(FdsUnix, PendingConnectionWithDataIsRefused)
{
    expect_dump_refused("unix_peers", { "pending-data" }, {},
                        { "has a pending connection (from socket:[", "with data the program has not accepted yet" });
}

// Sockets bound to names relative to the working directory (victim
// unix_relative): bound again from the same directory, so the program
// gets the same relative names back.
TEST(FdsUnix, RelativeNames)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "unix_relative");
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
}

// The socket file of a relative name was renamed away: where the name was
// bound is unknown, and the dump says so.
TEST(FdsUnix, RelativeNameWithoutItsFileIsRefused)
{
    expect_dump_refused("unix_relative", { "moved" }, {},
                        { "unix socket bound to the relative path 'listen.sock': its socket file (inode ",
                          "is neither in the working directory nor in the root of the process" });
}

} // namespace cryo::e2e
