// Tests for the /proc/PID/fdinfo/FD parser.
//
// The samples were captured on the development machine from one process:
// a regular file opened O_RDWR|O_LARGEFILE, an eventfd, an epoll instance
// watching an eventfd and a pipe (two "tfd:" lines), an inotify instance with
// two watches and a timerfd. Live tests create descriptors and read their
// fdinfo back.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "base/fd.h"
#include "proc/fdinfo.h"

namespace cryo::proc {
namespace {

constexpr std::string_view kRegular = "pos:\t0\nflags:\t0100002\nmnt_id:\t27\nino:\t10952849\n";

constexpr std::string_view kEventfd = R"(pos:	0
flags:	04002
mnt_id:	17
ino:	1038
eventfd-count:                5
eventfd-id: 1
eventfd-semaphore: 0
)";

constexpr std::string_view kEpoll = R"(pos:	0
flags:	02000002
mnt_id:	17
ino:	1038
tfd:        5 events:       19 data:             1234  pos:0 ino:40e sdev:10
tfd:        8 events: 8000001c data:                7  pos:0 ino:5192 sdev:f
)";

constexpr std::string_view kInotify = R"(pos:	0
flags:	00
mnt_id:	17
ino:	1038
inotify wd:2 ino:13 sdev:fe00000 mask:200 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:1300000000000000
inotify wd:1 ino:3c51a sdev:fe00000 mask:100 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:1ac5030000000000
)";

constexpr std::string_view kTimerfd = R"(pos:	0
flags:	02
mnt_id:	17
ino:	1038
clockid: 1
ticks: 0
settime flags: 00
it_value: (99, 999500260)
it_interval: (1, 0)
)";

TEST(ProcFdInfo, RegularFile)
{
    auto info = parse_fdinfo(kRegular);
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->pos, 0u);
    EXPECT_EQ(info->flags, static_cast<uint32_t>(O_RDWR | 0100000)); // O_LARGEFILE on x86-64
    EXPECT_EQ(info->mnt_id, 27);
    EXPECT_EQ(info->inode, 10952849u);
    ASSERT_EQ(info->lines.size(), 4u);
    EXPECT_EQ(info->lines[0], (std::pair<std::string, std::string> { "pos", "0" }));
    EXPECT_EQ(info->lines[3], (std::pair<std::string, std::string> { "ino", "10952849" }));
}

TEST(ProcFdInfo, EventfdKeepsKindLines)
{
    auto info = parse_fdinfo(kEventfd);
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->flags, static_cast<uint32_t>(O_RDWR | O_NONBLOCK));
    EXPECT_EQ(info->inode, 1038u);
    ASSERT_EQ(info->lines.size(), 7u);
    EXPECT_EQ(info->find("eventfd-count"), "5");
    EXPECT_EQ(info->find("eventfd-id"), "1");
    EXPECT_EQ(info->find("eventfd-semaphore"), "0");
    EXPECT_EQ(info->find("tfd"), std::nullopt);
}

TEST(ProcFdInfo, EpollRepeatsKeysInOrder)
{
    auto info = parse_fdinfo(kEpoll);
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->flags, static_cast<uint32_t>(O_RDWR | O_CLOEXEC));
    ASSERT_EQ(info->lines.size(), 6u);
    EXPECT_EQ(info->lines[4].first, "tfd");
    EXPECT_EQ(info->lines[4].second, "5 events:       19 data:             1234  pos:0 ino:40e sdev:10");
    EXPECT_EQ(info->lines[5].first, "tfd");
    EXPECT_EQ(info->lines[5].second, "8 events: 8000001c data:                7  pos:0 ino:5192 sdev:f");
    // find() gives the first of the repeated lines.
    EXPECT_EQ(info->find("tfd"), info->lines[4].second);
    // "pos:" and "ino:" inside a tfd line do not overwrite the fd's own.
    EXPECT_EQ(info->inode, 1038u);
}

TEST(ProcFdInfo, InotifyKeyHasASpace)
{
    auto info = parse_fdinfo(kInotify);
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->flags, 0u);
    ASSERT_EQ(info->lines.size(), 6u);
    EXPECT_EQ(info->lines[4].first, "inotify wd");
    EXPECT_TRUE(info->lines[4].second.starts_with("2 ino:13 sdev:fe00000 mask:200"));
    EXPECT_EQ(info->lines[5].first, "inotify wd");
    EXPECT_TRUE(info->lines[5].second.starts_with("1 ino:3c51a"));
}

