// Tests for the /proc/PID/maps and smaps parsers.
//
// The samples were captured on the development machine (Linux 6.18, x86-64)
// from a small program that mapped a file whose name has spaces, a file it
// then unlinked, a shared anonymous region and a MADV_DONTFORK region. That
// kernel lacks CONFIG_ANON_VMA_NAME, so the "[anon:...]" lines are written by
// hand in the format the kernel prints them. Live tests parse this process's
// own maps.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include <gtest/gtest.h>

#include "proc/maps.h"

namespace cryo::proc {
namespace {

// Captured /proc/self/maps, followed by hand-written named anonymous
// mappings (private and shared).
constexpr std::string_view kMaps = R"(56288e104000-56288e105000 r--p 00000000 fe:00 10952913                   /tmp/cap/cap
56288e105000-56288e106000 r-xp 00001000 fe:00 10952913                   /tmp/cap/cap
56288e106000-56288e107000 r--p 00002000 fe:00 10952913                   /tmp/cap/cap
56288e107000-56288e108000 r--p 00002000 fe:00 10952913                   /tmp/cap/cap
56288e108000-56288e109000 rw-p 00003000 fe:00 10952913                   /tmp/cap/cap
5628b7a55000-5628b7a76000 rw-p 00000000 00:00 0                          [heap]
7f03e0811000-7f03e0814000 rw-p 00000000 00:00 0 
7f03e0814000-7f03e083a000 r--p 00000000 fe:00 332835                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f03e083a000-7f03e0990000 r-xp 00026000 fe:00 332835                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f03e0990000-7f03e09e3000 r--p 0017c000 fe:00 332835                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f03e09e3000-7f03e09e7000 r--p 001cf000 fe:00 332835                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f03e09e7000-7f03e09e9000 rw-p 001d3000 fe:00 332835                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f03e09e9000-7f03e09f6000 rw-p 00000000 00:00 0 
7f03e09fa000-7f03e09fb000 rw-p 00000000 00:00 0 
7f03e09fb000-7f03e09fc000 rw-s 00000000 00:01 24                         /dev/zero (deleted)
7f03e09fc000-7f03e09fe000 rw-p 00000000 00:00 0 
7f03e09fe000-7f03e0a00000 rw-p 00000000 fe:00 10952865                   /tmp/cap/gone (deleted)
7f03e0a00000-7f03e0a01000 r--s 00000000 fe:00 10952849                   /tmp/cap/with space file
7f03e0a01000-7f03e0a03000 rw-p 00000000 00:00 0 
7f03e0a03000-7f03e0a07000 r--p 00000000 00:00 0                          [vvar]
7f03e0a07000-7f03e0a09000 r--p 00000000 00:00 0                          [vvar_vclock]
7f03e0a09000-7f03e0a0b000 r-xp 00000000 00:00 0                          [vdso]
7f03e0a0b000-7f03e0a0c000 r--p 00000000 fe:00 332383                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7f03e0a0c000-7f03e0a32000 r-xp 00001000 fe:00 332383                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7f03e0a32000-7f03e0a3c000 r--p 00027000 fe:00 332383                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7f03e0a3c000-7f03e0a3e000 r--p 00031000 fe:00 332383                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7f03e0a3e000-7f03e0a40000 rw-p 00033000 fe:00 332383                     /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7ffe49845000-7ffe49866000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
7f03e0b00000-7f03e0b02000 rw-p 00000000 00:00 0                          [anon:x]
7f03e0b02000-7f03e0b03000 rw-s 00000000 00:01 25                         [anon_shmem:shm name]
)";

// Captured /proc/self/smaps: an anonymous MADV_DONTFORK region, a shared
// anonymous one, a deleted file, a file with spaces in its name, the stack
// and vsyscall.
constexpr std::string_view kSmaps = R"(7f03e09fa000-7f03e09fb000 rw-p 00000000 00:00 0 
Size:                  4 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                   0 kB
Pss:                   0 kB
Pss_Dirty:             0 kB
Shared_Clean:          0 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:         0 kB
Referenced:            0 kB
Anonymous:             0 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
THPeligible:           0
VmFlags: rd wr mr mw me dc ac 
7f03e09fb000-7f03e09fc000 rw-s 00000000 00:01 24                         /dev/zero (deleted)
Size:                  4 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                   0 kB
Pss:                   0 kB
Pss_Dirty:             0 kB
Shared_Clean:          0 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:         0 kB
Referenced:            0 kB
Anonymous:             0 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
THPeligible:           0
VmFlags: rd wr sh mr mw me ms 
7f03e09fc000-7f03e09fe000 rw-p 00000000 00:00 0 
Size:                  8 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                   4 kB
Pss:                   4 kB
Pss_Dirty:             4 kB
Shared_Clean:          0 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:         4 kB
Referenced:            4 kB
Anonymous:             4 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
THPeligible:           0
VmFlags: rd wr mr mw me ac 
7f03e09fe000-7f03e0a00000 rw-p 00000000 fe:00 10952865                   /tmp/cap/gone (deleted)
Size:                  8 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                   0 kB
Pss:                   0 kB
Pss_Dirty:             0 kB
Shared_Clean:          0 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:         0 kB
Referenced:            0 kB
Anonymous:             0 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
THPeligible:           0
VmFlags: rd wr mr mw me ac 
7f03e0a00000-7f03e0a01000 r--s 00000000 fe:00 10952849                   /tmp/cap/with space file
Size:                  4 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                   0 kB
Pss:                   0 kB
Pss_Dirty:             0 kB
Shared_Clean:          0 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:         0 kB
Referenced:            0 kB
Anonymous:             0 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
THPeligible:           0
VmFlags: rd sh mr mw me ms 
7f03e0a01000-7f03e0a03000 rw-p 00000000 00:00 0 
Size:                  8 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                   4 kB
Pss:                   4 kB
Pss_Dirty:             4 kB
Shared_Clean:          0 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:         4 kB
Referenced:            4 kB
Anonymous:             4 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
THPeligible:           0
VmFlags: rd wr mr mw me ac 
7ffe49845000-7ffe49866000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                  24 kB
Pss:                  24 kB
Pss_Dirty:            24 kB
Shared_Clean:          0 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:        24 kB
Referenced:           24 kB
Anonymous:            24 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
THPeligible:           0
VmFlags: rd wr mr mw me gd ac 
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
Size:                  4 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                   0 kB
Pss:                   0 kB
Pss_Dirty:             0 kB
Shared_Clean:          0 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:         0 kB
Referenced:            0 kB
Anonymous:             0 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
THPeligible:           0
VmFlags: ex 
)";

