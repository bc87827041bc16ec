// What the lazy-pages server still has to bring into one process: ranges
// of addresses with the page file and offset their pages are stored at.
// Faults and the background stream take pages out of it; the program's
// munmap, MADV_DONTNEED and mremap change it (lazy/server.h).
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

namespace cryo::lazy {

// Pages of [address, end) that are stored at `offset` of page file `fd`.
struct PendingPages {
    uint64_t end { 0 };
    int fd { -1 };
    uint64_t offset { 0 };
};

// By start address; the ranges never overlap. Pages outside read as zeros.
using PendingMap = std::map<uint64_t, PendingPages>;

// Removes [start, end), splitting the ranges that straddle its ends.
void carve(PendingMap& pending, uint64_t start, uint64_t end);

// The pending pieces of [start, end), clipped to it, by start address.
std::vector<std::pair<uint64_t, PendingPages>> pieces_of(const PendingMap& pending, uint64_t start, uint64_t end);

// mremap() moved [from, from + length) to `to`: what was pending there
// follows, and what was pending at the destination is gone.
void move_range(PendingMap& pending, uint64_t from, uint64_t to, uint64_t length);

} // namespace cryo::lazy
