// The CPU feature check of restore: a recorded feature this machine lacks is
// named; bits without a name (mitigation flags) are ignored.
#include <gtest/gtest.h>

#include "check/cpu.h"

namespace cryo::check {

TEST(CpuFeatures, ThisMachineSatisfiesItself)
{
    auto current = current_cpu_features();
    EXPECT_FALSE(current.vendor().empty());
    EXPECT_NE(current.leaf1_edx() & (1u << 26), 0u) << "no sse2 on x86-64?";
    EXPECT_TRUE(compare_cpu_features(current, current).has_value());
}

TEST(CpuFeatures, AMissingFeatureIsNamed)
{
    auto current = current_cpu_features();
    current.set_model_name("here");
    current.set_leaf7_edx(current.leaf7_edx() & ~(1u << 24));   // no amx_tile here
    auto recorded = current;
    recorded.set_model_name("there");
    recorded.set_leaf7_edx(recorded.leaf7_edx() | (1u << 24));
    auto result = compare_cpu_features(recorded, current);
    ASSERT_FALSE(result.has_value());
    const auto& message = result.error().message();
    EXPECT_NE(message.find("amx_tile"), std::string::npos) << message;
    EXPECT_NE(message.find("(here)"), std::string::npos) << message;
    EXPECT_NE(message.find("taken on: there"), std::string::npos) << message;
    EXPECT_NE(message.find("--skip-cpu-check"), std::string::npos) << message;
}

TEST(CpuFeatures, UnnamedBitsAreIgnored)
{
    auto current = current_cpu_features();
    current.set_leaf7_edx(current.leaf7_edx() & ~(1u << 10));   // md_clear: a mitigation, not a feature
    auto recorded = current;
    recorded.set_leaf7_edx(recorded.leaf7_edx() | (1u << 10));
    EXPECT_TRUE(compare_cpu_features(recorded, current).has_value());
}

} // namespace cryo::check
