// Logging goes through spdlog. The command line sets it up once: messages go
// to stderr, or to the file given with -o, at a level chosen with -v.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

#include "base/error.h"

namespace cryo {

// verbosity: 0 = errors and warnings, 1 = info, 2 = debug, 3+ = trace.
Result<void> setup_logging(int verbosity, const std::string& log_file);
// Writes a final error into the log file, if logging goes to one (the
// command line prints it on stderr itself).
void log_error_to_file(const std::string& message);

} // namespace cryo
