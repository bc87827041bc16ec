// Tests for compressed and encrypted checkpoint files (src/image/key.h,
// seal.h, compress.h, transform.h and their use by ImageWriter/ImageReader).
//
// The sealed stream is checked against every way an attacker or an accident
// can change it: a changed byte, a wrong key, a chunk cut short, a file cut
// at a chunk boundary, chunks swapped, data appended, a file given another
// name or taken from another checkpoint made with the same key. Then whole
// checkpoints are written with compression and encryption and read back,
// and damaged in the same ways through the files of the directory.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "image/compress.h"
#include "image/key.h"
#include "image/reader.h"
#include "image/seal.h"
#include "image/transform.h"
#include "image/writer.h"
#include "temp_dir.h"
#include "tree.pb.h"

namespace cryo::image {
namespace {

using cryo::test::TempDir;
constexpr auto read_whole = cryo::test::read_whole_file;
constexpr auto write_whole = cryo::test::write_whole_file;

template <typename T>
void expect_error(const Result<T>& result, std::initializer_list<std::string_view> parts)
{
    ASSERT_FALSE(result) << "unexpectedly succeeded";
    for (std::string_view part : parts)
        EXPECT_NE(result.error().message().find(part), std::string::npos)
            << "'" << part << "' not in: " << result.error().message();
}

Key key_of(unsigned char fill)
{
    std::array<std::byte, kKeySize> bytes;
    bytes.fill(static_cast<std::byte>(fill));
    return Key::from_bytes(bytes);
}

CheckpointId id_of(unsigned char fill)
{
    CheckpointId id;
    id.fill(static_cast<std::byte>(fill));
    return id;
}

// Bytes that do not repeat (so a moved chunk is a different chunk).
std::string pattern(size_t size)
{
    std::string bytes(size, '\0');
    uint32_t state = 12345;
    for (auto& c : bytes) {
        state = state * 1103515245 + 12345;
        c = static_cast<char>(state >> 24);
    }
    return bytes;
}

// Unseals `sealed` (held in a memfd) as `name`; returns the plaintext.
Result<std::string> unseal_bytes(std::string_view sealed, const std::string& name, const Key& key,
                                 const SealExpectation& expect = {})
{
    UniqueFd fd(::memfd_create("sealed", MFD_CLOEXEC));
    TRY(write_all(fd.get(), sealed, "memfd"));
    std::string plain;
    TRY(unseal(fd.get(), sealed.size(), name, key, expect, [&](std::span<const std::byte> bytes) -> Result<void> {
        plain.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        return {};
    }));
    return plain;
}

constexpr size_t kStride = kSealChunkSize + kSealTagSize;

TEST(Key, LoadsRawAndHexKeysAndRefusesTheRest)
{
    TempDir temp;
    std::string raw = pattern(32);
    write_whole(temp / "raw", raw);
    auto key = Key::load(temp / "raw");
    ASSERT_TRUE(key) << key.error().message();
    EXPECT_EQ(std::memcmp(key->bytes().data(), raw.data(), 32), 0);

    std::string hex;
    for (unsigned char c : raw)
        hex += fmt::format("{:02X}", c);
    write_whole(temp / "hex", hex + "\n");
    auto from_hex = Key::load(temp / "hex");
    ASSERT_TRUE(from_hex) << from_hex.error().message();
    EXPECT_EQ(std::memcmp(from_hex->bytes().data(), raw.data(), 32), 0);
    write_whole(temp / "hex-no-newline", hex);
    EXPECT_TRUE(Key::load(temp / "hex-no-newline"));

    std::string not_hex = "zz" + hex.substr(2);   // outlives the views below
    for (std::string_view bad : { std::string_view(""), std::string_view(raw).substr(0, 31), std::string_view(hex).substr(0, 62),
                                  std::string_view(not_hex) }) {
        write_whole(temp / "bad", bad);
        expect_error(Key::load(temp / "bad"), { temp / "bad", "32 raw bytes or 64 hex digits" });
    }
    write_whole(temp / "long", raw + raw + raw);
    expect_error(Key::load(temp / "long"), { "96 bytes", "head -c 32 /dev/urandom" });
    expect_error(Key::load(temp / "missing"), { "missing" });
    expect_error(Key::load(temp.path()), { "not a regular file" });
}

TEST(Seal, RoundTripsEverySize)
{
    Key key = key_of(1);
    for (size_t size : { size_t(0), size_t(1), size_t(4096), size_t(kSealChunkSize), size_t(kSealChunkSize + 1),
                         size_t(3 * kSealChunkSize + 12345) }) {
        std::string plain = pattern(size);
        auto sealed = seal_bytes(key, id_of(7), "pages-1.img", plain);
        ASSERT_TRUE(sealed) << sealed.error().message();
        size_t chunks = size == 0 ? 1 : (size + kSealChunkSize - 1) / kSealChunkSize;
        EXPECT_EQ(sealed->bytes.size(), sizeof(SealHeader) + size + chunks * kSealTagSize) << size;
        EXPECT_TRUE(looks_sealed(std::as_bytes(std::span(sealed->bytes.data(), sealed->bytes.size()))));
        if (size >= 64) {   // the plaintext does not show through
            EXPECT_EQ(sealed->bytes.find(plain.substr(0, 64)), std::string::npos);
        }
        CheckpointId id = id_of(7);
        auto back = unseal_bytes(sealed->bytes, "pages-1.img", key,
                                 { &id, std::as_bytes(std::span(sealed->salt)) });
        ASSERT_TRUE(back) << size << ": " << back.error().message();
        EXPECT_EQ(*back, plain) << size;
    }
}

TEST(Seal, SameContentTwiceGivesDifferentFiles)
{
    Key key = key_of(1);
    auto first = seal_bytes(key, id_of(7), "tree.img", "same");
    auto second = seal_bytes(key, id_of(7), "tree.img", "same");
    ASSERT_TRUE(first && second);
    EXPECT_NE(first->salt, second->salt);
    EXPECT_NE(first->bytes, second->bytes);
}

TEST(Seal, EveryTamperingIsRefused)
{
    Key key = key_of(1);
    std::string plain = pattern(2 * kSealChunkSize + 100);   // three chunks
    auto sealed = seal_bytes(key, id_of(7), "pages-1.img", plain);
    ASSERT_TRUE(sealed);
    const std::string& bytes = sealed->bytes;

    expect_error(unseal_bytes(bytes, "pages-1.img", key_of(2)), { "another key" });
    for (size_t offset : { sizeof(SealHeader) + 5, sizeof(SealHeader) + kStride + 7, bytes.size() - 1 }) {
        std::string changed = bytes;
        changed[offset] ^= 0x20;
        expect_error(unseal_bytes(changed, "pages-1.img", key), { "fails authentication" });
    }
    std::string header_changed = bytes;
    header_changed[offsetof(SealHeader, salt)] ^= 1;   // another file key: nothing authenticates
    expect_error(unseal_bytes(header_changed, "pages-1.img", key), { "chunk 0 of 3 fails authentication" });
    // Cut at a chunk boundary: the new last chunk was not sealed as final.
    expect_error(unseal_bytes(std::string_view(bytes).substr(0, sizeof(SealHeader) + 2 * kStride), "pages-1.img", key),
                 { "chunk 1 of 2 fails authentication" });
    expect_error(unseal_bytes(std::string_view(bytes).substr(0, bytes.size() - 50), "pages-1.img", key),
                 { "chunk 2 of 3 fails authentication" });
    expect_error(unseal_bytes(std::string_view(bytes).substr(0, sizeof(SealHeader) + kStride + 10), "pages-1.img", key),
                 { "shorter than its tag" });
    expect_error(unseal_bytes(std::string_view(bytes).substr(0, 40), "pages-1.img", key), { "truncated" });
    expect_error(unseal_bytes(bytes + "x", "pages-1.img", key), { "fails authentication" });
    // Chunks 0 and 1 swapped.
    std::string reordered = bytes.substr(0, sizeof(SealHeader)) + bytes.substr(sizeof(SealHeader) + kStride, kStride)
        + bytes.substr(sizeof(SealHeader), kStride) + bytes.substr(sizeof(SealHeader) + 2 * kStride);
    expect_error(unseal_bytes(reordered, "pages-1.img", key), { "chunk 0 of 3 fails authentication" });
    // The file under another name (swapped with another file of the checkpoint).
    expect_error(unseal_bytes(bytes, "pages-2.img", key), { "fails authentication" });
    // From another checkpoint, or another version of the file.
    CheckpointId other = id_of(8);
    expect_error(unseal_bytes(bytes, "pages-1.img", key, { &other, {} }), { "another checkpoint" });
    SealSalt salt {};
    expect_error(unseal_bytes(bytes, "pages-1.img", key, { nullptr, std::as_bytes(std::span(salt)) }), { "replaced?" });
    // A chunk of another file sealed with the same key and checkpoint.
    auto neighbour = seal_bytes(key, id_of(7), "pages-1.img", pattern(3 * kSealChunkSize));
    ASSERT_TRUE(neighbour);
    std::string spliced = bytes.substr(0, sizeof(SealHeader) + kStride) + neighbour->bytes.substr(sizeof(SealHeader) + kStride, kStride)
        + bytes.substr(sizeof(SealHeader) + 2 * kStride);
    expect_error(unseal_bytes(spliced, "pages-1.img", key), { "chunk 1 of 3 fails authentication" });
}

TEST(Zstd, RoundTripsAndRefusesDamage)
{
    std::string plain = pattern(1 << 20) + std::string(4 << 20, 'a') + pattern(5000);
    std::string compressed;
    auto writer = ZstdWriter::create(3, "pages", [&](std::span<const std::byte> bytes) -> Result<void> {
        compressed.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        return {};
    });
    ASSERT_TRUE(writer);
    ASSERT_TRUE((*writer)->write(std::as_bytes(std::span(plain.data(), plain.size()))));
    ASSERT_TRUE((*writer)->finish());
    EXPECT_LT(compressed.size(), plain.size() / 2);

    auto decompress = [&](std::string_view input, uint64_t limit) -> Result<std::string> {
        std::string out;
        auto reader = TRY(ZstdReader::create(limit, [&](std::span<const std::byte> bytes) -> Result<void> {
            out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
            return {};
        }));
        for (size_t at = 0; at < input.size(); at += 70000)
            TRY(reader->feed(std::as_bytes(std::span(input.data() + at, std::min<size_t>(70000, input.size() - at)))));
        TRY(reader->finish());
        return out;
    };
    auto back = decompress(compressed, plain.size());
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(*back, plain);
    expect_error(decompress(compressed, plain.size() - 1), { "more than" });
    expect_error(decompress(std::string_view(compressed).substr(0, compressed.size() - 10), plain.size()), { "" });
    expect_error(decompress(compressed + "junk", plain.size()), { "after the end" });
    std::string changed = compressed;
    changed[changed.size() / 2] ^= 0x55;
    expect_error(decompress(changed, plain.size()), { "" });
    expect_error(ZstdWriter::create(0, "pages", {}), { "out of range" });
    expect_error(ZstdWriter::create(kMaxCompressionLevel + 1, "pages", {}), { "out of range" });
}

constexpr int kPid = 100;

ProcessTree sample_tree()
{
    ProcessTree tree;
    tree.set_root_pid(kPid);
    auto* root = tree.add_processes();
    root->set_pid(kPid);
    root->set_comm("secret-comm");
    return tree;
}

// A checkpoint of a tree image and a page file of `pages` bytes.
Result<void> write_checkpoint(const std::string& directory, WriteTransforms transforms, const std::string& pages)
{
    auto writer = TRY(ImageWriter::create(directory, SyncMode::NoSync, std::move(transforms)));
    TRY(writer.write_message(std::string(kTreeName), ImageKind::Tree, sample_tree()));
    auto file = TRY(writer.create_file(pages_name(kPid)));
    // In two writes, the second larger than a sealed chunk.
    TRY(file.write(std::as_bytes(std::span(pages.data(), 4096))));
    TRY(file.write(std::as_bytes(std::span(pages.data() + 4096, pages.size() - 4096))));
    EXPECT_EQ(file.size(), pages.size());
    TRY(writer.finish_file(std::move(file)));
    Manifest manifest;
    manifest.set_root_pid(kPid);
    return writer.commit(std::move(manifest));
}

// Reads the checkpoint back completely; returns the page file's content.
Result<std::string> read_checkpoint(const std::string& directory, const Key* key)
{
    auto reader = TRY(ImageReader::open(directory, key));
    TRY(reader.verify());
    auto tree = TRY(reader.read<ProcessTree>(std::string(kTreeName), ImageKind::Tree));
    if (tree.processes(0).comm() != "secret-comm")
        return fail("tree.img read back wrong");
    auto fd = TRY(reader.open_raw(pages_name(kPid)));
    std::string pages(reader.file_size(pages_name(kPid)), '\0');
    TRY(pread_exact(fd.get(), std::as_writable_bytes(std::span(pages.data(), pages.size())), 0, "pages"));
    return pages;
}

std::string compressible_pages()
{
    std::string pages;
    while (pages.size() < 3 * kSealChunkSize)
        pages += "the same page content again and again " + std::to_string(pages.size() % 7);
    pages.resize(3 * kSealChunkSize + 4096);
    return pages;
}

TEST(Transform, CompressedAndEncryptedCheckpointRoundTrips)
{
    Key key = key_of(3);
    std::string pages = compressible_pages();
    for (int level : { 0, 1, 3 }) {
        for (bool encrypt : { false, true }) {
            TempDir temp;
            WriteTransforms transforms { .compression_level = level };
            if (encrypt)
                transforms.key = key;
            auto written = write_checkpoint(temp.path(), transforms, pages);
            ASSERT_TRUE(written) << written.error().message();
            auto back = read_checkpoint(temp.path(), encrypt ? &key : nullptr);
            ASSERT_TRUE(back) << level << encrypt << ": " << back.error().message();
            EXPECT_EQ(*back, pages);
            auto stored = std::filesystem::file_size(temp / pages_name(kPid));
            if (level > 0) {
                EXPECT_LT(stored, pages.size() / 10);
            }
            // Encrypted: nothing of the content is visible in any file.
            for (const auto& entry : std::filesystem::directory_iterator(temp.path())) {
                if (!encrypt)
                    break;
                std::string bytes = read_whole(entry.path());
                EXPECT_EQ(bytes.find("secret-comm"), std::string::npos) << entry.path();
                EXPECT_EQ(bytes.find("again and again"), std::string::npos) << entry.path();
                EXPECT_EQ(bytes.find("CRYO\x4d\x41\x4e"), std::string::npos) << entry.path();
            }
        }
    }
}

TEST(Transform, KeysAreCheckedBeforeAnythingIsRead)
{
    TempDir temp;
    Key key = key_of(3);
    std::string pages = pattern(8192);
    ASSERT_TRUE(write_checkpoint(temp / "sealed", { .key = key }, pages));
    ASSERT_TRUE(write_checkpoint(temp / "plain", {}, pages));
    expect_error(ImageReader::open(temp / "sealed"), { "encrypted", "--key" });
    Key wrong = key_of(4);
    expect_error(ImageReader::open(temp / "sealed", &wrong), { "manifest.img", "another key" });
    expect_error(ImageReader::open(temp / "plain", &key), { "not encrypted", "key was given" });
}

TEST(Transform, TamperedFilesOfAnEncryptedCheckpointAreRefused)
{
    Key key = key_of(3);
    std::string pages = pattern(2 * kSealChunkSize);
    auto fresh = [&](const std::string& directory) { ASSERT_TRUE(write_checkpoint(directory, { .key = key }, pages)); };
    TempDir temp;
    fresh(temp / "a");
    fresh(temp / "b");

    // A byte of the manifest.
    std::string manifest = read_whole(temp / "a/manifest.img");
    manifest[manifest.size() / 2] ^= 1;
    write_whole(temp / "a/manifest.img", manifest);
    expect_error(ImageReader::open(temp / "a", &key), { "manifest.img", "fails authentication" });
    fresh(temp / "a");

    // A plain manifest put in place of the sealed one.
    ASSERT_TRUE(write_checkpoint(temp / "plain", {}, pages));
    std::filesystem::copy_file(temp / "plain/manifest.img", temp / "a/manifest.img",
                               std::filesystem::copy_options::overwrite_existing);
    expect_error(ImageReader::open(temp / "a", &key), { "not encrypted" });
    fresh(temp / "a");

    // A metadata file changed, with the checksum check passed by keeping the
    // size (read_message authenticates).
    std::string tree = read_whole(temp / "a/tree.img");
    tree[tree.size() - 3] ^= 1;
    write_whole(temp / "a/tree.img", tree);
    auto reader = ImageReader::open(temp / "a", &key);
    ASSERT_TRUE(reader);
    expect_error(reader->read<ProcessTree>(std::string(kTreeName), ImageKind::Tree), { "tree.img", "fails authentication" });
    expect_error(reader->verify(), { "tree.img", "checksum mismatch" });
    fresh(temp / "a");

    // The page file swapped in from another checkpoint made with the same key.
    std::filesystem::copy_file(temp / ("b/" + pages_name(kPid)), temp / ("a/" + pages_name(kPid)),
                               std::filesystem::copy_options::overwrite_existing);
    reader = ImageReader::open(temp / "a", &key);
    ASSERT_TRUE(reader);
    expect_error(reader->open_raw(pages_name(kPid)), { pages_name(kPid), "another checkpoint" });
    fresh(temp / "a");

    // The page file truncated by one chunk, the manifest unchanged.
    auto path = temp / ("a/" + pages_name(kPid));
    std::filesystem::resize_file(path, std::filesystem::file_size(path) - kStride);
    reader = ImageReader::open(temp / "a", &key);
    ASSERT_TRUE(reader);
    expect_error(reader->open_raw(pages_name(kPid)), { pages_name(kPid), "size is" });
}

TEST(Transform, DecodingStopsAtTheSizeTheManifestSays)
{
    // A compressed page file whose manifest record says it is smaller.
    TempDir temp;
    std::string pages = compressible_pages();
    ASSERT_TRUE(write_checkpoint(temp.path(), { .compression_level = 1 }, pages));
    auto reader = ImageReader::open(temp.path());
    ASSERT_TRUE(reader);
    ManifestFile record;
    for (const auto& file : reader->manifest().files())
        if (file.name() == pages_name(kPid))
            record = file;
    EXPECT_EQ(record.compression(), FILE_COMPRESSION_ZSTD);
    EXPECT_EQ(record.content_size(), pages.size());
    record.set_content_size(pages.size() - 1);
    auto fd = open_file(temp / pages_name(kPid), O_RDONLY);
    ASSERT_TRUE(fd);
    uint64_t size = 0;
    expect_error(decode_to_memfd(fd->get(), record.size(), pages_name(kPid), &record, {}, size), { "more than" });
    record.set_content_size(pages.size() + 1);
    expect_error(decode_to_memfd(fd->get(), record.size(), pages_name(kPid), &record, {}, size), { "the manifest says" });
}

} // namespace
} // namespace cryo::image
