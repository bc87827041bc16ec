// Tests for the /proc/PID/status parser.
//
// The samples were captured on the development machine: a bash started in a
// new PID namespace (so NStgid/NSpid/NSpgid/NSsid print two values, the host's
// first) with signal handlers installed and no supplementary groups, and a
// bash run through setpriv with other uids/gids, three groups, no
// capabilities, NoNewPrivs and umask 027. Live tests read this process.
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "proc/status.h"

namespace cryo::proc {
namespace {

constexpr std::string_view kNamespacedStatus = R"(Name:	bash
Umask:	0022
State:	R (running)
Tgid:	8950
Ngid:	0
Pid:	8950
PPid:	8949
TracerPid:	0
Uid:	0	0	0	0
Gid:	0	0	0	0
FDSize:	256
Groups:	 
NStgid:	8950	1
NSpid:	8950	1
NSpgid:	8947	0
NSsid:	5767	0
Kthread:	0
VmPeak:	    4360 kB
VmSize:	    4360 kB
VmLck:	       0 kB
VmPin:	       0 kB
VmHWM:	    3084 kB
VmRSS:	    3084 kB
RssAnon:	     272 kB
RssFile:	    2812 kB
RssShmem:	       0 kB
VmData:	     304 kB
VmStk:	     132 kB
VmExe:	     772 kB
VmLib:	    1596 kB
VmPTE:	      52 kB
VmSwap:	       0 kB
HugetlbPages:	       0 kB
CoreDumping:	0
THP_enabled:	1
untag_mask:	0xffffffffffffffff
Threads:	1
SigQ:	3/96365
SigPnd:	0000000000000000
ShdPnd:	0000000000000000
SigBlk:	0000000000000000
SigIgn:	0000000000000804
SigCgt:	0000000000010200
CapInh:	0000000000000000
CapPrm:	000001fffeffffff
CapEff:	000001fffeffffff
CapBnd:	000001fffeffffff
CapAmb:	0000000000000000
NoNewPrivs:	0
Seccomp:	0
Seccomp_filters:	0
Speculation_Store_Bypass:	vulnerable
SpeculationIndirectBranch:	always enabled
Cpus_allowed:	3
Cpus_allowed_list:	0-1
Mems_allowed:	00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000001
Mems_allowed_list:	0
voluntary_ctxt_switches:	0
nonvoluntary_ctxt_switches:	1
)";

constexpr std::string_view kGroupsStatus = R"(Name:	bash
Umask:	0027
State:	R (running)
Tgid:	9450
Ngid:	0
Pid:	9450
PPid:	9448
TracerPid:	0
Uid:	1000	1000	1000	1000
Gid:	1001	1001	1001	1001
FDSize:	256
Groups:	4 27 1000 
NStgid:	9450
NSpid:	9450
NSpgid:	9448
NSsid:	5767
Kthread:	0
VmPeak:	    4360 kB
VmSize:	    4360 kB
VmLck:	       0 kB
VmPin:	       0 kB
VmHWM:	    3088 kB
VmRSS:	    3088 kB
RssAnon:	     272 kB
RssFile:	    2816 kB
RssShmem:	       0 kB
VmData:	     304 kB
VmStk:	     132 kB
VmExe:	     772 kB
VmLib:	    1596 kB
VmPTE:	      48 kB
VmSwap:	       0 kB
HugetlbPages:	       0 kB
CoreDumping:	0
THP_enabled:	1
untag_mask:	0xffffffffffffffff
Threads:	1
SigQ:	0/96365
SigPnd:	0000000000000000
ShdPnd:	0000000000000000
SigBlk:	0000000000000000
SigIgn:	0000000000000006
SigCgt:	0000000000010000
CapInh:	0000000000000000
CapPrm:	0000000000000000
CapEff:	0000000000000000
CapBnd:	000001fffeffffff
CapAmb:	0000000000000000
NoNewPrivs:	1
Seccomp:	0
Seccomp_filters:	0
Speculation_Store_Bypass:	vulnerable
SpeculationIndirectBranch:	always enabled
Cpus_allowed:	3
Cpus_allowed_list:	0-1
Mems_allowed:	00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000000,00000001
Mems_allowed_list:	0
voluntary_ctxt_switches:	2
nonvoluntary_ctxt_switches:	2
)";

