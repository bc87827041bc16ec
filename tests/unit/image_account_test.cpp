// OutputFile::account_written (src/image/writer.h): bytes someone else
// appended to a page file (the page server splices them there) are counted
// and hashed as if write() had written them, mixed with write() in any
// order and across the 1 MiB chunks; the file's record is the same as for
// the same bytes all written with write(). A file that does not end where
// the writer says, or a compressed one, is refused and nothing counted.
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <xxhash.h>

#include "base/fd.h"
#include "image/format.h"
#include "image/writer.h"
#include "temp_dir.h"

namespace cryo::image {
namespace {

using cryo::test::TempDir;

std::vector<std::byte> sample(size_t size)
{
    std::vector<std::byte> data(size);
    for (size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<std::byte>(i * 13 + i / 4096);
    return data;
}

// Written by "someone else": straight to the descriptor.
void write_around(OutputFile& file, std::span<const std::byte> bytes)
{
    ASSERT_TRUE(write_all(file.fd(), bytes, file.name()));
}

// account_written(`bytes`) fails saying `reason`, and counts nothing.
void expect_refused(OutputFile& file, std::span<const std::byte> bytes, const std::string& reason)
{
    uint64_t size = file.size();
    auto claimed = file.account_written(bytes);
    ASSERT_FALSE(claimed);
    EXPECT_NE(claimed.error().message().find(reason), std::string::npos) << claimed.error().message();
    EXPECT_EQ(file.size(), size);
}

ManifestFile finished_record(ImageWriter& writer, OutputFile&& file)
{
    EXPECT_TRUE(writer.finish_file(std::move(file)));
    return writer.records().back();
}

} // namespace

TEST(ImageAccount, WrittenAroundCountsAsWritten)
{
    TempDir temp;
    auto writer = ImageWriter::create(temp.path(), SyncMode::NoSync);
    ASSERT_TRUE(writer) << writer.error().message();
    auto data = sample(2 * kPageChunkSize + 70000);
    std::span all(data);

    // The reference: everything through write().
    auto plain = writer->create_file("plain.img");
    ASSERT_TRUE(plain) << plain.error().message();
    ASSERT_TRUE(plain->write(all));
    ManifestFile expected = finished_record(*writer, std::move(*plain));

    // write(), then a piece around the writer straddling the first chunk
    // boundary, write() again, and a last piece around it to the end.
    auto mixed = writer->create_file("mixed.img");
    ASSERT_TRUE(mixed) << mixed.error().message();
    size_t first = 1000, second = kPageChunkSize + 5000, third = 300;
    ASSERT_TRUE(mixed->write(all.first(first)));
    auto around = all.subspan(first, second);
    ASSERT_NO_FATAL_FAILURE(write_around(*mixed, around));
    auto counted = mixed->account_written(around);
    ASSERT_TRUE(counted) << counted.error().message();
    EXPECT_EQ(mixed->size(), first + second);
    ASSERT_TRUE(mixed->write(all.subspan(first + second, third)));
    auto rest = all.subspan(first + second + third);
    ASSERT_NO_FATAL_FAILURE(write_around(*mixed, rest));
    counted = mixed->account_written(rest);
    ASSERT_TRUE(counted) << counted.error().message();
    EXPECT_EQ(mixed->size(), data.size());
    ManifestFile record = finished_record(*writer, std::move(*mixed));

    EXPECT_EQ(record.size(), expected.size());
    EXPECT_EQ(record.xxh3(), expected.xxh3());
    EXPECT_EQ(record.xxh3(), XXH3_64bits(data.data(), data.size()));
    EXPECT_EQ(record.chunk_size(), kPageChunkSize);
    ASSERT_EQ(record.chunk_xxh3_size(), 3);
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(record.chunk_xxh3(i), expected.chunk_xxh3(i)) << "chunk " << i;
    auto on_disk = read_all(open_file(temp.path() + "/mixed.img", O_RDONLY | O_CLOEXEC)->get(), "mixed.img");
    ASSERT_TRUE(on_disk);
    EXPECT_EQ(on_disk->size(), data.size());
    EXPECT_EQ(XXH3_64bits(on_disk->data(), on_disk->size()), expected.xxh3());
}

// Bytes claimed but not in the file, bytes in the file but not claimed, a
// write position left behind the end: refused, and nothing is counted.
TEST(ImageAccount, FileMustEndWhereTheWriterSays)
{
    TempDir temp;
    auto writer = ImageWriter::create(temp.path(), SyncMode::NoSync);
    ASSERT_TRUE(writer) << writer.error().message();
    auto data = sample(10000);
    std::span all(data);
    auto file = writer->create_file("pages.img");
    ASSERT_TRUE(file) << file.error().message();
    ASSERT_TRUE(file->write(all.first(4000)));

    expect_refused(*file, all.subspan(4000, 1000),
                   "pages.img holds 4000 bytes, not the 4000 written by the image writer plus the 1000 written around it");
    ASSERT_NO_FATAL_FAILURE(write_around(*file, all.subspan(4000, 2000)));
    expect_refused(*file, all.subspan(4000, 1000), "pages.img holds 6000 bytes");

    // At the right size, but the position left at 4000 (pwrite).
    ASSERT_EQ(::pwrite(file->fd(), data.data() + 6000, 1000, 6000), 1000);
    ::lseek(file->fd(), 4000, SEEK_SET);
    expect_refused(*file, all.subspan(4000, 3000), "left the write position at 4000, not at the end (7000)");
}

TEST(ImageAccount, CompressedFileIsRefused)
{
    TempDir temp;
    auto writer = ImageWriter::create(temp.path(), SyncMode::NoSync, WriteTransforms { .compression_level = 3 });
    ASSERT_TRUE(writer) << writer.error().message();
    auto file = writer->create_file("pages.img");
    ASSERT_TRUE(file) << file.error().message();
    ASSERT_FALSE(file->is_raw());
    expect_refused(*file, sample(100),
                   "pages.img: bytes written around the image writer can be counted only in a raw file of a local "
                   "directory");
}

} // namespace cryo::image
