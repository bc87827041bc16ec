// `cryo show`: a readable report of a checkpoint directory.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "base/error.h"
#include "image/key.h"

namespace cryo::inspect {

struct ShowOptions {
    std::string directory;
    std::string format { "text" };   // "text" or "json"
    pid_t pid { 0 };                 // only this process (0: all)
    // Sections; none set means all but the environment.
    bool tree { false };
    bool files { false };
    bool memory { false };
    bool stats { false };
    bool environment { false };      // also each process's environment
    std::optional<image::Key> key;   // --key: of an encrypted checkpoint
};

// Verifies the checkpoint and prints the process tree, each process's
// command line, credentials, threads, memory and open files, and the dump
// statistics to stdout, as text or as one JSON document
// (proto/report.proto).
Result<void> run_show(const ShowOptions& options);

} // namespace cryo::inspect
