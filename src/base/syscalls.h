// Thin wrappers for system calls that glibc 2.36 does not wrap (clone3,
// pidfd_*, kcmp, rseq constants) and the uapi definitions that the installed
// headers are older than the running kernel for (PAGEMAP_SCAN).
#pragma once

#include <linux/sched.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdint>

#include "base/error.h"
#include "base/fd.h"

#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd 438
#endif
#ifndef __NR_memfd_secret
#define __NR_memfd_secret 447
#endif
#ifndef __NR_rseq
#define __NR_rseq 334
#endif
#ifndef PR_SET_MM_MAP
#define PR_SET_MM_MAP 14
#endif
#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif

namespace cryo {

// Registration of restartable sequences, as PTRACE_GET_RSEQ_CONFIGURATION
// reports it.
struct RseqConfiguration {
    uint64_t rseq_abi_pointer;
    uint32_t rseq_abi_size;
    uint32_t signature;
    uint32_t flags;
    uint32_t pad;
};

inline constexpr int kRseqFlagUnregister = 1;

// The PAGEMAP_SCAN ioctl (Linux 6.7) on /proc/PID/pagemap.
struct PageRegion {
    uint64_t start;
    uint64_t end;
    uint64_t categories;
};

struct PagemapScanArgs {
    uint64_t size;
    uint64_t flags;
    uint64_t start;
    uint64_t end;
    uint64_t walk_end;
    uint64_t vec;
    uint64_t vec_len;
    uint64_t max_pages;
    uint64_t category_inverted;
    uint64_t category_mask;
    uint64_t category_anyof_mask;
    uint64_t return_mask;
};

namespace page_category {
inline constexpr uint64_t kWpAllowed = 1 << 0;
inline constexpr uint64_t kWritten = 1 << 1;
inline constexpr uint64_t kFile = 1 << 2;
inline constexpr uint64_t kPresent = 1 << 3;
inline constexpr uint64_t kSwapped = 1 << 4;
inline constexpr uint64_t kPfnZero = 1 << 5;
inline constexpr uint64_t kHuge = 1 << 6;
inline constexpr uint64_t kSoftDirty = 1 << 7;
}

inline constexpr unsigned long kPagemapScanIoctl = 0xc0606610; // _IOWR('f', 16, struct pm_scan_arg)

inline constexpr uint64_t kPageSize = 4096;

inline long raw_clone3(struct clone_args* args)
{
    return ::syscall(__NR_clone3, args, sizeof(*args));
}

Result<UniqueFd> pidfd_open(pid_t pid, unsigned flags = 0);
Result<UniqueFd> pidfd_getfd(int pidfd, int target_fd);

} // namespace cryo
