// End-to-end tests of IPv4 and IPv6 sockets (victim inet): new, bound and
// listening TCP sockets, established connections with data queued both
// ways (--tcp-established), UDP sockets with queued datagrams, options;
// a connection whose peer is this test, which must see neither a reset
// nor lost or repeated data; and the refusals.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "harness.h"
#include "steps.h"

namespace cryo::e2e {

namespace {

constexpr const char* kVictim = "inet";

void checkpoint_restore(const std::string& family)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim, { family });
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, false, { "--tcp-established" }));
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images, { "--tcp-established" }));
    release_and_expect_pass(session, pid);
}

// A TCP listener of this test on 127.0.0.1 (an ephemeral port).
int listen_loopback(int& port)
{
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), length) < 0 || ::listen(fd, 4) < 0
        || ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) < 0)
        return -1;
    port = ntohs(address.sin_port);
    return fd;
}

// Reads from `fd` until `size` bytes came, the peer closed, or 10 s passed
// without data; an error (a reset) is returned as "ERROR errno".
std::string read_up_to(int fd, size_t size)
{
    std::string data;
    while (data.size() < size) {
        pollfd poll_fd { fd, POLLIN, 0 };
        if (::poll(&poll_fd, 1, 10000) != 1)
            break;
        char buffer[256];
        ssize_t got = ::recv(fd, buffer, std::min(sizeof(buffer), size - data.size()), MSG_DONTWAIT);
        if (got < 0)
            return data + " ERROR " + std::to_string(errno);
        if (got == 0)
            break;
        data.append(buffer, static_cast<size_t>(got));
    }
    return data;
}

// The kernel's TCP state of `fd` (TCP_ESTABLISHED, TCP_CLOSE_WAIT once a
// FIN came, TCP_CLOSE after a reset).
int tcp_state(int fd)
{
    tcp_info info {};
    socklen_t length = sizeof(info);
    return ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) == 0 ? info.tcpi_state : -1;
}

} // namespace

// The victim checks itself without a checkpoint, so a broken victim is told
// apart from a broken cryo.
TEST(FdsInet, Control)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim, { "4" });
    release_and_expect_pass(session, pid);
}

TEST(FdsInet, CheckpointRestoreIPv4) { checkpoint_restore("4"); }
TEST(FdsInet, CheckpointRestoreIPv6) { checkpoint_restore("6"); }
TEST(FdsInet, CheckpointRestoreDualStack) { checkpoint_restore("dual"); }

// With --leave-running the connections leave repair mode before the tree
// runs on: the victim's sockets work as if nothing happened.
TEST(FdsInet, LeaveRunning)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim, { "4" });
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, true, { "--tcp-established" }));
    release_and_expect_pass(session, pid);
}

// A checkpoint taken with --leave-running, restored after the original
// closed its connections: the ports are then held by TIME_WAIT, which a
// socket in repair mode binds and connects over.
TEST(FdsInet, RestoreOverTimeWait)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim, { "4", "established" });
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, true, { "--tcp-established" }));
    release_and_expect_pass(session, pid);
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images, { "--tcp-established" }));
    release_and_expect_pass(session, pid);
    std::string log = session.log();
    EXPECT_NE(log.find("PASS", log.find("PASS") + 4), std::string::npos) << "the restored victim did not pass:\n" << log;
    EXPECT_EQ(log.find("FAIL"), std::string::npos) << log;
}

TEST(FdsInet, CheckpointTwice)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim, { "6" });
    for (int round = 1; round <= 2; ++round) {
        std::string images = session.dir().file("images" + std::to_string(round));
        ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, false, { "--tcp-established" }));
        ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images, { "--tcp-established" }));
    }
    release_and_expect_pass(session, pid);
}

// The peer of the victim's connection is this test: it sent "before"
// (unread by the victim) and has "hello" unread from it. Across the
// checkpoint it must see no reset, and exactly "hello" then "after".
TEST(FdsInet, PeerOutsideTheTreeKeepsItsConnection)
{
    Session session;
    int port = 0;
    int listener = listen_loopback(port);
    ASSERT_GE(listener, 0);
    pid_t pid = start_and_wait_ready(session, kVictim, { "4", "client", std::to_string(port) });
    int connection = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ::close(listener);
    ASSERT_GE(connection, 0);
    ASSERT_EQ(::send(connection, "before", 6, MSG_NOSIGNAL), 6);

    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, false, { "--tcp-established" }));
    // The victim is gone, silently: no FIN, no reset, nothing more.
    EXPECT_EQ(tcp_state(connection), TCP_ESTABLISHED);
    char peeked[16];
    EXPECT_EQ(::recv(connection, peeked, sizeof(peeked), MSG_PEEK | MSG_DONTWAIT), 5) << "errno " << errno;
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images, { "--tcp-established" }));

    EXPECT_EQ(tcp_state(connection), TCP_ESTABLISHED);
    ASSERT_TRUE(send_signal(pid, SIGUSR1));
    EXPECT_EQ(read_up_to(connection, 10), "helloafter") << session.diagnostics();
    EXPECT_EQ(::send(connection, "bye", 3, MSG_NOSIGNAL), 3);
    auto status = session.wait_for_exit(pid);
    ASSERT_TRUE(status.has_value()) << session.diagnostics();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "status " << *status << "\n" << session.diagnostics();
    EXPECT_NE(session.log().find("PASS"), std::string::npos) << session.diagnostics();
    // The victim exited: its end closed in order, with nothing more sent.
    EXPECT_EQ(read_up_to(connection, 1), "");
    ::close(connection);
}