const MapsEntry* find_path(const std::vector<MapsEntry>& entries, std::string_view path)
{
    auto it = std::ranges::find_if(entries, [&](const MapsEntry& entry) { return entry.path == path; });
    return it == entries.end() ? nullptr : &*it;
}

TEST(ProcMaps, ParsesCapturedMaps)
{
    auto entries = parse_maps(kMaps);
    ASSERT_TRUE(entries) << entries.error().message();
    ASSERT_EQ(entries->size(), 31u);

    const MapsEntry& first = entries->front();
    EXPECT_EQ(first.start, 0x56288e104000u);
    EXPECT_EQ(first.end, 0x56288e105000u);
    EXPECT_TRUE(first.read);
    EXPECT_FALSE(first.write);
    EXPECT_FALSE(first.exec);
    EXPECT_FALSE(first.shared);
    EXPECT_EQ(first.offset, 0u);
    EXPECT_EQ(first.dev_major, 0xfeu);
    EXPECT_EQ(first.dev_minor, 0u);
    EXPECT_EQ(first.inode, 10952913u);
    EXPECT_EQ(first.path, "/tmp/cap/cap");
    EXPECT_FALSE(first.deleted);

    const MapsEntry& text = (*entries)[1];
    EXPECT_TRUE(text.exec);
    EXPECT_EQ(text.offset, 0x1000u);

    const MapsEntry& vsyscall = (*entries)[28];
    EXPECT_EQ(vsyscall.path, "[vsyscall]");
    EXPECT_EQ(vsyscall.start, 0xffffffffff600000u);
    EXPECT_FALSE(vsyscall.read);
    EXPECT_TRUE(vsyscall.exec);
}

