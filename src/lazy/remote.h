// Lazy restore from another host: `cryo restore -D DIR --lazy-pages
// --page-server --address A --port P [--key KEYFILE]`, with
// `cryo page-server -D CHECKPOINT --serve` on the host that has the
// checkpoint (net/page_server.h).
//
// Before anything else, restore fetches the checkpoint into DIR: every
// metadata file whole (each checked against the manifest's size and XXH3),
// and of each page file only what the restore fills itself. The pages of
// the VMAs the lazy-pages server may fill (mem::lazy_candidate, and not
// shared copy-on-write between a parent and a child, whose restorers fill
// them) are left out: the page file in DIR has their place as a hole. The
// manifest written in DIR is the server's, so the holes make a plain
// restore of DIR refuse it as damaged; the lazy restore skips the checksum
// of page files, whose bytes came over the authenticated connection from a
// server that verified them. The connection stays open: the lazy-pages
// server fetches the missing pages through it (lazy/page_source.h).
//
// An incremental checkpoint comes with its ancestors, which the server
// lists as `fetched-parent/NAME`, `fetched-parent/fetched-parent/NAME`, ...
// They are fetched under those very paths in DIR, each parent inside its
// child, manifests as the server has them (each checked against the
// checksum its child recorded); image/chain.h resolves a parent from
// `fetched-parent/` first, so the chain holds in DIR without rewriting a
// manifest. Of an ancestor's page files only the runs the last
// checkpoint's page maps read from it outside the lazy VMAs are fetched.
//
// Which VMAs are lazy is decided for good only while each process is
// rebuilt; one that was left out but is filled by the restore after all
// would get the holes' zeros, so that stops the restore (check_left_out).
#pragma once

#include <sys/types.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "net/page_client.h"
#include "net/page_fetch.h"

namespace cryo::lazy {

struct RemoteCheckpoint {
    std::map<pid_t, std::set<uint64_t>> left_out;   // by pid: starts of the VMAs whose pages were not fetched
    uint64_t fetched_bytes { 0 };
};

// Fetches the checkpoint `fetcher` is connected to into `directory` (see
// above).
Result<RemoteCheckpoint> fetch_checkpoint(net::PageFetcher& fetcher, const std::string& directory);

// Every VMA of `pid` left out must be one the lazy-pages server fills.
Result<void> check_left_out(const RemoteCheckpoint& remote, pid_t pid, const std::vector<uint64_t>& lazy_vmas);

} // namespace cryo::lazy