// A checkpoint with connections needs --tcp-established on restore too;
// the refusal leaves nothing behind and the same images restore with it.
TEST(FdsInet, RestoreNeedsTcpEstablished)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim, { "4", "established" });
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, false, { "--tcp-established" }));
    auto result = session.cryo({ "show", images });
    EXPECT_EQ(result.exit_code, 0) << result.output;
    EXPECT_NE(result.output.find("TCP IPv4 127.0.0.1:"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("established, 3 bytes received, 0 to send"), std::string::npos) << result.output;
    result = session.cryo({ "restore", "-D", images, "-d" });
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("(IP socket): established TCP connection 127.0.0.1:"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("restore with --tcp-established"), std::string::npos) << result.output;
    EXPECT_TRUE(session.wait_until_gone(session.image_pids(images), std::chrono::seconds(5)));
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images, { "--tcp-established" }));
    release_and_expect_pass(session, pid);
}

// decode -> encode gives the same files.img back, and the copy restores; a
// hostile value edited into it is refused before any process exists.
TEST(FdsInet, DecodeEncodeAndAHostileFamily)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, kVictim, { "6", "established" });
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, false, { "--tcp-established" }));
    std::string json = session.dir().file("images.json");
    auto decoded = session.cryo({ "decode", "-D", images, "-o", json });
    ASSERT_EQ(decoded.exit_code, 0) << decoded.output;
    std::string copy = session.dir().file("copy");
    std::filesystem::copy(images, copy, std::filesystem::copy_options::recursive);
    auto encoded = session.cryo({ "encode", "-i", json, "-D", copy });
    ASSERT_EQ(encoded.exit_code, 0) << encoded.output;
    EXPECT_EQ(read_file(images + "/files.img"), read_file(copy + "/files.img"));

    std::string text = read_file(json);
    auto at = text.find("\"family\": 10,");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, 13, "\"family\": 99,");
    std::ofstream(json, std::ios::trunc) << text;
    std::string hostile = session.dir().file("hostile");
    std::filesystem::copy(images, hostile, std::filesystem::copy_options::recursive);
    ASSERT_EQ(session.cryo({ "encode", "-i", json, "-D", hostile }).exit_code, 0);
    auto refused = session.cryo({ "restore", "-D", hostile, "-d", "--tcp-established" });
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_NE(refused.output.find("(IP socket): IP socket of address family 99"), std::string::npos)
        << refused.output;
    EXPECT_TRUE(session.wait_until_gone({ pid }, std::chrono::seconds(1)));

    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, copy, { "--tcp-established" }));
    release_and_expect_pass(session, pid);
}

TEST(FdsInet, EstablishedConnectionNeedsTheOption)
{
    expect_dump_refused(kVictim, { "4", "established" }, {},
                        { "fd 10 (IP socket): established TCP connection 127.0.0.1:", "-> 127.0.0.1:",
                          "dump with --tcp-established" });
}

TEST(FdsInet, HalfClosedConnectionIsRefused)
{
    expect_dump_refused(kVictim, { "4", "half-closed" }, { "--tcp-established" },
                        { "fd 10 (IP socket): not supported yet: TCP socket 127.0.0.1:",
                          "was shut down for writing" });
}

TEST(FdsInet, CorkedUdpSocketIsRefused)
{
    expect_dump_refused(kVictim, { "4", "udp-cork" }, {},
                        { "fd 10 (IP socket): not supported: UDP socket 127.0.0.1:", "has UDP_CORK set" });
}

TEST(FdsInet, ListenerWithConnectionsNotAcceptedIsRefused)
{
    expect_dump_refused(kVictim, { "6", "pending" }, { "--tcp-established" },
                        { "fd 10 (IP socket): listening TCP socket on [::1]:",
                          "has 1 connection(s) the program has not accepted yet" });
}

} // namespace cryo::e2e
