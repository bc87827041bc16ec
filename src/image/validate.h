// Checks of what the memory images claim, made before anything trusts them.
//
// A page map is a list of runs (address, page count, offset in the page
// file). Restore reads each run into the new process with preadv(), and
// `cryo mem`/`cryo diff` read them into fixed buffers; both call these
// checks first, so a hostile page map is refused before any process exists
// or any read is made: no run outside the page file, no arithmetic that
// wraps, no overlap between runs, no mapping that ends before it starts.
// Nothing here allocates in proportion to a number read from a file.
#pragma once

#include <span>

#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "manifest.pb.h"
#include "fds.pb.h"
#include "mm.pb.h"
#include "tree.pb.h"

namespace cryo::image {

// Past the largest user address of x86_64 with 5-level paging. The
// [vsyscall] page (0xffffffffff600000) lies above it and is a mapping like
// any other, but no run may be there: it holds no stored pages.
inline constexpr uint64_t kUserAddressLimit = 1ull << 57;

// Every mapping of `memory`: page-aligned start < end, and no two overlap.
Result<void> check_mappings(const MemoryImage& memory);

// Every run of `map`: page-aligned address, at least one page, below
// kUserAddressLimit without wrapping, inside [0, page_file_size) of the page
// file (named `page_file` in errors); no two runs overlap. Errors name the run ("run 3 (0x7f..., 2 pages
// at offset 0x2000): ...").
// A run with `ancestor` N > 0 (incremental checkpoints) is checked against
// ancestor_sizes[N - 1] instead, the size of pages-PID.img of the Nth
// checkpoint up the chain; with fewer ancestors known it is refused.
Result<void> check_page_map(const PageMap& map, std::string_view page_file, uint64_t page_file_size,
                            std::span<const uint64_t> ancestor_sizes = {});

// Every run of `map` lies inside one mapping of `memory` (the dump stores
// only pages of mappings, run by run within a mapping). Call after
// check_mappings() and check_page_map().
Result<void> check_runs_in_mappings(const PageMap& map, const MemoryImage& memory);

// The chain fields of a manifest: `parent` and `deduped_by` (paths
// relative to the checkpoint) are at most 4096 bytes, without NUL bytes,
// and a parent comes with the checksum of its manifest.
Result<void> check_chain_fields(const Manifest& manifest);

// The chunk checksums of a manifest file record: none, or a power-of-two
// chunk size from kMinPageChunkSize to kMaxPageChunkSize and exactly one
// checksum per chunk of the (untransformed) file.
Result<void> check_chunk_table(const ManifestFile& file);

// The UTS and IPC namespaces of `tree` (proto/namespaces.proto): each
// listed once with a known kind, every process's namespace listed, host
// and domain names and sysctls the kernel takes (sysctl names only from
// the IPC namespace's own files: a checkpoint never picks which /proc/sys
// file a restore writes), System V objects within the kernel's limits.
Result<void> check_namespaces(const ProcessTree& tree);

// Every System V attachment of `memory` (the process `entry` of `tree`)
// names a segment the checkpoint holds, in the process's IPC namespace,
// of that size: never one of cryo's that the tree did not have.
Result<void> check_sysv_attachments(const ProcessTree& tree, const ProcessEntry& entry, const MemoryImage& memory);

// Every IP socket of `files`: a known family, type and protocol, addresses
// of the family's size, ports below 65536, TCP state and options in range,
// queues of at most 64 MiB (and the unsent part inside the send queue),
// datagrams no larger than an IP datagram. Errors name the file id.
Result<void> check_inet_sockets(const FileTable& files);

} // namespace cryo::image