TEST(ProcFdInfo, TimerfdValuesKeptVerbatim)
{
    auto info = parse_fdinfo(kTimerfd);
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->find("clockid"), "1");
    EXPECT_EQ(info->find("settime flags"), "00");
    EXPECT_EQ(info->find("it_value"), "(99, 999500260)");
    EXPECT_EQ(info->find("it_interval"), "(1, 0)");
}

TEST(ProcFdInfo, LineWithoutColonIsAnError)
{
    auto info = parse_fdinfo("pos:\t0\nflags:\t02\ngarbage here\n");
    ASSERT_FALSE(info);
    EXPECT_NE(info.error().message().find("line 3"), std::string::npos) << info.error().message();
    EXPECT_NE(info.error().message().find("garbage here"), std::string::npos);
}

TEST(ProcFdInfo, MalformedCommonValuesAreErrors)
{
    const char* broken[] = {
        "pos:\t-1\n",
        "pos:\t\n",
        "pos:\t18446744073709551616\n", // 2^64
        "flags:\t0800\n",               // 8 is not an octal digit
        "flags:\t077777777777\n",       // more than 32 bits
        "mnt_id:\tx\n",
        "ino:\t12a\n",
    };
    for (const char* text : broken) {
        auto info = parse_fdinfo(text);
        ASSERT_FALSE(info) << "accepted: " << text;
        EXPECT_NE(info.error().message().find("line 1"), std::string::npos) << info.error().message();
    }
}

TEST(ProcFdInfoLive, OwnEventfd)
{
    UniqueFd event(::eventfd(42, EFD_NONBLOCK | EFD_CLOEXEC));
    ASSERT_TRUE(event.valid());
    auto info = read_fdinfo(::getpid(), event.get());
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->flags & O_NONBLOCK, static_cast<uint32_t>(O_NONBLOCK));
    EXPECT_EQ(info->flags & O_CLOEXEC, static_cast<uint32_t>(O_CLOEXEC));
    auto count = info->find("eventfd-count");
    ASSERT_TRUE(count.has_value());
    EXPECT_EQ(std::stoull(std::string(*count), nullptr, 16), 42u); // printed in hex
}

TEST(ProcFdInfoLive, OwnFilePositionAndInode)
{
    UniqueFd file(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(file.valid());
    ASSERT_EQ(::lseek(file.get(), 123, SEEK_SET), 123);
    struct stat st {};
    ASSERT_EQ(::fstat(file.get(), &st), 0);
    auto info = read_fdinfo(::getpid(), file.get());
    ASSERT_TRUE(info) << info.error().message();
    EXPECT_EQ(info->pos, 123u);
    EXPECT_EQ(info->inode, st.st_ino);
    EXPECT_GT(info->mnt_id, 0);
    EXPECT_EQ(info->flags & O_ACCMODE, static_cast<uint32_t>(O_RDONLY));
}

TEST(ProcFdInfoLive, OwnEpollListsEveryTarget)
{
    UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
    UniqueFd first(::eventfd(0, EFD_CLOEXEC));
    UniqueFd second(::eventfd(0, EFD_CLOEXEC));
    ASSERT_TRUE(epoll.valid() && first.valid() && second.valid());
    epoll_event event {};
    event.events = EPOLLIN;
    ASSERT_EQ(::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, first.get(), &event), 0);
    ASSERT_EQ(::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, second.get(), &event), 0);
    auto info = read_fdinfo(::getpid(), epoll.get());
    ASSERT_TRUE(info) << info.error().message();
    int targets = 0;
    for (const auto& [key, value] : info->lines)
        targets += key == "tfd";
    EXPECT_EQ(targets, 2);
}

TEST(ProcFdInfoLive, ClosedDescriptorNamesThePath)
{
    auto info = read_fdinfo(::getpid(), 99999);
    ASSERT_FALSE(info);
    EXPECT_EQ(info.error().code(), ENOENT);
    EXPECT_NE(info.error().message().find(fmt::format("open /proc/{}/fdinfo/99999", ::getpid())),
              std::string::npos)
        << info.error().message();
}

} // namespace
} // namespace cryo::proc
