// `cryo migrate`: move a running tree to another host's
// `cryo page-server --restore`, with as little frozen time as it can.
//
// The source pre-dumps the tree while it runs, round after round, each
// round sending only the pages written since the previous one (the chain
// ../1, ../2, ... on the destination, which keeps each round in its own
// numbered subdirectory). Once a round stores fewer pages than the dirty
// threshold (or the round limit is reached) the tree is frozen for the
// final dump, which sends what changed since. The tree stays frozen while
// the destination restores that checkpoint; once the destination answers
// that the restored tree runs, the source is killed. If the destination
// answers with an error, the connection breaks or it does not answer
// within the peer timeout, the source tree runs on exactly as after
// `dump --leave-running` and migrate fails with the destination's reason.
// Any failure before (a pre-dump, the final dump, a wrong key, an
// unreachable destination) leaves the tree running as well.
//
// The restored tree has the same pids as the source, which stays frozen
// until then: the destination must have pids of its own (another host, or
// another PID namespace on this one). A destination that restored but
// whose answer is lost (the connection breaks just then) cannot be told
// from one that failed: the source then runs on too, and both run.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/error.h"
#include "net/page_client.h"

namespace cryo::migrate {

struct MigrateOptions {
    pid_t pid { 0 };
    net::PageServerAddress destination;
    int max_rounds { 5 };                // pre-dump rounds at most before the final dump (0: none)
    uint64_t dirty_threshold { 1024 };   // stop pre-dumping once a round stores fewer pages
};

// Migrates the tree and prints the report (rounds, pages and bytes per
// round, frozen time, total time).
Result<void> run_migrate(const MigrateOptions& options);

// The destination's side (page-server --restore): restores `checkpoint`
// detached and says so.
Result<std::string> restore_received(const std::string& checkpoint);

} // namespace cryo::migrate