TEST(ProcMaps, AnonymousMappingHasEmptyPath)
{
    auto entries = parse_maps(kMaps);
    ASSERT_TRUE(entries) << entries.error().message();
    const MapsEntry& anonymous = (*entries)[6];
    EXPECT_EQ(anonymous.start, 0x7f03e0811000u);
    EXPECT_EQ(anonymous.path, "");
    EXPECT_EQ(anonymous.inode, 0u);
    EXPECT_FALSE(anonymous.deleted);
}

TEST(ProcMaps, PathWithSpacesIsKeptWhole)
{
    auto entries = parse_maps(kMaps);
    ASSERT_TRUE(entries) << entries.error().message();
    const MapsEntry* entry = find_path(*entries, "/tmp/cap/with space file");
    ASSERT_NE(entry, nullptr);
    EXPECT_TRUE(entry->shared);
    EXPECT_TRUE(entry->read);
    EXPECT_FALSE(entry->write);
    EXPECT_FALSE(entry->deleted);
    EXPECT_EQ(entry->inode, 10952849u);
}

TEST(ProcMaps, DeletedSuffixIsStripped)
{
    auto entries = parse_maps(kMaps);
    ASSERT_TRUE(entries) << entries.error().message();
    const MapsEntry* gone = find_path(*entries, "/tmp/cap/gone");
    ASSERT_NE(gone, nullptr);
    EXPECT_TRUE(gone->deleted);
    EXPECT_FALSE(gone->shared);

    // Shared anonymous memory shows up as the deleted /dev/zero.
    const MapsEntry* zero = find_path(*entries, "/dev/zero");
    ASSERT_NE(zero, nullptr);
    EXPECT_TRUE(zero->deleted);
    EXPECT_TRUE(zero->shared);
    EXPECT_EQ(zero->dev_major, 0u);
    EXPECT_EQ(zero->dev_minor, 1u);
}

TEST(ProcMaps, SpecialNamesKeptAsPrinted)
{
    auto entries = parse_maps(kMaps);
    ASSERT_TRUE(entries) << entries.error().message();
    for (std::string_view name : { "[heap]", "[stack]", "[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]",
                                   "[anon:x]", "[anon_shmem:shm name]" }) {
        const MapsEntry* entry = find_path(*entries, name);
        ASSERT_NE(entry, nullptr) << name;
        EXPECT_FALSE(entry->deleted) << name;
    }
    EXPECT_TRUE(find_path(*entries, "[anon_shmem:shm name]")->shared);
}

TEST(ProcMaps, EmptyInputIsNoMappings)
{
    auto entries = parse_maps("");
    ASSERT_TRUE(entries);
    EXPECT_TRUE(entries->empty());
}

TEST(ProcMaps, MalformedLineQuotesLineNumberAndText)
{
    std::string text = "7f03e0a03000-7f03e0a07000 r--p 00000000 00:00 0   [vvar]\n"
                       "this is not a mapping\n";
    auto entries = parse_maps(text);
    ASSERT_FALSE(entries);
    EXPECT_NE(entries.error().message().find("line 2"), std::string::npos) << entries.error().message();
    EXPECT_NE(entries.error().message().find("this is not a mapping"), std::string::npos);
}

