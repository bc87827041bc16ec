// `cryo dump`: checkpoint a process tree into an image directory.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "image/key.h"
#include "mm.pb.h"
#include "net/page_client.h"
#include "stats.pb.h"

namespace cryo::dump {

struct DumpOptions {
    pid_t pid { 0 };
    std::string directory;
    bool leave_running { false };
    bool sync { true };  // fsync the image files before the tree is killed
    uint64_t ghost_limit { 64ull << 20 };  // most data kept for a deleted open file
    std::vector<std::string> externals;    // --external: open files outside the tree on purpose
    bool external_unix_peers { false };    // --ext-unix-sk: unix sockets with a peer outside count as --external
    bool tcp_established { false };        // --tcp-established: checkpoint established TCP connections
    bool display_stats { false };          // print the statistics table when done
    int compression_level { 0 };           // --compress: zstd level of the page files (0: none)
    std::optional<image::Key> encrypt_key; // --encrypt: seal every file with this key
    // Incremental dumps (dump/incremental.h): the previous checkpoint,
    // relative to `directory`; --track-mem keeps tracking writes for a next
    // dump (with leave_running).
    std::string prev_images_dir;
    bool track_mem { false };
    std::chrono::seconds tracker_timeout { 600 };
    // --page-server: every file goes to this server instead of `directory`.
    std::optional<net::PageServerAddress> page_server;
    image::DumpStats* stats_out { nullptr };   // filled with the statistics when done (cryo migrate)
    // Run once the checkpoint is committed, with the tree still frozen
    // (cryo migrate: the destination restores it meanwhile). If it fails,
    // the tree runs on exactly as with leave_running and the dump fails
    // with its error; if it succeeds, the tree is killed (unless
    // leave_running).
    std::function<Result<void>()> before_kill;
    // cryo migrate --lazy: when set, the pages of the tree's memory are not
    // copied. For each process (`pid`, seen as `proc_pid` here) this lists
    // them in `map` at page-file offsets from `offset` on, past the bytes
    // the page file holds, and sets each VMA's stored_bytes; whoever set it
    // reads them from the tree, still frozen, in before_kill
    // (migrate/live_pages.h). Plain checkpoints only (no parent, not sent
    // to a page server, neither compressed nor encrypted).
    std::function<Result<void>(pid_t pid, pid_t proc_pid, std::vector<image::Vma>& vmas, uint64_t offset,
                               image::PageMap& map)>
        leave_pages_in_memory;
};

// Freezes the tree rooted at options.pid, writes the checkpoint, then kills
// the tree (or resumes it with leave_running). On any failure the tree is
// resumed exactly as it was and no complete-looking image is left.
Result<void> run_dump(const DumpOptions& options);

// The statistics a dump wrote (stats-dump.img) as a table.
std::string format_dump_stats(const image::DumpStats& stats);

} // namespace cryo::dump
