// End-to-end tests of the inspection commands on real checkpoints:
// decode -> encode gives back byte-identical files for every image kind
// (manifest, tree, core, mm, pagemap, fds, files, stats-dump and, once
// restored, stats-restore; a tree with children, threads, pipes, unix
// sockets, memfds) and the
// re-encoded checkpoint restores; a value edited in the JSON (an open
// file's path) takes effect after restore; `cryo mem` finds the secret the
// `secret` victim planted across a page boundary, at the address it logged,
// and hexdumps and extracts it; `cryo diff` of two checkpoints of `counter`
// taken apart shows its stack pages changed and no process coming or going;
// damaged checkpoints get errors that name the file.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "harness.h"
#include "steps.h"

namespace cryo::e2e {

namespace {

constexpr const char* kSecret = "CRYO-SECRET-7d1e9b4c";

void write_text(const std::string& path, const std::string& text)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

void copy_directory(const std::string& from, const std::string& to)
{
    std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
}

// Every file of `expected` is in `actual` with the same bytes, and no more.
void expect_same_files(const std::string& expected, const std::string& actual)
{
    size_t count = 0;
    for (const auto& entry : std::filesystem::directory_iterator(expected)) {
        std::string name = entry.path().filename();
        EXPECT_EQ(read_file(expected + "/" + name), read_file(actual + "/" + name)) << name << " differs after decode -> encode";
        ++count;
    }
    EXPECT_EQ(count, static_cast<size_t>(std::distance(std::filesystem::directory_iterator(actual), {})));
}

// The document holds an image of each of these kinds.
void expect_kinds(const std::string& document, const std::vector<std::string>& kinds)
{
    for (const auto& kind : kinds)
        EXPECT_NE(document.find("\"kind\": \"" + kind + "\""), std::string::npos) << kind;
}

std::string fmt_address(pid_t pid, uint64_t address)
{
    char text[64];
    snprintf(text, sizeof(text), "pid %d address %#llx in", pid, static_cast<unsigned long long>(address));
    return text;
}

uint64_t logged_secret_address(Session& session)
{
    std::smatch match;
    std::string log = session.log();
    if (!std::regex_search(log, match, std::regex("SECRET 0x([0-9a-f]+)")))
        return 0;
    return std::stoull(match[1].str(), nullptr, 16);
}

class RoundTrip : public testing::TestWithParam<std::string> { };

} // namespace

// decode -> encode into a copy of the checkpoint: byte-identical files, and
// the copy restores.
TEST_P(RoundTrip, DecodeEncodeIsByteExactAndRestores)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, GetParam());
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    std::string json = session.dir().file("images.json");
    auto decoded = session.cryo({ "decode", "-D", images, "-o", json });
    ASSERT_EQ(decoded.exit_code, 0) << decoded.output;
    EXPECT_EQ(decoded.output.find("warning"), std::string::npos) << decoded.output;
    struct stat st {};
    ASSERT_EQ(::stat(json.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    expect_kinds(read_file(json), { "tree", "core", "mm", "pagemap", "fds", "files", "stats-dump", "manifest" });

    std::string copy = session.dir().file("encoded");
    copy_directory(images, copy);
    auto encoded = session.cryo({ "encode", "-i", json, "-D", copy });
    ASSERT_EQ(encoded.exit_code, 0) << encoded.output;
    expect_same_files(images, copy);

    // Encoding into a fresh directory needs the page files, and says so.
    auto empty = session.cryo({ "encode", "-i", json, "-D", session.dir().file("empty") });
    EXPECT_EQ(empty.exit_code, 1);
    EXPECT_NE(empty.output.find("listed in the manifest but not there"), std::string::npos) << empty.output;

    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, copy));
    release_and_expect_pass(session, pid);

    // The restore left its statistics beside the images: now every kind of
    // image is there, and the round trip gives them all back.
    std::string restored_json = session.dir().file("restored.json");
    auto again = session.cryo({ "decode", "-D", copy, "-o", restored_json });
    ASSERT_EQ(again.exit_code, 0) << again.output;
    expect_kinds(read_file(restored_json), { "tree", "core", "mm", "pagemap", "fds", "files", "stats-dump", "stats-restore",
                                             "manifest" });
    std::string second = session.dir().file("encoded-again");
    copy_directory(copy, second);
    auto reencoded = session.cryo({ "encode", "-i", restored_json, "-D", second });
    ASSERT_EQ(reencoded.exit_code, 0) << reencoded.output;
    expect_same_files(copy, second);
}