TEST(ProcMaps, RejectsBrokenFields)
{
    const char* broken[] = {
        "7f03e0a03000 r--p 00000000 00:00 0",              // no '-' in the range
        "7f03e0a03000-zz r--p 00000000 00:00 0",           // end is not hex
        "7f03e0a07000-7f03e0a03000 r--p 00000000 00:00 0", // end before start
        "7f03e0a03000-7f03e0a07000 rwzp 00000000 00:00 0", // bad permission letter
        "7f03e0a03000-7f03e0a07000 r--q 00000000 00:00 0", // neither 'p' nor 's'
        "7f03e0a03000-7f03e0a07000 r-- 00000000 00:00 0",  // short permissions
        "7f03e0a03000-7f03e0a07000 r--p 0000zz00 00:00 0", // offset is not hex
        "7f03e0a03000-7f03e0a07000 r--p 00000000 0000 0",  // device without ':'
        "7f03e0a03000-7f03e0a07000 r--p 00000000 00:00",   // no inode
        "7f03e0a03000-7f03e0a07000 r--p 00000000 00:00 x", // inode is not a number
        "7f03e0a03000-7f03e0a07000 r--p 00000000 00:00 -1",
        "-",
        "1-10000000000000000 r--p 0 0:0 0",                // end overflows 64 bits
    };
    for (const char* line : broken) {
        auto entries = parse_maps(line);
        ASSERT_FALSE(entries) << "accepted: " << line;
        EXPECT_NE(entries.error().message().find("line 1"), std::string::npos);
    }
}

TEST(ProcMaps, PathMayBeginAfterAnyNumberOfSpaces)
{
    auto entries = parse_maps("1000-2000 rw-s 00001000 08:01 42 /a  b (deleted)\n");
    ASSERT_TRUE(entries) << entries.error().message();
    ASSERT_EQ(entries->size(), 1u);
    EXPECT_EQ((*entries)[0].path, "/a  b");
    EXPECT_TRUE((*entries)[0].deleted);
    EXPECT_EQ((*entries)[0].dev_major, 8u);
    EXPECT_EQ((*entries)[0].dev_minor, 1u);
}

TEST(ProcSmaps, ParsesCapturedSmaps)
{
    auto entries = parse_smaps(kSmaps);
    ASSERT_TRUE(entries) << entries.error().message();
    ASSERT_EQ(entries->size(), 8u);

    const SmapsEntry& dontfork = (*entries)[0];
    EXPECT_EQ(dontfork.map.start, 0x7f03e09fa000u);
    EXPECT_EQ(dontfork.map.path, "");
    EXPECT_TRUE(dontfork.has_flag("dc"));
    EXPECT_FALSE(dontfork.has_flag("gd"));
    EXPECT_EQ(dontfork.vm_flags,
              (std::vector<std::string> { "rd", "wr", "mr", "mw", "me", "dc", "ac" }));

    const SmapsEntry& zero = (*entries)[1];
    EXPECT_EQ(zero.map.path, "/dev/zero");
    EXPECT_TRUE(zero.map.deleted);
    EXPECT_TRUE(zero.has_flag("sh"));

    const SmapsEntry& anonymous = (*entries)[2];
    EXPECT_EQ(anonymous.rss_kb, 4u);
    EXPECT_EQ(anonymous.anonymous_kb, 4u);
    EXPECT_EQ(anonymous.swap_kb, 0u);

    EXPECT_EQ((*entries)[3].map.path, "/tmp/cap/gone");
    EXPECT_TRUE((*entries)[3].map.deleted);
    EXPECT_EQ((*entries)[4].map.path, "/tmp/cap/with space file");

    const SmapsEntry& stack = (*entries)[6];
    EXPECT_EQ(stack.map.path, "[stack]");
    EXPECT_TRUE(stack.has_flag("gd"));
    EXPECT_EQ(stack.rss_kb, 24u);
    EXPECT_EQ(stack.anonymous_kb, 24u);

    const SmapsEntry& vsyscall = (*entries)[7];
    EXPECT_EQ(vsyscall.vm_flags, (std::vector<std::string> { "ex" }));
}

TEST(ProcSmaps, ReadsSwapAndHugePages)
{
    std::string text = "1000-3000 rw-p 00000000 00:00 0 \n"
                       "Rss:                   4 kB\n"
                       "Anonymous:             8 kB\n"
                       "AnonHugePages:      2048 kB\n"
                       "Swap:                 12 kB\n"
                       "THPeligible:           1\n"
                       "ProtectionKey:         0\n"
                       "NewKernelKey:          some text\n"
                       "VmFlags: rd wr mr mw me ac \n";
    auto entries = parse_smaps(text);
    ASSERT_TRUE(entries) << entries.error().message();
    ASSERT_EQ(entries->size(), 1u);
    EXPECT_EQ((*entries)[0].rss_kb, 4u);
    EXPECT_EQ((*entries)[0].anonymous_kb, 8u);
    EXPECT_EQ((*entries)[0].anon_huge_kb, 2048u);
    EXPECT_EQ((*entries)[0].swap_kb, 12u);
    EXPECT_EQ((*entries)[0].vm_flags.size(), 6u);
}

