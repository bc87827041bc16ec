// The lazy-pages server's bookkeeping of pending pages (lazy/pending.h):
// carving out served, dropped or unmapped ranges, clipping, and following
// an mremap.
#include <gtest/gtest.h>

#include "lazy/pending.h"

namespace cryo::lazy {

namespace {

constexpr uint64_t kPage = 4096;

PendingMap two_runs()
{
    // [10, 20) pages at offset 0 of fd 3, [30, 40) at offset 40 pages of fd 4.
    PendingMap pending;
    pending[10 * kPage] = { 20 * kPage, 3, 0 };
    pending[30 * kPage] = { 40 * kPage, 4, 40 * kPage };
    return pending;
}

} // namespace

TEST(LazyPending, CarveSplitsRangesAndKeepsOffsets)
{
    auto pending = two_runs();
    carve(pending, 12 * kPage, 14 * kPage);
    ASSERT_EQ(pending.size(), 3u);
    EXPECT_EQ(pending.at(10 * kPage).end, 12 * kPage);
    EXPECT_EQ(pending.at(14 * kPage).end, 20 * kPage);
    EXPECT_EQ(pending.at(14 * kPage).offset, 4 * kPage);
    EXPECT_EQ(pending.at(14 * kPage).fd, 3);
}

TEST(LazyPending, CarveAcrossRangesAndOutsideThem)
{
    auto pending = two_runs();
    carve(pending, 0, 5 * kPage);   // nothing there
    EXPECT_EQ(pending.size(), 2u);
    carve(pending, 15 * kPage, 35 * kPage);
    ASSERT_EQ(pending.size(), 2u);
    EXPECT_EQ(pending.at(10 * kPage).end, 15 * kPage);
    EXPECT_EQ(pending.at(35 * kPage).end, 40 * kPage);
    EXPECT_EQ(pending.at(35 * kPage).offset, 45 * kPage);
    carve(pending, 0, 100 * kPage);
    EXPECT_TRUE(pending.empty());
}

TEST(LazyPending, PiecesAreClippedToTheWindow)
{
    auto pending = two_runs();
    auto pieces = pieces_of(pending, 16 * kPage, 32 * kPage);
    ASSERT_EQ(pieces.size(), 2u);
    EXPECT_EQ(pieces[0].first, 16 * kPage);
    EXPECT_EQ(pieces[0].second.end, 20 * kPage);
    EXPECT_EQ(pieces[0].second.offset, 6 * kPage);
    EXPECT_EQ(pieces[1].first, 30 * kPage);
    EXPECT_EQ(pieces[1].second.end, 32 * kPage);
    EXPECT_EQ(pieces[1].second.offset, 40 * kPage);
    EXPECT_TRUE(pieces_of(pending, 20 * kPage, 30 * kPage).empty());
}

TEST(LazyPending, MremapMovesPendingPagesAndDropsTheDestination)
{
    auto pending = two_runs();
    // Pages 15..20 move onto pages 32..37, which had their own pending pages.
    move_range(pending, 15 * kPage, 32 * kPage, 5 * kPage);
    auto moved = pieces_of(pending, 32 * kPage, 37 * kPage);
    ASSERT_EQ(moved.size(), 1u);
    EXPECT_EQ(moved[0].second.fd, 3);
    EXPECT_EQ(moved[0].second.offset, 5 * kPage);
    EXPECT_EQ(moved[0].second.end, 37 * kPage);
    EXPECT_TRUE(pieces_of(pending, 15 * kPage, 20 * kPage).empty());
    EXPECT_EQ(pending.at(30 * kPage).end, 32 * kPage);
    EXPECT_EQ(pending.at(37 * kPage).offset, 47 * kPage);
}

} // namespace cryo::lazy
