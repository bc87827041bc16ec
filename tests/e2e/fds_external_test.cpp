// End-to-end tests of `cryo dump --external ID` with `restore --inherit-fd`:
// an open file that lies outside the tree on purpose is not saved, the
// restore refuses to start without it (and leaves nothing behind), and a
// descriptor handed to cryo takes its place in the restored program.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <climits>
#include <string>

#include <gtest/gtest.h>

#include "harness.h"
#include "steps.h"

namespace cryo::e2e {

namespace {

std::string fd_link(pid_t pid, int fd)
{
    char target[PATH_MAX] = {};
    ssize_t length = ::readlink(("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd)).c_str(), target,
                                sizeof(target) - 1);
    return length > 0 ? std::string(target, static_cast<size_t>(length)) : std::string();
}

// A restore without the descriptor the image needs fails before any
// process exists, naming the id.
void expect_restore_needs(Session& session, pid_t pid, const std::string& images, const std::string& id)
{
    auto result = session.cryo({ "restore", "-D", images, "-d" });
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("declared external at dump (--external): give it with --inherit-fd fd[N]:" + id),
              std::string::npos)
        << result.output;
    EXPECT_FALSE(process_exists(pid));
}

} // namespace

// The socket victim's UDP-Lite socket (fd 10), which cryo cannot save, declared
// external; the restore gets a new UDP socket with the datagram the victim
// expects already queued.
TEST(FdsExternal, UdpSocketComesFromInheritFd)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "socket");
    std::string id = fd_link(pid, 10);
    ASSERT_TRUE(id.starts_with("socket:[")) << id;
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, false, { "--external", id }));
    expect_restore_needs(session, pid, images, id);

    int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(udp, 0);
    sockaddr_in address { .sin_family = AF_INET, .sin_port = 0, .sin_addr = { htonl(INADDR_LOOPBACK) }, .sin_zero = {} };
    socklen_t length = sizeof(address);
    ASSERT_EQ(::bind(udp, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    ASSERT_EQ(::getsockname(udp, reinterpret_cast<sockaddr*>(&address), &length), 0);
    ASSERT_EQ(::sendto(udp, "x", 1, 0, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 1);
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images, { "--inherit-fd", "fd[3]:" + id }, udp));
    ::close(udp);
    release_and_expect_pass(session, pid);
}

// The victim's log, a regular file, declared external by its path: the
// restored victim writes its verdict through the descriptor cryo was given.
TEST(FdsExternal, RegularFileComesFromInheritFd)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "counter");
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, false, { "--external", session.log_path() }));
    expect_restore_needs(session, pid, images, session.log_path());

    int log = ::open(session.log_path().c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    ASSERT_GE(log, 0);
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images, { "--inherit-fd", "fd[3]:" + session.log_path() }, log));
    ::close(log);
    release_and_expect_pass(session, pid);
}

TEST(FdsExternal, AnIdNoDescriptorHasIsRefused)
{
    expect_dump_refused("counter", {}, { "--external", "socket:[1]" },
                        { "--external socket:[1]: no descriptor of the tree refers to it" });
}

} // namespace cryo::e2e
