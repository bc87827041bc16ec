// `cryo dump`: checkpoint a process tree into an image directory.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>

#include "base/error.h"

namespace cryo::dump {

struct DumpOptions {
    pid_t pid { 0 };
    std::string directory;
    bool leave_running { false };
    bool sync { true };  // fsync the image files before the tree is killed
    uint64_t ghost_limit { 64ull << 20 };  // most data kept for a deleted open file
    // --external ID: open files whose other end lies outside the tree on
    // purpose ("socket:[INODE]" as /proc/PID/fd shows it, or a path).
    std::set<std::string> externals;
};

// Freezes the tree rooted at options.pid, writes the checkpoint, then kills
// the tree (or resumes it with leave_running). On any failure the tree is
// resumed exactly as it was and no complete-looking image is left.
Result<void> run_dump(const DumpOptions& options);

} // namespace cryo::dump
