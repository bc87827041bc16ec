// `cryo page-server`: receives checkpoints sent by `cryo dump/pre-dump
// --page-server` and writes them into its directory exactly as a local dump
// would (files 0600, through image/writer.h).
//
// Unlike CRIU's page server, which receives page data only, cryo's receives
// every file of the checkpoint, so the server's directory is a complete
// checkpoint that `cryo restore -D DIR` uses directly. The manifest comes
// last: the server checks every file it received (name, size, XXH3) against
// it and only then writes it, atomically. A connection that breaks, a file
// that does not match, or a client without the key leaves no manifest, and
// the files of that session are removed.
//
// A parent checkpoint (--prev-images-dir of the sender) is resolved here,
// against this server's directory, and its page maps are sent back so the
// sender can store only what changed: keep a chain's checkpoints side by
// side on the server (pre-dump into /srv/ck/1, dump into /srv/ck/2 with
// --prev-images-dir ../1), as a local chain would be.
//
// With --serve the server sends instead: a lazy restore on another host
// fetches the metadata and the pages it needs from a checkpoint here.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "image/key.h"
#include "image/reader.h"
#include "net/page_fetch.h"
#include "net/page_protocol.h"

namespace cryo::net {

struct PageServerOptions {
    std::string directory;
    std::string address;
    uint16_t port { 0 };
    std::optional<image::Key> key;   // without: any client is accepted (trusted networks only)
    bool once { false };             // exit after the first checkpoint (or failed attempt)
    bool sync { true };
    // --restore (the destination of `cryo migrate`, migrate/migrate.h): each
    // checkpoint goes into its own numbered subdirectory (DIR/1, DIR/2, ...,
    // so a chain's parents are ../N); a client's restore request restores
    // the last one with this function, its answer or error goes back to the
    // client, and the server exits.
    std::function<Result<std::string>(const std::string& checkpoint)> restore;
    // With --restore, for `cryo migrate --lazy`: restores lazily into
    // `checkpoint` (DIR/N) what the client serves through `fetcher`.
    std::function<Result<std::string>(const std::string& checkpoint, PageFetcher& fetcher)> restore_lazily;
    // --serve: the other way round; DIR holds a checkpoint (verified when
    // the server starts) and the server sends it, file by file and range
    // by range, to lazy restores on other hosts (net/page_fetch.h) until
    // killed (or the first one ends, with `once`). It receives nothing.
    bool serve { false };
};

// A checkpoint served to lazy restores (page-server --serve; `cryo
// migrate --lazy` serves its own from memory, migrate/live_pages.h).
struct ServeStats {
    uint64_t fetches { 0 };
    uint64_t bytes { 0 };
};

class ServedCheckpoint {
public:
    enum class Verify { Checksums, No };
    // Not compressed nor encrypted; an incremental checkpoint's ancestors
    // are served too, as `fetched-parent/NAME`, `fetched-parent/
    // fetched-parent/NAME`, ... (image/chain.h). With Verify::Checksums
    // every file of every one is checked against its manifest first.
    static Result<ServedCheckpoint> open(const std::string& directory, Verify verify);

    // The manifest file as stored (the first thing a client gets, in a
    // Ready frame).
    const std::string& manifest() const { return m_manifest; }
    // Answers the client's Fetch frames until it says Done (every page in
    // place); an Error from it, a broken connection or one closed without
    // Done is a failure. `on_running` is called when the client says the
    // restored tree runs.
    Result<ServeStats> serve(Channel& channel, const std::function<void()>& on_running) const;

private:
    ServedCheckpoint() = default;
    Result<void> add_ancestor(const image::ImageReader& ancestor, const std::string& prefix);
    Result<UniqueFd> open_served(const std::string& name) const;
    UniqueFd m_directory;
    std::vector<UniqueFd> m_ancestors;   // ancestor N at [N - 1]
    std::string m_manifest;
    std::map<std::string, uint64_t> m_sizes;   // the files the manifest lists
};
using Verify = ServedCheckpoint::Verify;

// Listens and receives checkpoints until killed (or one, with `once`). A
// failed session is reported and, without `once`, the server goes on.
Result<void> run_page_server(const PageServerOptions& options);

} // namespace cryo::net
