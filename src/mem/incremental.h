// Storing only the pages written since the previous checkpoint.
//
// For each VMA whose pages belong in the image, the pages to keep are found
// as for a full dump (present or swapped, neither file pages nor the zero
// page, see dump_pages.h). Each such page is then either stored in this
// checkpoint's page file or recorded as being in the parent chain, and it
// is recorded so only when all three hold:
//
// - the VMA is tracked (dirty_tracking.h) and the page was not written
//   since the previous checkpoint protected it;
// - the parent checkpoint's page map of the same process has the page
//   (its data may itself be further up: the run keeps the ancestor's
//   number, plus one, and its file offset);
// - the page is present now (pages not present now are never taken from a
//   parent; restore gives zeros or the file's page, as for a full dump).
//
// Anything else (an untracked or new VMA, a process that was not tracked, a
// page the parent lacks) is stored again: correctness never depends on the
// tracking being complete.
//
// Planning and copying are separate so that a pre-dump can plan (and
// re-arm the tracking) while the tree is frozen, then copy while it runs:
// a page written during the copy is marked written again and is stored
// again by the next checkpoint.
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/error.h"
#include "image/writer.h"
#include "mem/dirty_tracking.h"
#include "mm.pb.h"

namespace cryo::mem {

struct IncrementalSource {
    ProcessTracking* tracking { nullptr };         // null: the process is not tracked
    const image::PageMap* parent_map { nullptr };  // the parent's page map of this process, or null
    // Register VMAs that are not tracked yet (for a later checkpoint).
    bool arm_untracked { false };
};

// Stretches of memory to copy into the page file, in file order.
struct PageCopy {
    uint64_t address;
    uint64_t length;
};

struct PagePlan {
    std::vector<PageCopy> copies;
    uint64_t stored_bytes { 0 };       // to copy into this checkpoint
    uint64_t parent_bytes { 0 };       // referred to in the parent chain
    uint64_t tracked_bytes { 0 };      // of VMAs whose writes were known
};

// Decides, while the process is frozen, where every page goes: adds the
// runs to `map` (stored runs at file offsets from `base_offset`, in the
// order of the plan's copies) and sets each VMA's stored_bytes (which
// counts pages in the chain too: restore fills them).
Result<PagePlan> plan_pages(pid_t pid, std::vector<image::Vma>& vmas, const IncrementalSource& source,
                            uint64_t base_offset, image::PageMap& map);

enum class Target {
    Running,            // pre-dump: the tree runs again
    Frozen,             // dump --leave-running: it will run on
    FrozenToBeKilled,   // dump: killed once the images are written
};

// Copies the planned pages into `pages`. With Target::Running a stretch
// that cannot be read any more (unmapped meanwhile, or the process exited)
// is written as zeros: it cannot be taken from this checkpoint later, since
// its pages are then either not present or not tracked. Memory is read
// through /proc/PID/mem, one call per stretch; only for a tree about to be
// killed are scattered pages read by process_vm_readv(), up to 1024 per
// call: it pins the pages, which unshares pages shared copy-on-write, a
// cost only for a tree that runs on (see dump_pages.cpp).
Result<void> copy_planned_pages(pid_t pid, const PagePlan& plan, image::OutputFile& pages, Target target);

} // namespace cryo::mem
