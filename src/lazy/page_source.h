// Where the lazy-pages server (and cryo, for the few pages it fills itself
// before the server starts) reads the pages of lazy memory: the page files
// of a local checkpoint, or a `cryo page-server --serve` on another host
// that has the checkpoint (net/page_fetch.h).
//
// The pending ranges (lazy/pending.h) always name a local page file
// descriptor and an offset in it. For a remote checkpoint that file is the
// local copy `restore --page-server` made, which holds only the pages the
// restore fills itself (lazy/remote.h): each descriptor is mapped to the
// name of the file on the server, and the bytes are fetched from there.
// Once a fetch failed (the connection broke, timed out, or the server
// refused) every later read fails with the same reason: the framing cannot
// be trusted any more, and the server kills a process rather than give it
// zeros.
//
// A local page file whose manifest record has chunk checksums
// (ManifestFile.chunk_xxh3), the last checkpoint's or an ancestor's, is not
// verified whole before a lazy restore:
// read() checks each chunk the first time it reads from it, before any of
// its bytes is handed out, and refuses a chunk that does not match (the
// error names the file and the chunk). The chunk table came with the
// manifest, which the restore verified.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "manifest.pb.h"
#include "net/page_fetch.h"

namespace cryo::lazy {

class PageSource {
public:
    // The page files themselves.
    PageSource() = default;
    // The page server behind `fetcher`; `names` maps each local page file
    // descriptor to the name of the file there.
    PageSource(net::PageFetcher& fetcher, std::map<int, std::string> names)
        : m_fetcher(&fetcher), m_names(std::move(names))
    {
    }

    // `out.size()` bytes at `offset` of page file `fd`.
    Result<void> read(int fd, std::span<std::byte> out, uint64_t offset);

    // Local page file `fd` (`path` in errors) is checked chunk by chunk
    // against `record`'s chunk checksums as it is read; `verified` chunks
    // (when not empty, one flag per chunk) were checked already.
    void check_chunks(int fd, std::string path, const image::ManifestFile& record, std::vector<bool> verified = {});

    // The connection to the page server, -1 for local files.
    int connection() const { return m_fetcher ? m_fetcher->fd() : -1; }
    bool remote() const { return m_fetcher != nullptr; }
    // Tells the page server the tree runs, and at the end whether every
    // page is in place (net/page_fetch.h); nothing for local files.
    void announce_running();
    void finish(bool failed);
    // Fetches asked from the page server so far.
    uint64_t requests() const { return m_fetcher ? m_fetcher->requests() : 0; }

private:
    struct ChunkTable {
        std::string path;
        image::ManifestFile record;
        std::vector<bool> verified;
    };
    Result<void> verify_chunks(int fd, ChunkTable& table, uint64_t offset, uint64_t length);

    net::PageFetcher* m_fetcher { nullptr };   // the restore's, copied into the forked server
    std::map<int, std::string> m_names;
    std::optional<Error> m_broken;
    std::map<int, ChunkTable> m_chunks;   // by page file descriptor
    std::vector<std::byte> m_chunk_buffer;
};

} // namespace cryo::lazy
