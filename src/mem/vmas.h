// Turning /proc/PID/smaps into the image's list of VMAs.
//
// Each mapping is classified by its backing (private or shared anonymous,
// private or shared file, the kernel's special [vdso]/[vvar] pages) and keeps
// the madvise()/mlock state visible in its VmFlags line, so restore can map it
// again with the same protection, sharing and advice. memfds, files
// deleted since they were mapped and memfd_secret memory get kinds of their
// own: their content must travel with the image (mem/unlinked_files.h).
// Mappings cryo cannot restore yet (System V shared memory, hugetlbfs memory
// without a name, a device mapping)
// are refused here, naming the mapping, before anything is written.
//
// Reading smaps walks every page table entry (80 to 90 ms for 4 GiB), so a
// dump does not wait for it before copying the pages: the copy needs only
// each mapping's range and kind, which /proc/PID/maps gives at once
// (collect_vmas_during()).
#pragma once

#include <sys/types.h>

#include <functional>
#include <vector>

#include "base/error.h"
#include "mm.pb.h"
#include "proc/maps.h"

namespace cryo::mem {

Result<image::Vma> classify_vma(const proc::SmapsEntry& entry);
Result<std::vector<image::Vma>> collect_vmas(pid_t pid);
// collect_vmas() of a frozen process, read on another thread while `work`
// runs over the same mappings as /proc/PID/maps lists them (ranges and
// kinds; no advice, no file identities). What `work` sets in
// stored_bytes is carried over. A refusal of a mapping is reported before
// an error of `work` (which may have stumbled on that mapping first).
Result<std::vector<image::Vma>> collect_vmas_during(pid_t pid,
                                                    const std::function<Result<void>(std::vector<image::Vma>&)>& work);

// True for the kernel-provided mappings that are moved, never mapped.
bool is_special(const image::Vma& vma);
// Mappings of memfds, deleted files and memfd_secret files.
bool maps_unlinked_file(const image::Vma& vma);
// Whether the pages of this VMA are stored in the image (shared file
// mappings keep theirs in the file; the special mappings have none; private
// file mappings store the pages they changed).
bool stores_pages(const image::Vma& vma);

} // namespace cryo::mem
