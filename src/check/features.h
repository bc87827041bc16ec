// `cryo check`: which of the kernel features cryo relies on this machine
// offers. Each probe tries the feature for real (in a throwaway child
// process where it needs one) rather than trusting version numbers.
#pragma once

#include <string>
#include <vector>

namespace cryo::check {

enum class Need { Required, Optional };

struct FeatureResult {
    std::string name;     // e.g. "clone3 set_tid"
    Need need { Need::Required };
    bool present { false };
    std::string detail;   // why not, or what was found
};

std::vector<FeatureResult> probe_features();

} // namespace cryo::check
