// Private memory shared copy-on-write between a parent and its child.
//
// After fork() parent and child share every private page until one of them
// writes it. Restoring each process from its own pages would give each its
// own copy and double the memory. At dump time cryo compares, for private
// anonymous VMAs the child has at exactly the same range as its parent, the
// physical frame of each page (root can read PFNs in /proc/PID/pagemap):
// equal frames mean the page is still shared. Those runs of the child's page
// map are marked `same_as_parent` (their data stays in the image too, so the
// child can always be restored on its own). Private file mappings count
// too: their stored pages are the written ones, anonymous copies that fork
// shares the same way (zdtm cow01).
//
// On restore the parent's restorer process fills such VMAs with the
// parent's final content before it creates its children, which inherit them
// by fork, copy-on-write, as the originals did; the child then only writes
// the pages that differ and discards those it never had (see
// restore_memory.cpp and restorer.cpp).
#pragma once

#include <sys/types.h>

#include "base/error.h"
#include "mm.pb.h"

namespace cryo::mem {

// Marks the runs of `child_map` that are shared with the parent and the
// VMAs that have any.
Result<void> mark_shared_with_parent(pid_t child, pid_t parent, image::MemoryImage& child_memory,
                                     const image::MemoryImage& parent_memory, image::PageMap& child_map);

// True when the child's VMA may be inherited from the parent's (same range,
// both private anonymous or both a private mapping of the same file at the
// same offset, not a stack).
bool inheritable(const image::Vma& child_vma, const image::MemoryImage& parent_memory);

} // namespace cryo::mem
