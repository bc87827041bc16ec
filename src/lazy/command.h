// `cryo lazy-pages -D DIR`: CRIU's two-command lazy restore
// (`criu lazy-pages -D DIR &` then `criu restore -D DIR --lazy-pages`).
//
// cryo's restore starts its own lazy-pages server (lazy_pages.h); this
// command only waits for that restore and then follows the server:
// - it registers itself for DIR by listening on the unix socket
//   DIR/lazy-pages.sock (mode 0600), and waits up to --timeout seconds;
// - `cryo restore -D DIR --lazy-pages` without --page-server connects to
//   it (find_registration) and is told the page-server settings it was
//   given (address, port, key file), as if they were on its own command
//   line; the socket is removed as soon as one restore connected, and on
//   every other exit path;
// - the restore passes its end of the connection to the lazy-pages server
//   it forks, and tells the command the server's pid once the tree runs
//   (or that nothing was left lazy); the server writes its final status to
//   the same connection as it exits;
// - the command exits 0 once the server reported that every page is in
//   place (or nothing was lazy), and with an error when the server
//   finished with errors, died without reporting, or the restore failed.
// A socket file nobody listens on (its command is gone) is no registration:
// the restore ignores it, and the next command replaces it.
//
// The messages are text lines: the restore opens with "restore" (a
// connection that does not is another command checking whether this one
// lives, and is closed); the command answers "local" or "page-server",
// "address A", "port P", "key K", then "end"; once the tree runs the
// restore sends "server PID" or "nothing-lazy"; the server "status N".
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/fd.h"

namespace cryo::lazy {

// --page-server --address A --port P [--key K] of `cryo lazy-pages`.
struct PageServerRequest {
    std::string address;
    uint16_t port { 0 };
    std::string key;   // path of the key file, absolute; empty: no key
};

struct LazyPagesOptions {
    std::string directory;
    std::optional<PageServerRequest> page_server;
    std::chrono::seconds timeout { 600 };
};

// Registers, waits for the restore and follows its server (see above).
Result<void> run_lazy_pages(const LazyPagesOptions& options);

// A `cryo lazy-pages` waiting for `directory`, as a restore finds it.
struct Registration {
    UniqueFd connection;   // close-on-exec
    std::optional<PageServerRequest> page_server;
};

// The waiting command of `directory`, if there is one; a stale socket
// (nobody listening) is none.
Result<std::optional<Registration>> find_registration(const std::string& directory);

// The restore's word to the waiting command once the tree runs: the pid of
// the lazy-pages server, or 0 when nothing was left lazy. Best effort.
void tell_restored(int connection, pid_t server);

// The server's word as it exits (0: every page in place). Best effort.
void tell_status(int connection, int status);

} // namespace cryo::lazy
