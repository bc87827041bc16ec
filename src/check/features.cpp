#include "check/features.h"
namespace cryo::check {
std::vector<FeatureResult> probe_features() { return {}; }
}
