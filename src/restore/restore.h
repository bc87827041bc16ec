// `cryo restore`: bring a checkpointed process tree back to life.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "image/key.h"
#include "net/page_fetch.h"

namespace cryo::restore {

struct RestoreOptions {
    std::string directory;
    bool detach { false };   // -d: return once the tree runs
    std::string pidfile;     // written with the root PID once the tree runs
    bool shell_job { false }; // -j: terminals become cryo's own terminal
    // --inherit-fd fd[N]:ID: the open file the image knows as ID is cryo's
    // own fd N instead of being re-created.
    std::vector<std::string> inherit_fds;
    bool check_files { true };   // refuse open or mapped files changed since the dump
    bool tcp_established { false };   // --tcp-established: restore established TCP connections
    bool display_stats { false }; // print the time of each phase when done
    bool check_cpu { true };      // refuse a CPU that lacks a feature the checkpoint's had
    bool skip_cgroups { false };  // leave the tree in cryo's cgroup (restore/cgroup.h)
    std::optional<image::Key> key; // --key: of an encrypted checkpoint
    bool lazy_pages { false };    // --lazy-pages: large private memory filled after the start (lazy/lazy_pages.h)
    // --page-server with --lazy-pages: the checkpoint is fetched into
    // `directory` through this connection to a `cryo page-server --serve`
    // (or to `cryo migrate --lazy`), but for the pages the lazy-pages
    // server fetches on first touch (lazy/remote.h).
    net::PageFetcher* page_server { nullptr };
    // With --lazy-pages: the connection to a waiting `cryo lazy-pages`
    // (lazy/command.h), told the server's pid once the tree runs; -1: none.
    int lazy_pages_command { -1 };
};

// Verifies the checkpoint, recreates the tree and releases it. Without
// detach, waits for the root process and returns the exit code cryo should
// exit with (its exit status, or 128 + signal). A failure leaves no process
// of the tree behind.
Result<int> run_restore(const RestoreOptions& options);

} // namespace cryo::restore
