// Tests for Error, Result and the TRY/TRY_CTX macros.
//
// The point of the error type is the message the user finally reads: the
// failed call with its object, every layer's context in front, the errno
// text at the end. These tests pin that format and check that TRY and
// TRY_CTX pass errors (and move-only values) through unchanged.
#include <fcntl.h>

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "base/error.h"
#include "base/fd.h"

namespace cryo {
namespace {

TEST(Error, FromErrnoAppendsErrnoText)
{
    Error error = Error::from_errno("open /proc/412/maps", ENOENT);
    EXPECT_EQ(error.code(), ENOENT);
    EXPECT_EQ(error.message(), "open /proc/412/maps: No such file or directory");
}

TEST(Error, FromErrnoDefaultsToCurrentErrno)
{
    errno = EACCES;
    Error error = Error::from_errno("open /x");
    EXPECT_EQ(error.code(), EACCES);
    EXPECT_EQ(error.message(), "open /x: Permission denied");
}

TEST(Error, PlainHasNoErrnoText)
{
    Error error = Error::plain("image is corrupted");
    EXPECT_EQ(error.code(), EINVAL);
    EXPECT_EQ(error.message(), "image is corrupted");
    EXPECT_EQ(Error::plain("busy", EBUSY).code(), EBUSY);
    EXPECT_EQ(Error::make("pid {} has {} threads", 412, 3).message(), "pid 412 has 3 threads");
}

TEST(Error, ContextChainReadsOutsideIn)
{
    Error error = Error::from_errno("open /proc/412/maps", ENOENT);
    error.add_context("pid 412");
    error.add_context("dump");
    EXPECT_EQ(error.message(), "dump: pid 412: open /proc/412/maps: No such file or directory");
    EXPECT_EQ(error.code(), ENOENT);

    Error chained = Error::plain("bad magic").add_context("tree.img").add_context("restore");
    EXPECT_EQ(chained.message(), "restore: tree.img: bad magic");
}

TEST(Error, EmptyContextAddsNothing)
{
    Error error = Error::plain("x");
    error.add_context("");
    EXPECT_EQ(error.message(), "x");
}

TEST(Error, FailHelpers)
{
    Result<int> plain = fail("fd {} is {}", 7, "odd");
    ASSERT_FALSE(plain);
    EXPECT_EQ(plain.error().message(), "fd 7 is odd");
    EXPECT_EQ(plain.error().code(), EINVAL);

    Result<void> with_errno = fail_errno("kill pid 5", ESRCH);
    ASSERT_FALSE(with_errno);
    EXPECT_EQ(with_errno.error().message(), "kill pid 5: No such process");
}

TEST(Error, WithContextOnlyTouchesErrors)
{
    Result<int> good = with_context(Result<int>(5), "pid {}", 1);
    ASSERT_TRUE(good);
    EXPECT_EQ(*good, 5);
    Result<int> bad = with_context(Result<int>(fail_errno("read x", EIO)), "pid {}", 1);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message(), "pid 1: read x: Input/output error");
}

// A three-layer call chain, as in a dump: the leaf knows the file, the
// middle the pid, the top the operation.
Result<std::string> leaf(bool succeed)
{
    if (!succeed)
        return fail_errno("open /proc/412/maps", ENOENT);
    return std::string("contents");
}

Result<size_t> middle(bool succeed)
{
    std::string text = TRY_CTX(leaf(succeed), "pid {}", 412);
    return text.size();
}

Result<size_t> top(bool succeed)
{
    size_t size = TRY_CTX(middle(succeed), "dump");
    return size * 2;
}

TEST(Try, TryCtxBuildsTheChain)
{
    auto failed = top(false);
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().message(), "dump: pid 412: open /proc/412/maps: No such file or directory");
    EXPECT_EQ(failed.error().code(), ENOENT);

    auto succeeded = top(true);
    ASSERT_TRUE(succeeded) << succeeded.error().message();
    EXPECT_EQ(*succeeded, 16u);
}

Result<void> check(int value)
{
    if (value < 0)
        return fail("negative: {}", value);
    return {};
}

Result<int> twice_checked(int value, int* reached)
{
    TRY(check(value));
    ++*reached;
    return value * 2;
}

TEST(Try, TryPropagatesVoidResults)
{
    int reached = 0;
    auto good = twice_checked(4, &reached);
    ASSERT_TRUE(good);
    EXPECT_EQ(*good, 8);
    EXPECT_EQ(reached, 1);

    auto bad = twice_checked(-3, &reached);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message(), "negative: -3");
    EXPECT_EQ(reached, 1); // returned before the increment
}

Result<std::unique_ptr<int>> make_pointer(bool succeed)
{
    if (!succeed)
        return fail("no pointer");
    return std::make_unique<int>(41);
}

Result<int> use_pointer(bool succeed)
{
    std::unique_ptr<int> pointer = TRY(make_pointer(succeed));
    return *pointer + 1;
}

TEST(Try, TryMovesMoveOnlyValues)
{
    auto good = use_pointer(true);
    ASSERT_TRUE(good);
    EXPECT_EQ(*good, 42);
    auto bad = use_pointer(false);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message(), "no pointer");
}

Result<int> open_and_report(const std::string& path)
{
    UniqueFd fd = TRY_CTX(open_file(path, O_RDONLY), "config");
    return fd.get() >= 0 ? 1 : 0;
}

TEST(Try, RealSyscallErrorThroughTryCtx)
{
    auto result = open_and_report("/nonexistent/cryo-unit-test");
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message(), "config: open /nonexistent/cryo-unit-test: No such file or directory");
    EXPECT_EQ(open_and_report("/dev/null").value_or(-1), 1);
}

} // namespace
} // namespace cryo
