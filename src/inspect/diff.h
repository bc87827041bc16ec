// `cryo diff DIR1 DIR2`: what changed between two checkpoints of the same
// tree (typically taken with --leave-running some time apart).
//
// Processes are matched by pid, mappings by start address, descriptors by
// number; open files are compared by what they are (kind, path, position,
// flags), not by their id in files.img, which is assigned per dump. For a
// mapping in both checkpoints the pages of the common range are compared
// one by one: a page differs when its content differs, where a page not
// stored in an anonymous mapping is zeros and an unmodified file page (in
// neither image) counts as equal.
#pragma once

#include <optional>
#include <string>

#include "base/error.h"
#include "inspect/checkpoint.h"

namespace cryo::inspect {

struct DiffOptions {
    std::string before;
    std::string after;
    Verify verify { Verify::Checksums };
    std::optional<image::Key> key;   // --key: of encrypted checkpoints (one key for both)
};

Result<void> run_diff(const DiffOptions& options);

} // namespace cryo::inspect