INSTANTIATE_TEST_SUITE_P(Victims, RoundTrip, testing::Values("tree", "threads", "pipes", "unix", "fds_memfd", "files"));

// The path of an open file edited in the JSON: the restored victim reads the
// other file through its descriptor, at the same offset.
TEST(Inspect, EditedPathTakesEffectAfterRestore)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "secret");
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    std::string json = session.dir().file("images.json");
    ASSERT_EQ(session.cryo({ "decode", "-D", images, "-o", json }).exit_code, 0);

    std::string text = read_file(json);
    std::string original = "\"" + session.log_path() + ".original\"";
    std::string edited = "\"" + session.log_path() + ".edited\"";
    auto at = text.find(original);
    ASSERT_NE(at, std::string::npos) << "no " << original << " in the document";
    text.replace(at, original.size(), edited);
    write_text(json, text);
    write_text(session.log_path() + ".edited", "edited!!\n");

    auto encoded = session.cryo({ "encode", "-i", json, "-D", images });
    ASSERT_EQ(encoded.exit_code, 0) << encoded.output;
    auto shown = session.cryo({ "show", images });
    EXPECT_NE(shown.output.find(session.log_path() + ".edited"), std::string::npos) << shown.output;

    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
    EXPECT_NE(session.log().find("DATA edited!!"), std::string::npos) << session.log();
    ::unlink((session.log_path() + ".edited").c_str());
}

// The secret is found where the victim said, across the page boundary; the
// hexdump shows it and --extract writes exactly its bytes.
TEST(Inspect, MemFindsHexdumpsAndExtractsThePlantedSecret)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "secret");
    uint64_t address = logged_secret_address(session);
    ASSERT_NE(address, 0u) << session.log();
    ASSERT_EQ(address % 4096, 4088u) << "the victim should plant it across a page boundary";
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, true));

    std::string expected = fmt_address(pid, address);
    auto found = session.cryo({ "mem", "-D", images, "--search", kSecret });
    ASSERT_EQ(found.exit_code, 0) << found.output;
    EXPECT_NE(found.output.find(expected), std::string::npos) << found.output;
    EXPECT_NE(found.output.find("[heap]"), std::string::npos) << found.output;
    EXPECT_NE(found.output.find("1 match\n"), std::string::npos) << found.output;

    // The same by bytes, limited to the process.
    auto by_hex = session.cryo({ "mem", "-D", images, "--pid", std::to_string(pid), "--search-hex",
                                 "43 52 59 4f 2d 53 45 43 52 45 54" });
    EXPECT_NE(by_hex.output.find(expected), std::string::npos) << by_hex.output;

    char hex_address[32];
    snprintf(hex_address, sizeof(hex_address), "%llx", static_cast<unsigned long long>(address));
    auto dumped = session.cryo({ "mem", "-D", images, "--pid", std::to_string(pid), "--addr", hex_address, "--len", "20" });
    ASSERT_EQ(dumped.exit_code, 0) << dumped.output;
    EXPECT_NE(dumped.output.find("43 52 59 4f 2d 53 45 43"), std::string::npos) << dumped.output;   // CRYO-SEC
    EXPECT_NE(dumped.output.find("|RET-7d1e9b4c"), std::string::npos) << dumped.output;

    std::string out = session.dir().file("secret.bin");
    auto extracted = session.cryo({ "mem", "-D", images, "--pid", std::to_string(pid), "--addr", hex_address, "--len", "20",
                                    "--extract", out });
    ASSERT_EQ(extracted.exit_code, 0) << extracted.output;
    EXPECT_EQ(read_file(out), kSecret);

    auto bad = session.cryo({ "mem", "-D", images, "--search-hex", "43 5" });
    EXPECT_EQ(bad.exit_code, 1);
    EXPECT_NE(bad.output.find("odd number of hex digits"), std::string::npos) << bad.output;
    release_and_expect_pass(session, pid);
}

