// `cryo migrate`: move a running tree to another host's
// `cryo page-server --restore`, with as little frozen time as it can.
//
// The source pre-dumps the tree while it runs, round after round, each
// round sending only the pages written since the previous one (the chain
// ../1, ../2, ... on the destination, which keeps each round in its own
// numbered subdirectory). Once a round stores fewer pages than the dirty
// threshold (or the round limit is reached) the tree is frozen for the
// final dump, which sends what changed since the last round. The tree is
// killed once the destination has committed that checkpoint, then the
// destination is asked to restore it and answers whether that worked.
//
// The tree is killed before the restore, not after: on one machine (and
// with the same pids on two hosts) the restored tree needs its pids free.
// The trade-off: if the restore then fails, the source tree is already
// gone; the checkpoint is complete on the destination and
// `cryo restore -D DIR/N` can be run there by hand (the error says which
// N). Any failure before the final commit (a pre-dump, the final dump, a
// wrong key, an unreachable destination) leaves the tree running.
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