std::string replace_line(std::string_view text, std::string_view key, std::string_view line)
{
    std::string result(text);
    size_t start = result.find(std::string(key) + ":");
    size_t end = result.find('\n', start);
    result.replace(start, end - start, line);
    return result;
}

TEST(ProcStatus, NamespacedProcess)
{
    auto status = parse_status(kNamespacedStatus);
    ASSERT_TRUE(status) << status.error().message();
    EXPECT_EQ(status->name, "bash");
    EXPECT_TRUE(status->has_umask);
    EXPECT_EQ(status->umask, 022u);
    EXPECT_EQ(status->state, 'R');
    EXPECT_EQ(status->tgid, 8950);
    EXPECT_EQ(status->pid, 8950);
    EXPECT_EQ(status->ppid, 8949);
    EXPECT_EQ(status->tracer_pid, 0);
    EXPECT_EQ(status->uids, (std::array<uint32_t, 4> { 0, 0, 0, 0 }));
    EXPECT_TRUE(status->groups.empty());
    EXPECT_EQ(status->ns_tgid, (std::vector<pid_t> { 8950, 1 }));
    EXPECT_EQ(status->ns_pid, (std::vector<pid_t> { 8950, 1 }));
    EXPECT_EQ(status->ns_pgid, (std::vector<pid_t> { 8947, 0 }));
    EXPECT_EQ(status->ns_sid, (std::vector<pid_t> { 5767, 0 }));
    EXPECT_EQ(status->threads, 1);
}

TEST(ProcStatus, SignalMasksAndCapabilitiesAreHex)
{
    auto status = parse_status(kNamespacedStatus);
    ASSERT_TRUE(status) << status.error().message();
    EXPECT_EQ(status->sig_pending, 0u);
    EXPECT_EQ(status->shared_pending, 0u);
    EXPECT_EQ(status->sig_blocked, 0u);
    EXPECT_EQ(status->sig_ignored, 0x804u);
    EXPECT_EQ(status->sig_caught, 0x10200u);
    EXPECT_EQ(status->cap_inheritable, 0u);
    EXPECT_EQ(status->cap_permitted, 0x1fffeffffffu);
    EXPECT_EQ(status->cap_effective, 0x1fffeffffffu);
    EXPECT_EQ(status->cap_bounding, 0x1fffeffffffu);
    EXPECT_EQ(status->cap_ambient, 0u);
    EXPECT_FALSE(status->no_new_privs);
    EXPECT_EQ(status->seccomp_mode, 0);
    EXPECT_EQ(status->seccomp_filters, 0);
}

TEST(ProcStatus, CredentialsGroupsAndNoNewPrivs)
{
    auto status = parse_status(kGroupsStatus);
    ASSERT_TRUE(status) << status.error().message();
    EXPECT_EQ(status->umask, 027u);
    EXPECT_EQ(status->uids, (std::array<uint32_t, 4> { 1000, 1000, 1000, 1000 }));
    EXPECT_EQ(status->gids, (std::array<uint32_t, 4> { 1001, 1001, 1001, 1001 }));
    EXPECT_EQ(status->groups, (std::vector<uint32_t> { 4, 27, 1000 }));
    EXPECT_EQ(status->ns_pid.size(), 1u);
    EXPECT_EQ(status->cap_permitted, 0u);
    EXPECT_EQ(status->cap_effective, 0u);
    EXPECT_EQ(status->sig_ignored, 0x6u);
    EXPECT_TRUE(status->no_new_privs);
}

TEST(ProcStatus, SeccompAndDifferingIds)
{
    std::string text = replace_line(kGroupsStatus, "Seccomp", "Seccomp:\t2");
    text = replace_line(text, "Seccomp_filters", "Seccomp_filters:\t3");
    text = replace_line(text, "Uid", "Uid:\t1000\t0\t1000\t4294967294");
    text = replace_line(text, "TracerPid", "TracerPid:\t77");
    text = replace_line(text, "SigPnd", "SigPnd:\t8000000000000001");
    auto status = parse_status(text);
    ASSERT_TRUE(status) << status.error().message();
    EXPECT_EQ(status->seccomp_mode, 2);
    EXPECT_EQ(status->seccomp_filters, 3);
    EXPECT_EQ(status->uids, (std::array<uint32_t, 4> { 1000, 0, 1000, 4294967294u }));
    EXPECT_EQ(status->tracer_pid, 77);
    EXPECT_EQ(status->sig_pending, 0x8000000000000001u);
}

