// /proc/meminfo fields: found by exact name, in bytes; anything else is
// nothing rather than a guess.
#include <gtest/gtest.h>

#include "proc/meminfo.h"

namespace cryo::proc {

constexpr std::string_view kSample = "MemTotal:       24683652 kB\n"
                                     "MemFree:        22787204 kB\n"
                                     "MemAvailable:   24217428 kB\n"
                                     "Dirty:               84 kB\n"
                                     "Writeback:            0 kB\n"
                                     "WritebackTmp:         7 kB\n"
                                     "HugePages_Total:       0\n";

TEST(ProcMeminfo, FieldsAreReadInBytes)
{
    EXPECT_EQ(parse_meminfo_field(kSample, "MemAvailable"), uint64_t { 24217428 } * 1024);
    EXPECT_EQ(parse_meminfo_field(kSample, "Dirty"), uint64_t { 84 } * 1024);
    EXPECT_EQ(parse_meminfo_field(kSample, "Writeback"), 0u);
    EXPECT_EQ(parse_meminfo_field(kSample, "WritebackTmp"), uint64_t { 7 } * 1024);
}

TEST(ProcMeminfo, MissingOrOddFieldsAreNothing)
{
    EXPECT_FALSE(parse_meminfo_field(kSample, "Mem").has_value());
    EXPECT_FALSE(parse_meminfo_field(kSample, "Shmem").has_value());
    EXPECT_FALSE(parse_meminfo_field(kSample, "HugePages_Total").has_value());   // a count, not kB
    EXPECT_FALSE(parse_meminfo_field("Dirty: lots kB\n", "Dirty").has_value());
    EXPECT_FALSE(parse_meminfo_field("", "Dirty").has_value());
}

TEST(ProcMeminfo, ThisMachineHasItsCounters)
{
    EXPECT_TRUE(read_meminfo_field("MemAvailable").has_value());
    EXPECT_TRUE(read_meminfo_field("Dirty").has_value());
    EXPECT_TRUE(read_meminfo_field("Writeback").has_value());
}

} // namespace cryo::proc
