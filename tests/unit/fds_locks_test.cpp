// Tests for the "lock:" lines of /proc/PID/fdinfo (fds/locks.h), on lines
// in the kernel's format, and on a lock taken live.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "fds/locks.h"
#include "temp_dir.h"

using namespace cryo;

TEST(FileLocks, ParsesEachKind)
{
    auto posix = fds::parse_lock_line("1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 99");
    ASSERT_TRUE(posix.has_value()) << posix.error().message();
    EXPECT_EQ(posix->kind(), image::FILE_LOCK_KIND_POSIX);
    EXPECT_TRUE(posix->write());
    EXPECT_EQ(posix->start(), 0u);
    EXPECT_EQ(posix->length(), 100u);

    auto to_end = fds::parse_lock_line("2: POSIX  ADVISORY  READ  1234 08:01:5678 200 EOF");
    ASSERT_TRUE(to_end.has_value());
    EXPECT_FALSE(to_end->write());
    EXPECT_EQ(to_end->start(), 200u);
    EXPECT_EQ(to_end->length(), 0u);

    auto flock = fds::parse_lock_line("3: FLOCK  ADVISORY  WRITE 1234 00:1f:42 0 EOF");
    ASSERT_TRUE(flock.has_value());
    EXPECT_EQ(flock->kind(), image::FILE_LOCK_KIND_FLOCK);

    auto ofd = fds::parse_lock_line("4: OFDLCK ADVISORY  READ  -1 00:1f:42 10 19");
    ASSERT_TRUE(ofd.has_value());
    EXPECT_EQ(ofd->kind(), image::FILE_LOCK_KIND_OFD);
    EXPECT_EQ(ofd->length(), 10u);

    auto lease = fds::parse_lock_line("5: LEASE  ACTIVE    READ  1234 00:1f:42 0 EOF");
    ASSERT_TRUE(lease.has_value());
    EXPECT_EQ(lease->kind(), image::FILE_LOCK_KIND_LEASE);
}

TEST(FileLocks, RefusesWhatCannotBeTakenAgain)
{
    for (const char* line : { "1: LEASE  BREAKING  READ  1 00:1f:42 0 EOF", "1: POSIX  MANDATORY WRITE 1 08:01:5 0 EOF",
                              "1: POSIX  ADVISORY  UNLCK 1 08:01:5 0 EOF", "1: POSIX  ADVISORY  WRITE 1 08:01:5 9 3",
                              "1: DELEG  ACTIVE    READ  1 00:1f:42 0 EOF", "1: POSIX  ADVISORY  WRITE" }) {
        auto lock = fds::parse_lock_line(line);
        EXPECT_FALSE(lock.has_value()) << line;
    }
}

TEST(FileLocks, LiveLocksAreRecordedOnce)
{
    test::TempDir dir;
    std::string path = dir / "locked";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    int copy = ::dup(fd);
    ASSERT_EQ(::flock(fd, LOCK_EX), 0);
    struct flock range {};
    range.l_type = F_RDLCK;
    range.l_whence = SEEK_SET;
    range.l_start = 5;
    range.l_len = 3;
    ASSERT_EQ(::fcntl(fd, F_SETLK, &range), 0);

    fds::LockRegistry registry;
    image::FdTable table;
    for (int each : { fd, copy }) {
        auto info = proc::read_fdinfo(::getpid(), each);
        ASSERT_TRUE(info.has_value());
        ASSERT_TRUE(registry.dump_fd_locks(::getpid(), each, 1, *info, table).has_value());
    }
    ASSERT_EQ(table.locks_size(), 2);
    for (const auto& lock : table.locks()) {
        EXPECT_EQ(lock.fd(), fd);
        if (lock.kind() == image::FILE_LOCK_KIND_POSIX)
            EXPECT_TRUE(!lock.write() && lock.start() == 5 && lock.length() == 3);
        else
            EXPECT_TRUE(lock.kind() == image::FILE_LOCK_KIND_FLOCK && lock.write());
    }
    ::close(copy);
    ::close(fd);
}
