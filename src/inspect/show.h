// `cryo show`: a readable report of a checkpoint directory.
#pragma once

#include <string>

#include "base/error.h"

namespace cryo::inspect {

struct ShowOptions {
    std::string directory;
};

// Verifies the checkpoint and prints the process tree, each process's
// threads, memory and open files to stdout.
Result<void> run_show(const ShowOptions& options);

} // namespace cryo::inspect
