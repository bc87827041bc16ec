// The lazy-pages server: one loop over the userfaultfds of the restored
// processes (see lazy_pages.h for how it is started).
//
// Each turn it reads every message the kernel has queued, then:
// - a page fault is answered with UFFDIO_COPY of the stored pages around
//   the faulting one (a 64 KiB window, within what is still pending), or
//   with UFFDIO_ZEROPAGE where nothing is stored (never-written memory, or
//   memory the program dropped since); a page that is already there
//   (copied in the meantime: EEXIST) only needs its waiter woken;
// - fork: the child's new userfaultfd is served like the parent, with what
//   the parent still had pending (the child's copies of those pages are
//   missing too; everything else it inherited);
// - remap: the pending pages of the old range move to the new one;
// - remove (MADV_DONTNEED/REMOVE) and unmap: the pending pages of the range
//   are forgotten (they read as zeros now, or are gone).
// With no message waiting it copies the next 4 MiB of pending pages of one
// process (round robin): the background stream. UFFDIO_COPY refuses with
// EAGAIN while the program changes its layout and a message is about to
// arrive: the copy is tried again after the messages are read.
//
// A process whose pending pages are all in place is let go (its userfaultfd
// closed: the kernel unregisters its memory); a process that is gone
// (ESRCH) likewise. With none left the server exits.
#pragma once

#include <vector>

#include "lazy/lazy_pages.h"

namespace cryo::lazy {

// Runs in the forked server process; never returns. Logs to `log_fd`;
// reads pages from `source`; writes its exit status to `report_fd` (a
// waiting `cryo lazy-pages`, lazy/command.h) unless it is -1.
[[noreturn]] void run_server(int log_fd, std::vector<LazyProcess>& processes, PageSource& source, int report_fd);

} // namespace cryo::lazy