TEST(ProcSmaps, AttributeBeforeAnyMappingIsAnError)
{
    auto entries = parse_smaps("Rss:  4 kB\n");
    ASSERT_FALSE(entries);
    EXPECT_NE(entries.error().message().find("line 1"), std::string::npos) << entries.error().message();
}

TEST(ProcSmaps, MalformedHeaderIsAnError)
{
    std::string text = "1000-2000 rw-p 00000000 00:00 0\n"
                       "Rss:  4 kB\n"
                       "3000-4000 rw-x 00000000 00:00 0\n";
    auto entries = parse_smaps(text);
    ASSERT_FALSE(entries);
    EXPECT_NE(entries.error().message().find("line 3"), std::string::npos) << entries.error().message();
    EXPECT_NE(entries.error().message().find("rw-x"), std::string::npos);
}

TEST(ProcSmaps, LineWithoutColonIsAnError)
{
    auto entries = parse_smaps("1000-2000 rw-p 00000000 00:00 0\nnonsense\n");
    ASSERT_FALSE(entries);
    EXPECT_NE(entries.error().message().find("line 2"), std::string::npos) << entries.error().message();
}

TEST(ProcMapsLive, OwnMapsContainCodeAndStack)
{
    auto entries = read_maps(::getpid());
    ASSERT_TRUE(entries) << entries.error().message();
    auto code = reinterpret_cast<uint64_t>(&find_path);
    int local = 0;
    auto stack = reinterpret_cast<uint64_t>(&local);
    bool code_found = false;
    for (const MapsEntry& entry : *entries) {
        EXPECT_LT(entry.start, entry.end);
        if (code >= entry.start && code < entry.end) {
            code_found = true;
            EXPECT_TRUE(entry.exec);
            EXPECT_FALSE(entry.path.empty());
        }
    }
    EXPECT_TRUE(code_found);
    // The main thread's stack is [stack]; gtest runs tests on the main thread.
    const MapsEntry* stack_entry = find_path(*entries, "[stack]");
    ASSERT_NE(stack_entry, nullptr);
    EXPECT_GE(stack, stack_entry->start);
    EXPECT_LT(stack, stack_entry->end);
}

TEST(ProcMapsLive, OwnSmapsShowMadvise)
{
    size_t size = 4 * 4096;
    void* region = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(region, MAP_FAILED);
    ASSERT_EQ(::madvise(region, size, MADV_DONTFORK), 0);
    static_cast<char*>(region)[0] = 1;

    auto entries = read_smaps(::getpid());
    ::munmap(region, size);
    ASSERT_TRUE(entries) << entries.error().message();
    auto address = reinterpret_cast<uint64_t>(region);
    auto it = std::ranges::find_if(*entries, [&](const SmapsEntry& entry) {
        return address >= entry.map.start && address < entry.map.end;
    });
    ASSERT_NE(it, entries->end());
    EXPECT_TRUE(it->has_flag("dc"));
    EXPECT_TRUE(it->has_flag("rd"));
    EXPECT_TRUE(it->has_flag("wr"));
    EXPECT_GE(it->rss_kb, 4u);
    EXPECT_GE(it->anonymous_kb, 4u);
}

TEST(ProcMapsLive, MissingProcessNamesThePath)
{
    // Far above any pid_max, so the directory cannot exist.
    auto entries = read_maps(0x7ffffff0);
    ASSERT_FALSE(entries);
    EXPECT_EQ(entries.error().code(), ENOENT);
    EXPECT_NE(entries.error().message().find("open /proc/2147483632/maps"), std::string::npos)
        << entries.error().message();
}

} // namespace
} // namespace cryo::proc