TEST(ProcStatus, MissingUmaskIsRecorded)
{
    std::string text(kGroupsStatus);
    size_t start = text.find("Umask:");
    text.erase(start, text.find('\n', start) + 1 - start);
    auto status = parse_status(text);
    ASSERT_TRUE(status) << status.error().message();
    EXPECT_FALSE(status->has_umask);
}

TEST(ProcStatus, UnknownKeysAreIgnored)
{
    auto status = parse_status("Name:\tx\nSomeFutureKey:\twhatever 1 2 3\nPid:\t5\n");
    ASSERT_TRUE(status) << status.error().message();
    EXPECT_EQ(status->name, "x");
    EXPECT_EQ(status->pid, 5);
}

TEST(ProcStatus, LineWithoutColonIsAnError)
{
    auto status = parse_status("Name:\tx\nPid 5\n");
    ASSERT_FALSE(status);
    EXPECT_NE(status.error().message().find("line 2"), std::string::npos) << status.error().message();
    EXPECT_NE(status.error().message().find("Pid 5"), std::string::npos);
}

TEST(ProcStatus, MalformedKnownValuesAreErrors)
{
    struct Case {
        std::string_view key;
        std::string_view line;
    };
    const Case cases[] = {
        { "Uid", "Uid:\t0\t0\t0" },              // three values instead of four
        { "Gid", "Gid:\t0\t0\t0\t0\t0" },        // five
        { "Uid", "Uid:\t0\t0\t0\t-1" },          // negative uid
        { "Groups", "Groups:\t4 x 1000 " },
        { "NSpid", "NSpid:\t8950\tone" },
        { "Pid", "Pid:\t" },
        { "Pid", "Pid:\t99999999999" },          // overflows pid_t
        { "SigBlk", "SigBlk:\t00000000000000zz" },
        { "CapEff", "CapEff:\t1fffffffffffffffff" }, // 72 bits
        { "Umask", "Umask:\t0089" },             // not octal
        { "Threads", "Threads:\tmany" },
        { "NoNewPrivs", "NoNewPrivs:\tyes" },
    };
    for (const Case& test : cases) {
        std::string text = replace_line(kNamespacedStatus, test.key, test.line);
        auto status = parse_status(text);
        ASSERT_FALSE(status) << "accepted: " << test.line;
        EXPECT_NE(status.error().message().find(std::string(test.line)), std::string::npos)
            << status.error().message();
        EXPECT_NE(status.error().message().find("status line "), std::string::npos);
    }
}

TEST(ProcStatusLive, OwnStatus)
{
    auto status = read_status(::getpid());
    ASSERT_TRUE(status) << status.error().message();
    EXPECT_EQ(status->pid, ::getpid());
    EXPECT_EQ(status->tgid, ::getpid());
    EXPECT_EQ(status->ppid, ::getppid());
    EXPECT_EQ(status->uids[0], ::getuid());
    EXPECT_EQ(status->uids[1], ::geteuid());
    EXPECT_EQ(status->gids[0], ::getgid());
    ASSERT_FALSE(status->ns_pid.empty());
    EXPECT_EQ(status->ns_pid.back(), ::getpid());
    EXPECT_GE(status->threads, 1);
    EXPECT_EQ(status->state, 'R');
    EXPECT_TRUE(status->has_umask);
    mode_t mask = ::umask(0);
    ::umask(mask);
    EXPECT_EQ(status->umask, mask);
    EXPECT_EQ(status->no_new_privs, ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1);
}

TEST(ProcStatusLive, OwnThreadStatus)
{
    pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
    auto status = read_thread_status(::getpid(), tid);
    ASSERT_TRUE(status) << status.error().message();
    EXPECT_EQ(status->pid, tid);
    EXPECT_EQ(status->tgid, ::getpid());
}

TEST(ProcStatusLive, MissingProcessNamesThePath)
{
    auto status = read_status(0x7ffffff0);
    ASSERT_FALSE(status);
    EXPECT_EQ(status.error().code(), ENOENT);
    EXPECT_NE(status.error().message().find("open /proc/2147483632/status"), std::string::npos)
        << status.error().message();
}

} // namespace
} // namespace cryo::proc
