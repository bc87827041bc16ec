// The manifest fields every checkpoint carries (tool, time, host, kernel,
// root pid, CPU features), for dump and pre-dump alike; the writer adds
// the file list when it commits.
#pragma once

#include <sys/types.h>

#include "manifest.pb.h"

namespace cryo::dump {

image::Manifest describe_checkpoint(pid_t root_pid);

} // namespace cryo::dump
