// The source's side of `cryo migrate --lazy`: the tree's pages served
// straight from its frozen memory, never written to a file.
//
// The final dump (dump::DumpOptions::leave_pages_in_memory) scans each
// process's memory as a dump does (PAGEMAP_SCAN: present or swapped
// private pages, every page of shared memory) but copies nothing: it lists
// the runs in the page map at offsets past the end of what the page file
// holds (only the data of deleted and memfd files and of secret memory,
// which is not at an address of the process). The checkpoint served to the
// destination names each page file with that larger size, so the
// destination sees an ordinary checkpoint and fetches byte ranges of its
// page files as from `cryo page-server --serve` (net/page_fetch.h); a range
// past the stored bytes is read, at the moment it is asked for, from the
// process's memory at the address the page map gives. The tree stays frozen
// until the destination says every page is in place, so the memory is what
// the dump scanned.
//
// Memory is read as a dump reads it (mem/memory_reader.h): a page shared
// copy-on-write is never unshared, and the tree may run on after a failed
// migration (mem::Target::Frozen).
//
// Integrity: such a page file cannot have chunk checksums (or a checksum
// at all) without reading every page first, which is what this avoids. The
// served manifest lists the page files without them; the frames' tags
// (XXH3, or HMAC with a key: net/page_protocol.h) protect the bytes on the
// wire, and the destination's lazy restore from a page server does not
// check page files against the manifest anyway (lazy/remote.h).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "mem/memory_reader.h"
#include "mm.pb.h"
#include "net/page_protocol.h"
#include "net/page_server.h"

namespace cryo::migrate {

class LivePages {
public:
    // dump::DumpOptions::leave_pages_in_memory.
    Result<void> record(pid_t pid, pid_t proc_pid, std::vector<image::Vma>& vmas, uint64_t offset,
                        image::PageMap& map);
    // Bytes of memory listed in the page maps, served from the tree.
    uint64_t listed_bytes() const { return m_listed_bytes; }

    // Once the dump committed `directory`: the manifest the destination
    // gets (page files at their full size, without checksums).
    Result<void> open(const std::string& directory);
    const std::string& manifest() const { return m_manifest; }

    // Answers the destination's Fetch frames until it says Done, as
    // net::ServedCheckpoint::serve() does. A fault injected at a fetch
    // (base/fault.h) breaks the connection, as a network failure would.
    Result<net::ServeStats> serve(net::Channel& channel, const std::function<void()>& on_running);

private:
    // Page file bytes [offset, offset + length) are the memory at `address`.
    struct Run {
        uint64_t offset;
        uint64_t length;
        uint64_t address;
    };
    // A file of the checkpoint; a page file also has runs in memory.
    struct ServedFile {
        UniqueFd stored;   // the file in the checkpoint
        uint64_t stored_size { 0 };
        uint64_t size { 0 };   // with the runs
        std::optional<mem::MemoryReader> memory;   // of the frozen process
        std::map<uint64_t, Run> runs;   // by offset
    };

    Result<void> send_range(net::Channel& channel, const std::string& name, ServedFile& file, uint64_t offset,
                            uint64_t length);

    std::map<std::string, ServedFile> m_files;   // by name
    UniqueFd m_directory;
    std::string m_manifest;
    uint64_t m_listed_bytes { 0 };
    std::vector<std::byte> m_buffer;
};

} // namespace cryo::migrate
