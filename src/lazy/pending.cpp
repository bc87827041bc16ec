// Range bookkeeping of the lazy-pages server; see pending.h.
#include "lazy/pending.h"

#include <algorithm>
#include <iterator>

namespace cryo::lazy {

namespace {

// The first range that ends after `start` (of a PendingMap, const or not).
template <typename Map>
auto first_after(Map& pending, uint64_t start)
{
    auto it = pending.upper_bound(start);
    if (it != pending.begin() && std::prev(it)->second.end > start)
        --it;
    return it;
}

} // namespace

void carve(PendingMap& pending, uint64_t start, uint64_t end)
{
    auto it = first_after(pending, start);
    while (it != pending.end() && it->first < end) {
        uint64_t piece_start = it->first;
        PendingPages piece = it->second;
        it = pending.erase(it);
        if (piece_start < start)
            pending[piece_start] = { start, piece.fd, piece.offset };
        if (piece.end > end)
            pending[end] = { piece.end, piece.fd, piece.offset + (end - piece_start) };
    }
}

std::vector<std::pair<uint64_t, PendingPages>> pieces_of(const PendingMap& pending, uint64_t start, uint64_t end)
{
    std::vector<std::pair<uint64_t, PendingPages>> pieces;
    for (auto it = first_after(pending, start); it != pending.end() && it->first < end; ++it) {
        uint64_t piece_start = std::max(it->first, start);
        pieces.push_back({ piece_start, { std::min(it->second.end, end), it->second.fd,
                                          it->second.offset + (piece_start - it->first) } });
    }
    return pieces;
}

void move_range(PendingMap& pending, uint64_t from, uint64_t to, uint64_t length)
{
    auto moved = pieces_of(pending, from, from + length);
    carve(pending, from, from + length);
    carve(pending, to, to + length);
    for (const auto& [start, piece] : moved)
        pending[start - from + to] = { piece.end - from + to, piece.fd, piece.offset };
}

} // namespace cryo::lazy
