// Robustness of the /proc parsers against arbitrary input.
//
// A parser may be handed anything: a file from a newer kernel, a truncated
// read, text an attacker controls (a comm or a file name). The only
// acceptable outcomes are a value or an error; never a crash, a hang or
// undefined behaviour. These tests take real /proc text of this process as
// seeds and feed every parser truncations, byte flips, spliced lines and
// random bytes. They are a cheap stand-in for the fuzzing planned later and
// are most useful in a CRYO_SANITIZE build, where UB turns into a failure.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "base/fd.h"
#include "proc/fdinfo.h"
#include "proc/maps.h"
#include "proc/stat.h"
#include "proc/status.h"

namespace cryo::proc {
namespace {

// Runs every parser on `text`; the results are discarded, only surviving
// matters. An error must still produce a message.
void parse_everything(std::string_view text)
{
    auto check = [](const auto& result) {
        if (!result) {
            EXPECT_FALSE(result.error().message().empty());
        }
    };
    check(parse_maps(text));
    check(parse_smaps(text));
    check(parse_stat(text));
    check(parse_status(text));
    check(parse_fdinfo(text));
}

std::vector<std::string> live_seeds()
{
    std::vector<std::string> seeds;
    for (const char* path : { "/proc/self/maps", "/proc/self/smaps", "/proc/self/stat", "/proc/self/status",
                              "/proc/self/fdinfo/0" }) {
        auto text = read_text_file(path);
        EXPECT_TRUE(text) << text.error().message();
        if (text)
            seeds.push_back(std::move(*text));
    }
    return seeds;
}

TEST(ProcRobustness, EveryTruncation)
{
    for (const std::string& seed : live_seeds()) {
        // smaps is large; every prefix of its first 4 KiB (several
        // mappings) is enough.
        size_t limit = std::min<size_t>(seed.size(), 4096);
        for (size_t length = 0; length <= limit; ++length)
            parse_everything(std::string_view(seed).substr(0, length));
    }
}

TEST(ProcRobustness, ByteFlips)
{
    std::mt19937 random(12345);
    const char interesting[] = { '\0', '\n', ' ', '\t', ':', '-', '(', ')', 'f', '9', '0', '\xff', 'k' };
    for (const std::string& seed : live_seeds()) {
        std::string text = seed.substr(0, 4096);
        if (text.empty())
            continue;
        for (int round = 0; round < 2000; ++round) {
            std::string mutated = text;
            int flips = 1 + static_cast<int>(random() % 4);
            for (int i = 0; i < flips; ++i) {
                size_t at = random() % mutated.size();
                if (random() % 2)
                    mutated[at] = interesting[random() % sizeof(interesting)];
                else
                    mutated[at] = static_cast<char>(random() & 0xff);
            }
            parse_everything(mutated);
        }
    }
}

TEST(ProcRobustness, SplicedLines)
{
    // Lines of one file dropped into another (an smaps attribute in maps, a
    // maps line in status, ...), so each parser sees the others' shapes.
    std::vector<std::string> lines;
    for (const std::string& seed : live_seeds()) {
        size_t start = 0;
        while (start < seed.size() && lines.size() < 2000) {
            size_t end = seed.find('\n', start);
            if (end == std::string::npos)
                end = seed.size();
            lines.push_back(seed.substr(start, end - start));
            start = end + 1;
        }
    }
    ASSERT_FALSE(lines.empty());
    std::mt19937 random(777);
    for (int round = 0; round < 3000; ++round) {
        std::string text;
        int count = 1 + static_cast<int>(random() % 6);
        for (int i = 0; i < count; ++i)
            text += lines[random() % lines.size()] + "\n";
        parse_everything(text);
    }
}

TEST(ProcRobustness, RandomBytes)
{
    std::mt19937 random(4242);
    const std::string alphabet = "0123456789abcdefABCDEF-: ()\t\nrwxps[]kBVmFlags";
    for (int round = 0; round < 5000; ++round) {
        std::string text(random() % 300, '\0');
        bool printable = round % 2 == 0;
        for (char& c : text)
            c = printable ? alphabet[random() % alphabet.size()] : static_cast<char>(random() & 0xff);
        parse_everything(text);
    }
}

TEST(ProcRobustness, ExtremeNumbers)
{
    // Values at and past the limits of each field's type must be either
    // parsed exactly or refused, never wrapped.
    auto maps = parse_maps("0-ffffffffffffffff rw-p ffffffffffffffff ffffffff:ffffffff 18446744073709551615\n");
    ASSERT_TRUE(maps) << maps.error().message();
    EXPECT_EQ((*maps)[0].end, UINT64_MAX);
    EXPECT_EQ((*maps)[0].dev_major, UINT32_MAX);
    EXPECT_EQ((*maps)[0].inode, UINT64_MAX);
    EXPECT_FALSE(parse_maps("0-1 rw-p 0 100000000:0 0\n"));         // major over 32 bits
    EXPECT_FALSE(parse_maps("0-1 rw-p 0 0:0 18446744073709551616\n")); // inode over 64 bits

    EXPECT_FALSE(parse_fdinfo("mnt_id:\t2147483648\n"));
    EXPECT_TRUE(parse_fdinfo("mnt_id:\t2147483647\n"));
    EXPECT_FALSE(parse_status("Threads:\t2147483648\n"));
    EXPECT_FALSE(parse_status("Tgid:\t-2147483649\n"));
}

TEST(ProcRobustness, HugeLine)
{
    std::string line(1 << 20, 'a');
    parse_everything(line);
    parse_everything("1000-2000 rw-p 0 0:0 0 /" + line + "\n");
    auto status = parse_status("Name:\t" + line + "\n");
    ASSERT_TRUE(status);
    EXPECT_EQ(status->name.size(), line.size());
    // Error messages quote a bounded prefix, not a megabyte.
    auto maps = parse_maps(line);
    ASSERT_FALSE(maps);
    EXPECT_LT(maps.error().message().size(), 1000u);
}

} // namespace
} // namespace cryo::proc
