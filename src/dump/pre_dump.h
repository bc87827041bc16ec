// `cryo pre-dump`: copy a tree's memory while it runs, for a later dump.
//
// The tree is frozen only to find its mappings, arm (or re-arm) the
// dirty-page tracking and decide which pages this round stores (those
// written since the previous round, see dump/incremental.h); then it runs
// on while cryo copies those pages through /proc/PID/mem. A page written
// during the copy is already marked written again, so the next round
// stores it again: a torn copy is never used. A pre-dump holds memory only
// (tree.img, mm-PID.img with the mappings, page maps and page files, and
// the manifest, which names the tracker process that keeps the tracking
// alive until the next pre-dump or dump takes it over); it cannot be
// restored itself, only serve as the parent of a dump.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "base/error.h"
#include "net/page_client.h"
#include "stats.pb.h"

namespace cryo::dump {

struct PreDumpOptions {
    pid_t pid { 0 };
    std::string directory;
    std::string prev_images_dir;   // relative to `directory`, or absolute; may be empty
    bool sync { true };
    bool display_stats { false };
    std::chrono::seconds tracker_timeout { 600 };
    std::optional<net::PageServerAddress> page_server;   // as in DumpOptions
    image::DumpStats* stats_out { nullptr };              // as in DumpOptions
};

Result<void> run_pre_dump(const PreDumpOptions& options);

} // namespace cryo::dump
