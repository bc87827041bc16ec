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
//
// With --lazy (post-copy) there are no pre-dump rounds: the final dump
// writes the checkpoint's metadata into a work directory on the source
// (not synced; the memory stays in the frozen tree, live_pages.h) and,
// with the tree still frozen, serves it over the connection to the
// destination, which restores it lazily (as
// `restore --lazy-pages --page-server`, lazy/remote.h): the restored tree
// runs as soon as its metadata and a few pages are there, and its
// lazy-pages server fetches the rest on first touch and in the
// background. The source stays frozen until that server says every page
// is in place, then is killed; if the destination fails, or the
// connection breaks before that (the destination's tree is then killed by
// its lazy-pages server, which cannot get its pages any more), the source
// runs on. The work directory is removed at the end either way.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/error.h"
#include "net/page_client.h"
#include "net/page_fetch.h"

namespace cryo::migrate {

struct MigrateOptions {
    pid_t pid { 0 };
    net::PageServerAddress destination;
    int max_rounds { 5 };                // pre-dump rounds at most before the final dump (0: none)
    uint64_t dirty_threshold { 1024 };   // stop pre-dumping once a round stores fewer pages
    bool lazy { false };                 // --lazy: post-copy (see above)
    std::string work_directory { "/var/tmp" };   // --lazy: where the source's metadata is written
};

// Migrates the tree and prints the report (rounds, pages and bytes per
// round, frozen time, total time).
Result<void> run_migrate(const MigrateOptions& options);

// The destination's side (page-server --restore): restores `checkpoint`
// detached and says so.
Result<std::string> restore_received(const std::string& checkpoint);

// The destination's side of `migrate --lazy`: restores into `checkpoint`,
// detached and lazily, what the source serves through `fetcher`.
Result<std::string> restore_lazily(const std::string& checkpoint, net::PageFetcher& fetcher);

} // namespace cryo::migrate
