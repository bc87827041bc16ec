// Tests for the /proc/PID/stat parser.
//
// The samples were captured on the development machine: a process that
// renamed itself "a) b (c" with PR_SET_NAME (a command name with spaces and
// both parentheses, which is why the parser looks for the last ')'), and a
// zombie that exited with status 3. Live tests read this process's own stat.
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "base/fd.h"
#include "proc/stat.h"

namespace cryo::proc {
namespace {

constexpr std::string_view kTrickyComm =
    "8839 (a) b (c) R 8829 8829 5767 0 -1 4194304 107 0 0 0 0 0 0 0 20 0 1 0 1247000 2564096 321 "
    "18446744073709551615 94732182114304 94732182116093 140730131958224 0 0 0 0 0 0 0 0 0 17 0 0 0 "
    "0 0 0 94732182126032 94732182126784 94732879745024 140730131962332 140730131962338 "
    "140730131962338 140730131963890 0\n";

constexpr std::string_view kZombie =
    "9345 (z) Z 9343 9335 5767 0 -1 4227148 26 0 0 0 0 0 0 0 20 0 1 0 1262128 0 0 "
    "18446744073709551615 0 0 0 0 0 0 0 0 0 1 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 768\n";

TEST(ProcStat, CommWithParenthesesAndSpaces)
{
    auto stat = parse_stat(kTrickyComm);
    ASSERT_TRUE(stat) << stat.error().message();
    EXPECT_EQ(stat->pid, 8839);
    EXPECT_EQ(stat->comm, "a) b (c");
    EXPECT_EQ(stat->state, 'R');
    EXPECT_EQ(stat->ppid, 8829);
    EXPECT_EQ(stat->pgrp, 8829);
    EXPECT_EQ(stat->session, 5767);
    EXPECT_EQ(stat->tty_nr, 0);
    EXPECT_EQ(stat->flags, 4194304u);
    EXPECT_EQ(stat->priority, 20);
    EXPECT_EQ(stat->nice, 0);
    EXPECT_EQ(stat->num_threads, 1);
    EXPECT_EQ(stat->start_time, 1247000u);
    EXPECT_EQ(stat->vsize, 2564096u);
    EXPECT_EQ(stat->rss_pages, 321u);
}

TEST(ProcStat, MemoryLayoutFields)
{
    auto stat = parse_stat(kTrickyComm);
    ASSERT_TRUE(stat) << stat.error().message();
    EXPECT_EQ(stat->start_code, 94732182114304u);   // field 26
    EXPECT_EQ(stat->end_code, 94732182116093u);     // field 27
    EXPECT_EQ(stat->start_stack, 140730131958224u); // field 28
    EXPECT_EQ(stat->exit_signal, 17);               // field 38
    EXPECT_EQ(stat->processor, 0);                  // field 39
    EXPECT_EQ(stat->start_data, 94732182126032u);   // field 45
    EXPECT_EQ(stat->end_data, 94732182126784u);
    EXPECT_EQ(stat->start_brk, 94732879745024u);
    EXPECT_EQ(stat->arg_start, 140730131962332u);
    EXPECT_EQ(stat->arg_end, 140730131962338u);
    EXPECT_EQ(stat->env_start, 140730131962338u);
    EXPECT_EQ(stat->env_end, 140730131963890u);     // field 51
    EXPECT_EQ(stat->exit_code, 0);                  // field 52
}

TEST(ProcStat, ZombieExitCode)
{
    auto stat = parse_stat(kZombie);
    ASSERT_TRUE(stat) << stat.error().message();
    EXPECT_EQ(stat->state, 'Z');
    EXPECT_EQ(stat->comm, "z");
    EXPECT_EQ(stat->processor, 0);
    EXPECT_EQ(stat->start_code, 0u);
    EXPECT_EQ(stat->exit_code, 3 << 8);
}

TEST(ProcStat, NegativePriorityAndNice)
{
    // A SCHED_FIFO thread at priority 10 shows priority -11; nice -5.
    std::string text(kTrickyComm);
    text.replace(text.find(" 20 0 1 0 "), 10, " -11 -5 1 0 ");
    auto stat = parse_stat(text);
    ASSERT_TRUE(stat) << stat.error().message();
    EXPECT_EQ(stat->priority, -11);
    EXPECT_EQ(stat->nice, -5);
}

TEST(ProcStat, EmptyCommAndCommOfParentheses)
{
    std::string text(kZombie);
    text.replace(text.find("(z)"), 3, "()");
    auto empty = parse_stat(text);
    ASSERT_TRUE(empty) << empty.error().message();
    EXPECT_EQ(empty->comm, "");

    text = std::string(kZombie);
    text.replace(text.find("(z)"), 3, "()) ((()");
    auto parens = parse_stat(text);
    ASSERT_TRUE(parens) << parens.error().message();
    EXPECT_EQ(parens->comm, ")) (((");
    EXPECT_EQ(parens->state, 'Z');
}

TEST(ProcStat, MissingParenthesesIsAnError)
{
    auto stat = parse_stat("8839 cat R 1 2 3");
    ASSERT_FALSE(stat);
    EXPECT_NE(stat.error().message().find("8839 cat R"), std::string::npos) << stat.error().message();
    EXPECT_FALSE(parse_stat(")8839 (cat R 1 2 3"));
    EXPECT_FALSE(parse_stat(""));
    EXPECT_FALSE(parse_stat("("));
    EXPECT_FALSE(parse_stat(")"));
}

TEST(ProcStat, TooFewFieldsIsAnError)
{
    auto stat = parse_stat("8839 (cat) R 1 2 3\n");
    ASSERT_FALSE(stat);
    EXPECT_NE(stat.error().message().find("only 4 fields"), std::string::npos) << stat.error().message();
}

TEST(ProcStat, BadPidIsAnError)
{
    std::string text(kZombie);
    text.replace(0, 4, "93x5");
    auto stat = parse_stat(text);
    ASSERT_FALSE(stat);
    EXPECT_NE(stat.error().message().find("bad pid"), std::string::npos) << stat.error().message();
}

TEST(ProcStat, MalformedFieldIsNamed)
{
    std::string text(kTrickyComm);
    text.replace(text.find("94732182114304"), 14, "9473218211430x");
    auto stat = parse_stat(text);
    ASSERT_FALSE(stat);
    EXPECT_NE(stat.error().message().find("field 26"), std::string::npos) << stat.error().message();
    EXPECT_NE(stat.error().message().find("9473218211430x"), std::string::npos);

    text = std::string(kTrickyComm);
    text.replace(text.find(") R "), 4, ") RR ");
    auto state = parse_stat(text);
    ASSERT_FALSE(state);
    EXPECT_NE(state.error().message().find("state"), std::string::npos) << state.error().message();
}

TEST(ProcStatLive, OwnStat)
{
    auto stat = read_stat(::getpid());
    ASSERT_TRUE(stat) << stat.error().message();
    EXPECT_EQ(stat->pid, ::getpid());
    EXPECT_EQ(stat->ppid, ::getppid());
    EXPECT_EQ(stat->pgrp, ::getpgrp());
    EXPECT_EQ(stat->session, ::getsid(0));
    EXPECT_EQ(stat->state, 'R');
    EXPECT_GE(stat->num_threads, 1);
    EXPECT_NE(stat->start_code, 0u);
    EXPECT_LT(stat->start_code, stat->end_code);
    EXPECT_LE(stat->arg_start, stat->arg_end);
    auto comm = read_text_file("/proc/self/comm");
    ASSERT_TRUE(comm) << comm.error().message();
    EXPECT_EQ(stat->comm + "\n", *comm);
}

TEST(ProcStatLive, OwnThreadStat)
{
    pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
    auto stat = read_thread_stat(::getpid(), tid);
    ASSERT_TRUE(stat) << stat.error().message();
    EXPECT_EQ(stat->pid, tid);
    EXPECT_EQ(stat->state, 'R');
}

TEST(ProcStatLive, MissingProcessNamesThePath)
{
    auto stat = read_stat(0x7ffffff0);
    ASSERT_FALSE(stat);
    EXPECT_EQ(stat.error().code(), ENOENT);
    EXPECT_NE(stat.error().message().find("open /proc/2147483632/stat: No such file or directory"),
              std::string::npos)
        << stat.error().message();
    auto thread = read_thread_stat(::getpid(), 0x7ffffff0);
    ASSERT_FALSE(thread);
    EXPECT_NE(thread.error().message().find("/task/2147483632/stat"), std::string::npos);
}

} // namespace
} // namespace cryo::proc
