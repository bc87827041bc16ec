// Tests for writing and reading checkpoint directories (src/image).
//
// A sample checkpoint (process tree, memory map, page map and a raw page file)
// is written with ImageWriter and read back with ImageReader. The other tests
// damage it the ways a real checkpoint gets damaged (a flipped byte, a
// truncated file, a missing manifest, a hostile manifest naming files outside
// the directory, a header from another format version) and check that the
// reader refuses it with a message naming the file. Every test works in its
// own TempDir, removed even when the test fails.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <xxhash.h>

#include "base/fd.h"
#include "image/format.h"
#include "image/reader.h"
#include "image/validate.h"
#include "image/writer.h"
#include "mm.pb.h"
#include "temp_dir.h"
#include "tree.pb.h"

namespace cryo::image {
namespace {

using cryo::test::TempDir;
using google::protobuf::util::MessageDifferencer;

constexpr int kPid = 100;

ProcessTree sample_tree()
{
    ProcessTree tree;
    tree.set_root_pid(kPid);
    ProcessEntry* root = tree.add_processes();
    root->set_pid(kPid);
    root->set_pgid(kPid);
    root->set_sid(kPid);
    root->add_tids(kPid);
    root->add_tids(kPid + 1);
    root->set_state(PROCESS_STATE_ALIVE);
    root->set_comm("a) b (c");
    ProcessEntry* zombie = tree.add_processes();
    zombie->set_pid(kPid + 2);
    zombie->set_ppid(kPid);
    zombie->set_state(PROCESS_STATE_ZOMBIE);
    zombie->set_exit_status(3 << 8);
    return tree;
}

MemoryImage sample_memory()
{
    MemoryImage memory;
    memory.set_pid(kPid);
    memory.mutable_fields()->set_start_code(0x400000);
    memory.mutable_fields()->add_auxv(33);
    memory.mutable_fields()->add_auxv(0x7fff0000);
    Vma* vma = memory.add_vmas();
    vma->set_start(0x7f0000000000);
    vma->set_end(0x7f0000002000);
    vma->set_prot(3);
    vma->set_kind(VMA_KIND_ANONYMOUS);
    vma->set_path("/tmp/with space (deleted)");
    vma->set_dont_fork(true);
    return memory;
}

PageMap sample_pagemap()
{
    PageMap pagemap;
    pagemap.set_pid(kPid);
    pagemap.set_page_file(pages_name(kPid));
    PageRun* run = pagemap.add_runs();
    run->set_address(0x7f0000000000);
    run->set_page_count(2);
    run->set_file_offset(0);
    return pagemap;
}

std::vector<std::byte> sample_pages()
{
    std::vector<std::byte> pages(2 * 4096);
    for (size_t i = 0; i < pages.size(); ++i)
        pages[i] = static_cast<std::byte>((i * 7 + 3) & 0xff);
    return pages;
}

Result<void> write_sample(const std::string& directory, SyncMode sync = SyncMode::NoSync)
{
    ImageWriter writer = TRY(ImageWriter::create(directory, sync));
    TRY(writer.write_message(std::string(kTreeName), ImageKind::Tree, sample_tree()));
    TRY(writer.write_message(memory_name(kPid), ImageKind::Memory, sample_memory()));
    TRY(writer.write_message(pagemap_name(kPid), ImageKind::PageMap, sample_pagemap()));
    OutputFile pages = TRY(writer.create_file(pages_name(kPid)));
    std::vector<std::byte> data = sample_pages();
    // Two writes, so the running checksum covers more than one chunk.
    TRY(pages.write(std::span(data).first(4096)));
    TRY(pages.write(std::span(data).subspan(4096)));
    TRY(writer.finish_file(std::move(pages)));
    Manifest manifest;
    manifest.set_tool_version("test");
    manifest.set_root_pid(kPid);
    return writer.commit(std::move(manifest));
}

std::string read_whole(const std::string& path)
{
    std::ifstream stream(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(stream), {});
}

void write_whole(const std::string& path, std::string_view bytes)
{
    std::ofstream stream(path, std::ios::binary | std::ios::trunc);
    stream.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void flip_byte(const std::string& path, size_t offset)
{
    std::string bytes = read_whole(path);
    ASSERT_LT(offset, bytes.size()) << path;
    bytes[offset] = static_cast<char>(bytes[offset] ^ 0x01);
    write_whole(path, bytes);
}

size_t count_entries(const std::string& directory)
{
    return static_cast<size_t>(std::distance(std::filesystem::directory_iterator(directory), {}));
}

// Checks that `result` failed and that its message contains every `part`.
template <typename T>
void expect_error(const Result<T>& result, std::initializer_list<std::string_view> parts)
{
    ASSERT_FALSE(result) << "unexpectedly succeeded";
    for (std::string_view part : parts)
        EXPECT_NE(result.error().message().find(part), std::string::npos)
            << "'" << part << "' not in: " << result.error().message();
}

TEST(Image, RoundTrip)
{
    TempDir temp;
    std::string directory = temp / "checkpoint";
    auto written = write_sample(directory, SyncMode::Fsync);
    ASSERT_TRUE(written) << written.error().message();

    auto reader = ImageReader::open(directory);
    ASSERT_TRUE(reader) << reader.error().message();
    auto verified = reader->verify();
    ASSERT_TRUE(verified) << verified.error().message();

    const Manifest& manifest = reader->manifest();
    EXPECT_EQ(manifest.format_version(), kFormatVersion);
    EXPECT_EQ(manifest.tool_version(), "test");
    EXPECT_EQ(manifest.root_pid(), kPid);
    EXPECT_EQ(manifest.files_size(), 4);
    EXPECT_TRUE(reader->has_file(std::string(kTreeName)));
    EXPECT_FALSE(reader->has_file(std::string(kManifestName)));
    EXPECT_EQ(reader->file_size(pages_name(kPid)), 8192u);
    EXPECT_EQ(reader->file_size("absent.img"), 0u);

    auto tree = reader->read<ProcessTree>(std::string(kTreeName), ImageKind::Tree);
    ASSERT_TRUE(tree) << tree.error().message();
    EXPECT_TRUE(MessageDifferencer::Equals(*tree, sample_tree())) << tree->DebugString();
    auto memory = reader->read<MemoryImage>(memory_name(kPid), ImageKind::Memory);
    ASSERT_TRUE(memory) << memory.error().message();
    EXPECT_TRUE(MessageDifferencer::Equals(*memory, sample_memory())) << memory->DebugString();
    auto pagemap = reader->read<PageMap>(pagemap_name(kPid), ImageKind::PageMap);
    ASSERT_TRUE(pagemap) << pagemap.error().message();
    EXPECT_TRUE(MessageDifferencer::Equals(*pagemap, sample_pagemap())) << pagemap->DebugString();

    auto pages_fd = reader->open_raw(pages_name(kPid));
    ASSERT_TRUE(pages_fd) << pages_fd.error().message();
    std::vector<std::byte> pages(8192);
    auto read = pread_exact(pages_fd->get(), pages, 0, "pages");
    ASSERT_TRUE(read) << read.error().message();
    EXPECT_EQ(pages, sample_pages());
}

TEST(Image, ReadingWithTheWrongKindFails)
{
    TempDir temp;
    ASSERT_TRUE(write_sample(temp.path()));
    auto reader = ImageReader::open(temp.path());
    ASSERT_TRUE(reader) << reader.error().message();
    expect_error(reader->read<MemoryImage>(std::string(kTreeName), ImageKind::Memory),
                 { "tree.img", "expected memory map" });
}

TEST(Image, TotalBytesCountsFinishedFiles)
{
    TempDir temp;
    auto writer = ImageWriter::create(temp.path(), SyncMode::NoSync);
    ASSERT_TRUE(writer) << writer.error().message();
    auto file = writer->create_file("raw.img");
    ASSERT_TRUE(file) << file.error().message();
    std::vector<std::byte> data(5000, std::byte { 1 });
    ASSERT_TRUE(file->write(data));
    EXPECT_EQ(file->size(), 5000u);
    ASSERT_TRUE(writer->finish_file(std::move(*file)));
    EXPECT_EQ(writer->total_bytes(), 5000u);
}

// A page file gets one XXH3 per kPageChunkSize bytes (the last chunk
// shorter); verify_chunk() checks one chunk and names it when it differs.
TEST(Image, PageFilesHaveChunkChecksums)
{
    TempDir temp;
    auto writer = ImageWriter::create(temp.path(), SyncMode::NoSync);
    ASSERT_TRUE(writer) << writer.error().message();
    auto file = writer->create_file("pages-1.img");
    ASSERT_TRUE(file) << file.error().message();
    std::vector<std::byte> data(2 * kPageChunkSize + 12345);
    for (size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<std::byte>(i * 7 + i / 4096);
    // Written in pieces that straddle the chunk boundaries.
    for (size_t at = 0; at < data.size(); at += 300000)
        ASSERT_TRUE(file->write(std::span(data).subspan(at, std::min<size_t>(300000, data.size() - at))));
    ASSERT_TRUE(writer->finish_file(std::move(*file)));
    ASSERT_TRUE(writer->write_message(std::string(kTreeName), ImageKind::Tree, ProcessTree {}));
    ASSERT_TRUE(writer->commit(Manifest {}));

    auto reader = ImageReader::open(temp.path());
    ASSERT_TRUE(reader) << reader.error().message();
    const ManifestFile* pages = reader->listed("pages-1.img");
    ASSERT_NE(pages, nullptr);
    EXPECT_EQ(pages->chunk_size(), kPageChunkSize);
    ASSERT_EQ(pages->chunk_xxh3_size(), 3);
    for (int i = 0; i < 3; ++i) {
        size_t start = static_cast<size_t>(i) * kPageChunkSize;
        size_t length = std::min<size_t>(kPageChunkSize, data.size() - start);
        EXPECT_EQ(pages->chunk_xxh3(i), XXH3_64bits(data.data() + start, length)) << "chunk " << i;
    }
    EXPECT_EQ(reader->listed(std::string(kTreeName))->chunk_xxh3_size(), 0) << "metadata has no chunks";

    flip_byte(temp / "pages-1.img", kPageChunkSize + 10);
    UniqueFd fd(::open((temp / "pages-1.img").c_str(), O_RDONLY | O_CLOEXEC));
    std::vector<std::byte> buffer;
    EXPECT_TRUE(verify_chunk(fd.get(), *pages, 0, buffer, "pages-1.img"));
    EXPECT_TRUE(verify_chunk(fd.get(), *pages, 2, buffer, "pages-1.img"));
    expect_error(verify_chunk(fd.get(), *pages, 1, buffer, "pages-1.img"),
                 { "pages-1.img: chunk 1 (bytes 1048576-2097152) checksum mismatch" });
    expect_error(verify_chunk(fd.get(), *pages, 3, buffer, "pages-1.img"), { "no chunk 3" });
}

// A chunk table that does not fit its file is refused with the manifest.
TEST(Image, ChunkTableMustFitTheFile)
{
    ManifestFile file;
    file.set_name("pages-1.img");
    file.set_size(3 * 4096);
    EXPECT_TRUE(check_chunk_table(file));
    file.set_chunk_size(4096);
    file.add_chunk_xxh3(1);
    file.add_chunk_xxh3(2);
    expect_error(check_chunk_table(file), { "2 chunk checksums for 3 chunks" });
    file.add_chunk_xxh3(3);
    EXPECT_TRUE(check_chunk_table(file));
    file.set_chunk_size(4096 + 512);
    expect_error(check_chunk_table(file), { "is not a power of two" });
    file.set_chunk_size(0);
    expect_error(check_chunk_table(file), { "chunk size 0" });
}

TEST(Image, FilesAreOwnerOnly)
{
    TempDir temp;
    std::string directory = temp / "checkpoint";
    // A permissive umask must not widen the modes, and a file that already
    // exists with wider permissions must be narrowed.
    ASSERT_EQ(::mkdir(directory.c_str(), 0700), 0);
    write_whole(directory + "/" + std::string(kTreeName), "old");
    ASSERT_EQ(::chmod((directory + "/" + std::string(kTreeName)).c_str(), 0666), 0);
    mode_t old_umask = ::umask(0);
    auto written = write_sample(directory);
    ::umask(old_umask);
    ASSERT_TRUE(written) << written.error().message();

    size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(directory)) {
        struct stat st {};
        ASSERT_EQ(::stat(entry.path().c_str(), &st), 0);
        EXPECT_TRUE(S_ISREG(st.st_mode)) << entry.path();
        EXPECT_EQ(st.st_mode & 07777, 0600u) << entry.path();
        ++files;
    }
    EXPECT_EQ(files, 5u); // four files and the manifest, no leftover .tmp
}

TEST(Image, DirectoryCreatedOwnerOnly)
{
    TempDir temp;
    std::string directory = temp / "checkpoint";
    mode_t old_umask = ::umask(0);
    auto written = write_sample(directory);
    ::umask(old_umask);
    ASSERT_TRUE(written) << written.error().message();
    struct stat st {};
    ASSERT_EQ(::stat(directory.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST(Image, UncommittedWriterRemovesItsDirectory)
{
    TempDir temp;
    std::string directory = temp / "checkpoint";
    {
        auto writer = ImageWriter::create(directory, SyncMode::NoSync);
        ASSERT_TRUE(writer) << writer.error().message();
        ASSERT_TRUE(writer->write_message(std::string(kTreeName), ImageKind::Tree, sample_tree()));
        auto file = writer->create_file(pages_name(kPid)); // created, never finished
        ASSERT_TRUE(file) << file.error().message();
        EXPECT_TRUE(std::filesystem::exists(directory + "/" + std::string(kTreeName)));
    }
    EXPECT_FALSE(std::filesystem::exists(directory));
}

TEST(Image, UncommittedWriterInExistingDirectoryLeavesItEmpty)
{
    TempDir temp;
    {
        auto writer = ImageWriter::create(temp.path(), SyncMode::NoSync);
        ASSERT_TRUE(writer) << writer.error().message();
        ASSERT_TRUE(writer->write_message(std::string(kTreeName), ImageKind::Tree, sample_tree()));
        // Moving the writer must not make the moved-from shell clean up.
        ImageWriter moved(std::move(*writer));
        ASSERT_TRUE(moved.write_message(memory_name(kPid), ImageKind::Memory, sample_memory()));
    }
    ASSERT_TRUE(std::filesystem::exists(temp.path()));
    EXPECT_EQ(count_entries(temp.path()), 0u);
    expect_error(ImageReader::open(temp.path()), { "manifest.img is missing" });
}

TEST(Image, RewritingACheckpointDropsTheOldManifestFirst)
{
    TempDir temp;
    ASSERT_TRUE(write_sample(temp.path()));
    {
        auto writer = ImageWriter::create(temp.path(), SyncMode::NoSync);
        ASSERT_TRUE(writer) << writer.error().message();
        // The old checkpoint must not look complete while it is being
        // overwritten, nor after the new dump is abandoned.
        EXPECT_FALSE(std::filesystem::exists(temp / kManifestName));
        ASSERT_TRUE(writer->write_message(std::string(kTreeName), ImageKind::Tree, ProcessTree()));
    }
    expect_error(ImageReader::open(temp.path()), { "manifest.img is missing" });
}

TEST(Image, CorruptedByteIsCaughtAndNamed)
{
    for (std::string name : { std::string(kTreeName), memory_name(kPid), pages_name(kPid) }) {
        TempDir temp;
        ASSERT_TRUE(write_sample(temp.path()));
        size_t size = std::filesystem::file_size(temp / name);
        flip_byte(temp / name, size / 2);
        auto reader = ImageReader::open(temp.path());
        ASSERT_TRUE(reader) << reader.error().message();
        expect_error(reader->verify(), { temp / name, "checksum mismatch" });
    }
}

TEST(Image, CorruptedMetadataIsRefusedWhenRead)
{
    TempDir temp;
    ASSERT_TRUE(write_sample(temp.path()));
    std::string path = temp / kTreeName;
    flip_byte(path, std::filesystem::file_size(path) - 1);
    auto reader = ImageReader::open(temp.path());
    ASSERT_TRUE(reader) << reader.error().message();
    expect_error(reader->read<ProcessTree>(std::string(kTreeName), ImageKind::Tree),
                 { path, "checksum mismatch" });
}

TEST(Image, CorruptedManifestIsRefused)
{
    TempDir temp;
    ASSERT_TRUE(write_sample(temp.path()));
    std::string path = temp / kManifestName;
    flip_byte(path, std::filesystem::file_size(path) - 3);
    expect_error(ImageReader::open(temp.path()), { "manifest.img", "checksum mismatch" });
}

TEST(Image, TruncatedFileIsCaughtAndNamed)
{
    TempDir temp;
    ASSERT_TRUE(write_sample(temp.path()));
    std::string pages = temp / pages_name(kPid);
    ASSERT_EQ(::truncate(pages.c_str(), 4096), 0);
    auto reader = ImageReader::open(temp.path());
    ASSERT_TRUE(reader) << reader.error().message();
    expect_error(reader->verify(), { pages, "size is 4096 bytes", "8192" });
    expect_error(reader->open_raw(pages_name(kPid)), { pages, "size is 4096 bytes" });
}

TEST(Image, TruncatedMetadataIsRefusedWhenRead)
{
    TempDir temp;
    ASSERT_TRUE(write_sample(temp.path()));
    std::string tree = temp / kTreeName;
    ASSERT_EQ(::truncate(tree.c_str(), static_cast<off_t>(std::filesystem::file_size(tree) - 1)), 0);
    auto reader = ImageReader::open(temp.path());
    ASSERT_TRUE(reader) << reader.error().message();
    expect_error(reader->verify(), { tree, "size is" });
    expect_error(reader->read<ProcessTree>(std::string(kTreeName), ImageKind::Tree), { tree, "truncated" });

    ASSERT_EQ(::truncate(tree.c_str(), 10), 0);
    expect_error(reader->read<ProcessTree>(std::string(kTreeName), ImageKind::Tree),
                 { tree, "shorter than the 32-byte header" });
}

TEST(Image, MissingListedFileIsNamed)
{
    TempDir temp;
    ASSERT_TRUE(write_sample(temp.path()));
    ASSERT_EQ(::unlink((temp / memory_name(kPid)).c_str()), 0);
    auto reader = ImageReader::open(temp.path());
    ASSERT_TRUE(reader) << reader.error().message();
    expect_error(reader->verify(), { temp / memory_name(kPid), "missing" });
}

TEST(Image, MissingManifest)
{
    TempDir temp;
    ASSERT_TRUE(write_sample(temp.path()));
    ASSERT_EQ(::unlink((temp / kManifestName).c_str()), 0);
    expect_error(ImageReader::open(temp.path()), { temp.path(), "manifest.img is missing" });

    expect_error(ImageReader::open(temp / "nonexistent"), { "nonexistent", "No such file or directory" });
}

TEST(Image, UnsafeNamesAreRefusedByTheWriter)
{
    TempDir temp;
    std::string directory = temp / "checkpoint";
    auto writer = ImageWriter::create(directory, SyncMode::NoSync);
    ASSERT_TRUE(writer) << writer.error().message();
    for (std::string name : { "../x", "a/b", "/etc/passwd", "", ".", "..", "x\n", "sp ace" }) {
        auto file = writer->create_file(name);
        ASSERT_FALSE(file) << "accepted '" << name << "'";
        EXPECT_NE(file.error().message().find("invalid image file name"), std::string::npos);
        EXPECT_FALSE(writer->write_message(name, ImageKind::Tree, sample_tree())) << name;
    }
    EXPECT_FALSE(std::filesystem::exists(temp / "x"));
    EXPECT_EQ(count_entries(directory), 0u);
}

TEST(Image, WriterRefusesReservedAndRepeatedNames)
{
    // The reader refuses a manifest listing itself or a name twice, so the
    // writer must not be able to produce one.
    TempDir temp;
    auto writer = ImageWriter::create(temp.path(), SyncMode::NoSync);
    ASSERT_TRUE(writer) << writer.error().message();
    expect_error(writer->create_file("manifest.img"), { "reserved" });
    expect_error(writer->create_file("manifest.img.tmp"), { "reserved" });
    ASSERT_TRUE(writer->write_message(std::string(kTreeName), ImageKind::Tree, sample_tree()));
    expect_error(writer->create_file(std::string(kTreeName)), { "tree.img", "twice" });
    ASSERT_TRUE(writer->commit(Manifest()));
    auto reader = ImageReader::open(temp.path());
    ASSERT_TRUE(reader) << reader.error().message();
    EXPECT_TRUE(reader->verify());
}

TEST(Image, FifoInTheDirectoryDoesNotHangTheReader)
{
    // Without O_NONBLOCK, opening a FIFO for reading waits for a writer
    // that never comes.
    TempDir temp;
    ASSERT_TRUE(write_sample(temp.path()));
    for (std::string name : { std::string(kTreeName), pages_name(kPid) }) {
        ASSERT_EQ(::unlink((temp / name).c_str()), 0);
        ASSERT_EQ(::mkfifo((temp / name).c_str(), 0600), 0);
    }
    auto reader = ImageReader::open(temp.path());
    ASSERT_TRUE(reader) << reader.error().message();
    expect_error(reader->verify(), { temp / kTreeName, "not a regular file" });
    expect_error(reader->read<ProcessTree>(std::string(kTreeName), ImageKind::Tree),
                 { "tree.img", "not a regular file" });
    expect_error(reader->open_raw(pages_name(kPid)), { temp / pages_name(kPid), "not a regular file" });

    ASSERT_EQ(::unlink((temp / kManifestName).c_str()), 0);
    ASSERT_EQ(::mkfifo((temp / kManifestName).c_str(), 0600), 0);
    expect_error(ImageReader::open(temp.path()), { "manifest.img", "not a regular file" });
}

TEST(Image, SymlinkOutOfTheDirectoryIsNotFollowed)
{
    TempDir temp;
    TempDir outside;
    std::string directory = temp / "checkpoint";
    ASSERT_TRUE(write_sample(directory));
    // A file outside with exactly the content the manifest expects: only
    // refusing the symlink itself stops the reader from using it.
    std::string target = outside / "pages";
    ASSERT_EQ(::rename((directory + "/" + pages_name(kPid)).c_str(), target.c_str()), 0);
    ASSERT_EQ(::symlink(target.c_str(), (directory + "/" + pages_name(kPid)).c_str()), 0);
    auto reader = ImageReader::open(directory);
    ASSERT_TRUE(reader) << reader.error().message();
    expect_error(reader->verify(), { pages_name(kPid) });
    expect_error(reader->open_raw(pages_name(kPid)), { pages_name(kPid) });
}

TEST(Image, SafeNameRules)
{
    EXPECT_TRUE(is_safe_image_name("core-12.img"));
    EXPECT_TRUE(is_safe_image_name("pages_1.IMG"));
    EXPECT_FALSE(is_safe_image_name(std::string(201, 'a')));
    EXPECT_FALSE(is_safe_image_name(std::string_view("a\0b", 3)));
    EXPECT_FALSE(is_safe_image_name("a\\b"));
}

// Replaces the manifest with one listing `names` (all real files or not).
void write_manifest(const TempDir& temp, std::initializer_list<std::string_view> names,
                    uint32_t format_version = kFormatVersion)
{
    Manifest manifest;
    manifest.set_format_version(format_version);
    for (std::string_view name : names) {
        ManifestFile* file = manifest.add_files();
        file->set_name(std::string(name));
    }
    auto bytes = encode_image(ImageKind::Manifest, manifest);
    ASSERT_TRUE(bytes) << bytes.error().message();
    write_whole(temp / kManifestName, *bytes);
}

TEST(Image, HostileManifestIsRefused)
{
    TempDir temp;
    ASSERT_TRUE(write_sample(temp.path()));
    struct Case {
        std::initializer_list<std::string_view> names;
        std::string_view message;
    };
    const Case cases[] = {
        { { "../x" }, "invalid file name '../x'" },
        { { "a/b" }, "invalid file name 'a/b'" },
        { { "/etc/shadow" }, "invalid file name '/etc/shadow'" },
        { { "" }, "invalid file name ''" },
        { { "manifest.img" }, "invalid file name 'manifest.img'" },
        { { "tree.img", "tree.img" }, "lists tree.img twice" },
    };
    for (const Case& test : cases) {
        write_manifest(temp, test.names);
        expect_error(ImageReader::open(temp.path()), { "manifest.img", test.message });
    }
}

TEST(Image, UnlistedFilesAreNotRead)
{
    TempDir temp;
    ASSERT_TRUE(write_sample(temp.path()));
    write_manifest(temp, { "tree.img" });
    auto reader = ImageReader::open(temp.path());
    ASSERT_TRUE(reader) << reader.error().message();
    expect_error(reader->read<MemoryImage>(memory_name(kPid), ImageKind::Memory),
                 { memory_name(kPid), "not listed in the manifest" });
    expect_error(reader->open_raw(pages_name(kPid)), { pages_name(kPid), "not listed in the manifest" });
}

TEST(Image, ManifestFromAnotherFormatVersionIsRefused)
{
    TempDir temp;
    ASSERT_TRUE(write_sample(temp.path()));
    write_manifest(temp, { "tree.img" }, kFormatVersion + 1);
    expect_error(ImageReader::open(temp.path()), { "manifest.img", "format version 2 is not supported" });
}

// Rewrites one header field of an image file in place.
void patch_header(const std::string& path, size_t offset, const void* value, size_t size)
{
    std::string bytes = read_whole(path);
    ASSERT_GE(bytes.size(), sizeof(FileHeader));
    std::memcpy(bytes.data() + offset, value, size);
    write_whole(path, bytes);
}

TEST(Image, WrongMagicIsRefused)
{
    TempDir temp;
    ASSERT_TRUE(write_sample(temp.path()));
    patch_header(temp / kTreeName, offsetof(FileHeader, magic), "CRIU", 4);
    auto reader = ImageReader::open(temp.path());
    ASSERT_TRUE(reader) << reader.error().message();
    expect_error(reader->read<ProcessTree>(std::string(kTreeName), ImageKind::Tree),
                 { temp / kTreeName, "bad magic" });

    patch_header(temp / kManifestName, offsetof(FileHeader, magic), "\0\0\0\0", 4);
    expect_error(ImageReader::open(temp.path()), { "manifest.img", "bad magic" });
}

TEST(Image, WrongVersionHeaderIsRefused)
{
    TempDir temp;
    ASSERT_TRUE(write_sample(temp.path()));
    uint32_t version = kFormatVersion + 1;
    patch_header(temp / kTreeName, offsetof(FileHeader, version), &version, sizeof(version));
    auto reader = ImageReader::open(temp.path());
    ASSERT_TRUE(reader) << reader.error().message();
    expect_error(reader->read<ProcessTree>(std::string(kTreeName), ImageKind::Tree),
                 { temp / kTreeName, "format version 2 is not supported" });

    patch_header(temp / kManifestName, offsetof(FileHeader, version), &version, sizeof(version));
    expect_error(ImageReader::open(temp.path()), { "manifest.img", "format version 2 is not supported" });
}

TEST(Image, DecodeChecksEveryHeaderField)
{
    ProcessTree tree = sample_tree();
    auto encoded = encode_image(ImageKind::Tree, tree);
    ASSERT_TRUE(encoded) << encoded.error().message();
    ProcessTree decoded;
    ASSERT_TRUE(decode_image(*encoded, ImageKind::Tree, decoded));
    EXPECT_TRUE(MessageDifferencer::Equals(decoded, tree));

    auto patched = [&](size_t offset, uint64_t value, size_t size) {
        std::string bytes = *encoded;
        std::memcpy(bytes.data() + offset, &value, size);
        return bytes;
    };
    expect_error(decode_image(patched(offsetof(FileHeader, kind), 0x455255, 4), ImageKind::Tree, decoded),
                 { "expected process tree" });
    expect_error(decode_image(patched(offsetof(FileHeader, version), 0, 4), ImageKind::Tree, decoded),
                 { "format version 0" });
    expect_error(decode_image(patched(offsetof(FileHeader, payload_size), 1ull << 40, 8), ImageKind::Tree,
                              decoded),
                 { "header says 1099511627776" });
    expect_error(decode_image(patched(offsetof(FileHeader, payload_xxh3), 0, 8), ImageKind::Tree, decoded),
                 { "checksum mismatch" });
    expect_error(decode_image(encoded->substr(0, 31), ImageKind::Tree, decoded), { "31 bytes" });
    expect_error(decode_image("", ImageKind::Tree, decoded), { "0 bytes" });
    expect_error(decode_image(*encoded + "x", ImageKind::Tree, decoded), { "truncated?" });
}

TEST(Image, GarbagePayloadWithValidChecksumIsRefused)
{
    // A header that checks out around bytes that are not a protobuf message.
    std::string payload = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";
    FileHeader header {};
    std::memcpy(header.magic, kMagic, sizeof(kMagic));
    header.kind = static_cast<uint32_t>(ImageKind::Tree);
    header.version = kFormatVersion;
    header.payload_size = payload.size();
    header.payload_xxh3 = XXH3_64bits(payload.data(), payload.size());
    std::string bytes(reinterpret_cast<const char*>(&header), sizeof(header));
    bytes += payload;
    ProcessTree tree;
    expect_error(decode_image(bytes, ImageKind::Tree, tree), { "cannot parse process tree payload" });
}

TEST(Image, DecodeSurvivesMutatedInput)
{
    // Every outcome but a crash is fine; the header checks should refuse
    // nearly all of these before protobuf sees them.
    Manifest manifest;
    manifest.set_format_version(kFormatVersion);
    manifest.add_files()->set_name("tree.img");
    auto encoded = encode_image(ImageKind::Manifest, manifest);
    ASSERT_TRUE(encoded) << encoded.error().message();
    std::mt19937 random(99);
    for (int round = 0; round < 5000; ++round) {
        std::string bytes = *encoded;
        if (round % 3 == 0)
            bytes.resize(random() % (bytes.size() + 1));
        for (int flips = random() % 4; flips > 0 && !bytes.empty(); --flips)
            bytes[random() % bytes.size()] = static_cast<char>(random() & 0xff);
        Manifest decoded;
        auto result = decode_image(bytes, ImageKind::Manifest, decoded);
        if (!result) {
            EXPECT_FALSE(result.error().message().empty());
        }
    }
}

} // namespace
} // namespace cryo::image
