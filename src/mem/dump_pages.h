// Finding and saving the pages of a process that only exist in its memory.
//
// The PAGEMAP_SCAN ioctl on /proc/PID/pagemap (Linux 6.7) returns, in one
// call, the ranges of a VMA whose pages match a set of categories. For private
// mappings cryo asks for pages that are present or swapped out, and neither
// backed by a file (an unmodified page of a private file mapping is read back
// from the file) nor the shared zero page (never written: restore gives zeros
// anyway). Pages that were never touched are simply not there, so a large
// reserved but untouched mapping costs nothing. The content is read through
// /proc/PID/mem, which also reaches read-only and PROT_NONE pages, into
// large buffers that a second thread appends to the page file (the reads
// and the writes overlap, see page_writer.h); the page map lists the runs.
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/error.h"
#include "base/syscalls.h"
#include "image/writer.h"
#include "mem/page_writer.h"
#include "mm.pb.h"

namespace cryo::mem {

struct PageRange {
    uint64_t start;
    uint64_t end;
};

// Adds a region reported by PAGEMAP_SCAN to `ranges` (ascending), merged
// with the last one when they touch. When the output vector fills up, the
// kernel (6.18 here) can report regions past the walk_end it returns, so
// the next call reports them again: what is already there is left out.
void append_scanned_region(std::vector<PageRange>& ranges, uint64_t start, uint64_t end);

// The ranges of [args.start, args.end) that PAGEMAP_SCAN with `args`'
// categories reports (the vector and size fields are filled in here).
Result<std::vector<PageRange>> scan_pages(int pagemap_fd, PagemapScanArgs args);

// The ranges of `vma` whose pages belong in the image (of shared anonymous
// and secret memory: every page present).
Result<std::vector<PageRange>> scan_stored_pages(int pagemap_fd, const image::Vma& vma);

// Appends the stored pages of every VMA of `pid` to `pages`, records them in
// `map` and sets each VMA's stored_bytes. The copy buffers come from, and go
// back to, `buffers` (one for the whole dump).
Result<void> dump_pages(pid_t pid, std::vector<image::Vma>& vmas, image::OutputFile& pages, image::PageMap& map,
                        PageBuffers& buffers);

} // namespace cryo::mem