// Two checkpoints of a running counter: its stack changed, nothing else
// came or went.
TEST(Inspect, DiffOfTwoCounterCheckpoints)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "counter");
    std::string first = session.dir().file("first");
    std::string second = session.dir().file("second");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, first, true));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, second, true));

    auto diff = session.cryo({ "diff", first, second });
    ASSERT_EQ(diff.exit_code, 0) << diff.output;
    EXPECT_NE(diff.output.find("0 process(es) came, 0 went, 1 changed"), std::string::npos) << diff.output;
    EXPECT_TRUE(std::regex_search(diff.output, std::regex("~ mapping [0-9a-f]+-[0-9a-f]+ rw-p \\[stack\\]: [1-9][0-9]* of [0-9]+ pages differ")))
        << diff.output;
    EXPECT_EQ(diff.output.find("+ mapping"), std::string::npos) << diff.output;
    EXPECT_EQ(diff.output.find("- mapping"), std::string::npos) << diff.output;

    auto same = session.cryo({ "diff", first, first });
    EXPECT_NE(same.output.find("0 page(s) differ in 0 mapping(s)"), std::string::npos) << same.output;
    release_and_expect_pass(session, pid);
}

// Damaged checkpoints: every command refuses them with the file named, and
// --no-verify still reads what can be read.
TEST(Inspect, DamagedCheckpointsGetClearErrors)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "secret");
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    std::string pages = images + "/pages-" + std::to_string(pid) + ".img";
    std::string mm = images + "/mm-" + std::to_string(pid) + ".img";

    std::string truncated = session.dir().file("truncated");
    copy_directory(images, truncated);
    ASSERT_EQ(::truncate((truncated + "/pages-" + std::to_string(pid) + ".img").c_str(), 4096), 0);
    for (std::vector<std::string> command : { std::vector<std::string> { "mem", "-D", truncated, "--search", kSecret },
                                              std::vector<std::string> { "decode", "-D", truncated },
                                              std::vector<std::string> { "diff", images, truncated } }) {
        auto result = session.cryo(command);
        EXPECT_EQ(result.exit_code, 1) << command[0] << ": " << result.output;
        EXPECT_NE(result.output.find("pages-" + std::to_string(pid) + ".img: size is 4096 bytes"), std::string::npos)
            << command[0] << ": " << result.output;
    }
    auto forensic = session.cryo({ "mem", "-D", truncated, "--no-verify", "--search", kSecret });
    EXPECT_EQ(forensic.exit_code, 1);
    EXPECT_NE(forensic.output.find("lies beyond the end of"), std::string::npos) << forensic.output;

    std::string corrupted = session.dir().file("corrupted");
    copy_directory(images, corrupted);
    std::string text = read_file(corrupted + "/mm-" + std::to_string(pid) + ".img");
    text[text.size() / 2] ^= 0x55;
    write_text(corrupted + "/mm-" + std::to_string(pid) + ".img", text);
    auto decoded = session.cryo({ "decode", "-D", corrupted, "--no-verify" });
    EXPECT_EQ(decoded.exit_code, 1);
    EXPECT_NE(decoded.output.find("mm-" + std::to_string(pid) + ".img: payload checksum mismatch"), std::string::npos)
        << decoded.output;

    ASSERT_EQ(::unlink((corrupted + "/manifest.img").c_str()), 0);
    auto no_manifest = session.cryo({ "diff", images, corrupted });
    EXPECT_EQ(no_manifest.exit_code, 1);
    EXPECT_NE(no_manifest.output.find("manifest.img is missing"), std::string::npos) << no_manifest.output;

    write_text(session.dir().file("garbage.json"), "{ \"cryo_json\": 1, \"images\": [ { \"name\": \"tree.img\" ");
    auto garbage = session.cryo({ "encode", "-i", session.dir().file("garbage.json"), "-D", images });
    EXPECT_EQ(garbage.exit_code, 1);
    EXPECT_NE(garbage.output.find("not a JSON document"), std::string::npos) << garbage.output;
    (void)mm;
    (void)pages;
}

} // namespace cryo::e2e
