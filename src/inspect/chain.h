// The parent chain of an incremental checkpoint, for the inspection
// commands: `cryo mem`, `cryo diff` and `cryo show` read pages that live in
// ancestors (PageRun.ancestor) from there, and `cryo check -D DIR` verifies
// a whole chain.
//
// Ancestors are opened the way the checkpoint itself was: verified (every
// file's size and checksum, and each parent link: the XXH3 of the parent's
// manifest the child recorded, image/chain.h) or, with --no-verify, only
// found by following the parent names. Chains are never encrypted (an
// incremental dump refuses --encrypt), so ancestors are opened without a key.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "inspect/checkpoint.h"

namespace cryo::inspect {

// Every ancestor of `checkpoint`, parent first (none without a manifest or
// a parent).
Result<std::vector<Checkpoint>> open_ancestors(const Checkpoint& checkpoint, Verify verify);

// A checkpoint `cryo dedup` thinned out for a later one reads as zeros
// where pages were punched: says so on stderr.
void warn_if_deduped(const Checkpoint& checkpoint);

// `cryo check -D DIR`: verifies DIR and every ancestor and prints one line
// per checkpoint of the chain; fails naming the first one missing, damaged
// or not the one recorded.
Result<void> run_check_chain(const std::string& directory);

} // namespace cryo::inspect
