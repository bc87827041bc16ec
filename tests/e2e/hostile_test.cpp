// Hostile checkpoints: real checkpoints of victims with children, threads
// and several kinds of descriptors (tree, threads, pipes, unix), damaged on
// purpose, must be refused by `cryo restore` before anything is started,
// and by `cryo show` and `cryo decode`, cleanly:
//  - every file truncated at several points, and a bit flipped in several
//    places of every file (the manifest catches the others; the manifest's
//    own header catches its damage);
//  - a file swapped with the same file of another checkpoint (core, page
//    map, tree), once as it is (the manifest catches it) and once with the
//    manifest fixed up to match, so that only the content checks can;
//  - a page map pointing outside its page file or outside every mapping,
//    an absurd page count, and a mapping that ends before it starts, with
//    the manifest to match (cryo encode recomputes it);
//  - absurd sizes and values in a header (payload size, version, kind), with
//    the manifest to match, and a manifest (made by the test) claiming a
//    file size of 2^62 or listing a file 100000 times.
// For each: exit code 1, never a signal and never a hang (every command has
// a time limit), a message naming the damaged file, and for restore no
// process of the tree alive afterwards (the pids stay free) and an error of
// the checks that run before the tree is created.
//
// Manifest fix-ups go through the tool itself: `cryo decode --image
// manifest.img`, the size and XXH3 of the file edited in the JSON, `cryo
// encode` (which checks every other file against the edited manifest).
// (tests/unit/image_test.cpp has the unit-level header and manifest checks;
// e2e_test.cpp's Errors tests a few single cases of restore.)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <gtest/gtest.h>

#include "harness.h"
#include "steps.h"

namespace cryo::e2e {

namespace {

constexpr auto kCommandTimeout = std::chrono::seconds(60);

void write_bytes(const std::string& path, const std::string& bytes)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
}

std::vector<std::string> file_names(const std::string& directory)
{
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(directory))
        names.push_back(entry.path().filename().string());
    std::ranges::sort(names);
    return names;
}

// Runs cryo with a time limit: a command still running then is killed, and
// reported as a hang (exit code -1).
CommandResult run_cryo(Session& session, const std::vector<std::string>& args)
{
    static int counter = 0;
    std::string output = session.dir().file("hostile-output-" + std::to_string(++counter));
    pid_t pid = session.start_cryo(args, output);
    CommandResult result;
    auto status = session.wait_for_exit(pid, kCommandTimeout);
    if (!status) {
        send_signal(pid, SIGKILL);
        session.wait_for_exit(pid, std::chrono::seconds(10));
        result.output = "HANG (killed after the time limit)\n" + read_file(output);
        return result;
    }
    result.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
    if (WIFSIGNALED(*status))
        result.output = "KILLED BY SIGNAL " + std::to_string(WTERMSIG(*status)) + "\n";
    result.output += read_file(output);
    return result;
}

// A checkpoint of a victim whose tree is gone, and what it held.
struct Checkpoint {
    std::string images;
    pid_t root { 0 };
    std::vector<pid_t> pids;   // every live process of the tree
};

Checkpoint make_checkpoint(Session& session, const std::string& victim, const std::string& name)
{
    Checkpoint checkpoint;
    checkpoint.root = start_and_wait_ready(session, victim);
    checkpoint.images = session.dir().file(name);
    dump(session, checkpoint.root, checkpoint.images);
    checkpoint.pids = session.image_pids(checkpoint.images);
    return checkpoint;
}

std::string context(const std::string& what, const CommandResult& result)
{
    return what + ": exit " + std::to_string(result.exit_code) + "\n" + result.output;
}

// Errors of the checks restore makes before it creates the tree (verify:
// manifest, sizes and checksums; read images: headers, parsing, and the
// content checks of tree, cores and page maps).
const std::vector<std::string> kPreCreationErrors {
    "size is", "checksum mismatch", "truncated", "not a cryo image", "holds kind", "format version",
    "payload is", "cannot parse", "lists", "not listed in the manifest", "the first thread is not the leader",
    "unexpected page file name", "not a valid range of pages", "lies beyond the end of", "not inside one mapping",
    "invalid mapping", "overlap", "missing", "root process", "invalid or repeated pid", "refers to file id",
};

// `cryo restore` of a damaged checkpoint: exit 1, no signal, no hang, the
// file named, an error of the checks made before the tree exists, and no
// process of the tree alive afterwards.
void expect_restore_refused(Session& session, const Checkpoint& checkpoint, const std::string& names,
                            const std::string& what)
{
    auto result = run_cryo(session, { "restore", "-D", checkpoint.images, "-d" });
    EXPECT_EQ(result.exit_code, 1) << context("restore, " + what, result);
    EXPECT_NE(result.output.find(names), std::string::npos) << context("restore, " + what, result);
    bool pre_creation = std::ranges::any_of(kPreCreationErrors, [&](const std::string& error) {
        return result.output.find(error) != std::string::npos;
    });
    EXPECT_TRUE(pre_creation) << "not an error of the checks before the tree is created: "
                              << context("restore, " + what, result);
    for (pid_t pid : checkpoint.pids)
        EXPECT_FALSE(process_exists(pid)) << "restore, " << what << ": pid " << pid << " exists afterwards";
    if (result.exit_code == 0)
        session.wait_until_gone(checkpoint.pids, std::chrono::seconds(1));
}

// `cryo show` and `cryo decode`: exit 1 with the file named when `refused`,
// else (a damage only restore can see) exit 0 or 1; never a signal or a hang.
void expect_inspection_clean(Session& session, const Checkpoint& checkpoint, const std::string& names,
                             const std::string& what, bool refused = true)
{
    std::string json = session.dir().file("hostile.json");
    for (const auto& args : { std::vector<std::string> { "show", checkpoint.images },
                              std::vector<std::string> { "decode", "-D", checkpoint.images, "-o", json } }) {
        auto result = run_cryo(session, args);
        std::string label = args[0] + ", " + what;
        if (refused) {
            EXPECT_EQ(result.exit_code, 1) << context(label, result);
            EXPECT_NE(result.output.find(names), std::string::npos) << context(label, result);
        } else {
            EXPECT_TRUE(result.exit_code == 0 || result.exit_code == 1) << context(label, result);
        }
    }
}

// The size and XXH3 the manifest records for `name` set to those of the
// file as it is now, through cryo decode/encode of the manifest.
void fix_manifest(Session& session, const std::string& images, const std::string& name)
{
    std::string json = session.dir().file("manifest.json");
    auto decoded = run_cryo(session, { "decode", "-D", images, "--no-verify", "--image", "manifest.img", "-o", json });
    ASSERT_EQ(decoded.exit_code, 0) << decoded.output;
    std::string text = read_file(json);
    std::string bytes = read_file(images + "/" + name);
    size_t at = text.find("\"name\": \"" + name + "\"");
    ASSERT_NE(at, std::string::npos) << name << " is not in the manifest:\n" << text;
    std::smatch match;
    std::string rest = text.substr(at);
    std::regex entry("(\"size\": \")([0-9]+)(\",\\s*\"xxh3\": \")([0-9]+)(\")");
    ASSERT_TRUE(std::regex_search(rest, match, entry)) << text;
    std::string fixed = match[1].str() + std::to_string(bytes.size()) + match[3].str()
        + std::to_string(XXH3_64bits(bytes.data(), bytes.size())) + match[5].str();
    text = text.substr(0, at) + match.prefix().str() + fixed + match.suffix().str();
    write_bytes(json, text);
    auto encoded = run_cryo(session, { "encode", "-i", json, "-D", images });
    ASSERT_EQ(encoded.exit_code, 0) << encoded.output;
}

// Replaces the value of the `occurrence`th "key": in a JSON document (a
// number or a string of digits, as protobuf prints 64-bit numbers).
std::string replace_json_value(const std::string& json, const std::string& key, const std::string& value,
                               int occurrence = 0)
{
    std::regex pattern("(\"" + key + "\": )(\"-?[0-9]+\"|-?[0-9]+)");
    auto it = std::sregex_iterator(json.begin(), json.end(), pattern);
    for (int i = 0; i < occurrence && it != std::sregex_iterator(); ++i)
        ++it;
    if (it == std::sregex_iterator())
        return json;
    const auto& match = *it;
    return json.substr(0, static_cast<size_t>(match.position(0))) + match[1].str() + "\"" + value + "\""
        + json.substr(static_cast<size_t>(match.position(0) + match.length(0)));
}

// Edits one image through cryo decode/encode (the manifest follows).
void edit_image(Session& session, const std::string& images, const std::string& name,
                const std::function<std::string(const std::string&)>& edit)
{
    std::string json = session.dir().file(name + ".json");
    auto decoded = run_cryo(session, { "decode", "-D", images, "--image", name, "-o", json });
    ASSERT_EQ(decoded.exit_code, 0) << decoded.output;
    std::string before = read_file(json);
    std::string after = edit(before);
    ASSERT_NE(before, after) << "the edit of " << name << " changed nothing:\n" << before;
    write_bytes(json, after);
    auto encoded = run_cryo(session, { "encode", "-i", json, "-D", images });
    ASSERT_EQ(encoded.exit_code, 0) << encoded.output;
}

std::string name_of(const std::string& prefix, pid_t pid) { return prefix + "-" + std::to_string(pid) + ".img"; }

// Protobuf wire format, enough for a manifest.
void put_varint(std::string& out, uint64_t value)
{
    while (value >= 0x80) {
        out += static_cast<char>((value & 0x7f) | 0x80);
        value >>= 7;
    }
    out += static_cast<char>(value);
}

void put_field(std::string& out, int number, uint64_t value)
{
    put_varint(out, static_cast<uint64_t>(number) << 3);
    put_varint(out, value);
}

void put_field(std::string& out, int number, const std::string& bytes)
{
    put_varint(out, (static_cast<uint64_t>(number) << 3) | 2);
    put_varint(out, bytes.size());
    out += bytes;
}

// A manifest (proto/manifest.proto) of every file in `images` as they are,
// with the sizes in `sizes` claimed instead of the real ones, and tree.img
// listed `tree_entries` times; behind a valid header (format.h).
void write_manifest(const std::string& images, pid_t root, const std::map<std::string, uint64_t>& sizes,
                    int tree_entries = 1)
{
    std::string payload;
    put_field(payload, 1, 1);   // format_version
    put_field(payload, 6, static_cast<uint64_t>(root));
    for (const auto& name : file_names(images)) {
        if (name == "manifest.img")
            continue;
        std::string bytes = read_file(images + "/" + name);
        std::string file;
        put_field(file, 1, name);
        put_field(file, 2, sizes.contains(name) ? sizes.at(name) : bytes.size());
        put_field(file, 3, XXH3_64bits(bytes.data(), bytes.size()));
        for (int i = 0; i < (name == "tree.img" ? tree_entries : 1); ++i)
            put_field(payload, 7, file);
    }
    std::string header = "CRYO";
    auto put32 = [&](uint32_t value) { header.append(reinterpret_cast<const char*>(&value), 4); };
    auto put64 = [&](uint64_t value) { header.append(reinterpret_cast<const char*>(&value), 8); };
    put32(0x4e414d);   // "MAN"
    put32(1);          // format version
    put32(0);
    put64(payload.size());
    put64(XXH3_64bits(payload.data(), payload.size()));
    write_bytes(images + "/manifest.img", header + payload);
}

// Offsets to cut a file at, or to flip a bit at: in and around each field
// of the header of a metadata file, a few for a page file (raw data).
std::set<size_t> damage_points(const std::string& name, size_t size, bool truncation)
{
    std::set<size_t> points;
    std::vector<size_t> wanted;
    if (!name.starts_with("pages-"))
        wanted = truncation ? std::vector<size_t> { 0, 1, 16, 31, 32, 33, size / 2, size - 1 }
                            : std::vector<size_t> { 0, 4, 8, 16, 20, 24, 32, size / 2, size - 1 };
    else
        wanted = truncation ? std::vector<size_t> { 0, 31, size / 2, size - 1 }
                            : std::vector<size_t> { 0, 16, 24, size / 2, size - 1 };
    for (size_t point : wanted)
        if (point < size)
            points.insert(point);
    return points;
}

class Hostile : public testing::TestWithParam<std::string> { };

std::string victim_name(const testing::TestParamInfo<std::string>& info) { return info.param; }

} // namespace

// Every file cut short at several points: the manifest (or, for the
// manifest, its header) names it; restore starts nothing.
TEST_P(Hostile, TruncatedFilesAreRefusedBeforeAnythingStarts)
{
    Session session;
    Checkpoint checkpoint = make_checkpoint(session, GetParam(), "images");
    for (const auto& name : file_names(checkpoint.images)) {
        std::string path = checkpoint.images + "/" + name;
        std::string pristine = read_file(path);
        for (size_t point : damage_points(name, pristine.size(), true)) {
            std::string what = name + " cut to " + std::to_string(point) + " bytes";
            write_bytes(path, pristine.substr(0, point));
            expect_restore_refused(session, checkpoint, name, what);
            expect_inspection_clean(session, checkpoint, name, what);
        }
        write_bytes(path, pristine);
    }
}

// One bit flipped in several places of every file: the checksums catch it.
TEST_P(Hostile, FlippedBitsAreRefusedBeforeAnythingStarts)
{
    Session session;
    Checkpoint checkpoint = make_checkpoint(session, GetParam(), "images");
    for (const auto& name : file_names(checkpoint.images)) {
        std::string path = checkpoint.images + "/" + name;
        std::string pristine = read_file(path);
        for (size_t point : damage_points(name, pristine.size(), false)) {
            std::string what = name + " with bit " + std::to_string(point % 8) + " of byte " + std::to_string(point) + " flipped";
            std::string damaged = pristine;
            damaged[point] = static_cast<char>(damaged[point] ^ (1 << (point % 8)));
            write_bytes(path, damaged);
            expect_restore_refused(session, checkpoint, name, what);
            expect_inspection_clean(session, checkpoint, name, what);
        }
        write_bytes(path, pristine);
    }
}

INSTANTIATE_TEST_SUITE_P(Victims, Hostile, testing::Values("tree", "threads", "pipes", "unix"), victim_name);

// A file of another checkpoint in place of one of this one: the manifest
// catches it; with the manifest fixed up to match, the content checks do
// (a core whose first thread is another pid, a page map naming another
// page file, a tree of other pids whose images are not listed).
TEST(HostileSwap, FileOfAnotherCheckpointIsRefused)
{
    Session session;
    Checkpoint tree = make_checkpoint(session, "tree", "tree-images");
    Checkpoint other = make_checkpoint(session, "pipes", "pipes-images");
    struct Swap {
        std::string name;     // in `tree`
        std::string source;   // in `other`
    };
    for (const auto& swap : { Swap { name_of("core", tree.root), name_of("core", other.root) },
                              Swap { name_of("pagemap", tree.root), name_of("pagemap", other.root) },
                              Swap { "tree.img", "tree.img" } }) {
        std::string path = tree.images + "/" + swap.name;
        std::string pristine = read_file(path);
        std::string pristine_manifest = read_file(tree.images + "/manifest.img");
        write_bytes(path, read_file(other.images + "/" + swap.source));

        std::string what = swap.name + " of another checkpoint";
        expect_restore_refused(session, tree, swap.name, what);
        expect_inspection_clean(session, tree, swap.name, what);

        ASSERT_NO_FATAL_FAILURE(fix_manifest(session, tree.images, swap.name));
        what += ", manifest fixed up";
        // A tree of other pids: their images are not in this checkpoint.
        expect_restore_refused(session, tree, swap.name == "tree.img" ? name_of("core", other.root) : swap.name, what);
        // The swapped file is a valid image: show and decode may read it.
        expect_inspection_clean(session, tree, swap.name, what, false);

        write_bytes(path, pristine);
        write_bytes(tree.images + "/manifest.img", pristine_manifest);
    }
    // Untouched, the checkpoint still restores (the damage was all there was).
    restore_detached(session, tree.root, tree.images);
    release_and_expect_pass(session, tree.root);
}

// Page maps that point outside their page file or outside every mapping,
// absurd page counts, a mapping that ends before it starts: valid images
// with a manifest to match, refused by restore before the tree exists and
// by `cryo mem` before any read.
TEST(HostilePageMap, RunsOutsideThePageFileOrMappingsAreRefused)
{
    Session session;
    Checkpoint checkpoint = make_checkpoint(session, "tree", "images");
    std::string pagemap = name_of("pagemap", checkpoint.root);
    std::string mm = name_of("mm", checkpoint.root);
    std::string pages_path = checkpoint.images + "/" + name_of("pages", checkpoint.root);
    size_t page_file_size = std::filesystem::file_size(pages_path);
    struct Edit {
        std::string name;
        std::string key;
        std::string value;
        int occurrence;
        std::string error;
        bool mem_refuses { true };   // `cryo mem` reads runs outside mappings as they are
    };
    for (const auto& edit : {
             Edit { pagemap, "file_offset", std::to_string(page_file_size), 0, "lies beyond the end of" },
             Edit { pagemap, "file_offset", "18446744073709547520", 0, "lies beyond the end of" },
             Edit { pagemap, "page_count", std::to_string(page_file_size / 4096 + 1), 0, "lies beyond the end of" },
             Edit { pagemap, "page_count", "4611686018427387904", 0, "not a valid range of pages" },
             Edit { pagemap, "page_count", "0", 0, "not a valid range of pages" },
             Edit { pagemap, "address", "18446744073709547520", 0, "not a valid range of pages" },
             Edit { pagemap, "address", "4096", 0, "not inside one mapping", false },
             Edit { mm, "end", "4096", 0, "invalid mapping" },
         }) {
        std::string path = checkpoint.images + "/" + edit.name;
        std::string pristine = read_file(path);
        std::string pristine_manifest = read_file(checkpoint.images + "/manifest.img");
        ASSERT_NO_FATAL_FAILURE(edit_image(session, checkpoint.images, edit.name, [&](const std::string& json) {
            return replace_json_value(json, edit.key, edit.value, edit.occurrence);
        }));
        std::string what = edit.name + " with " + edit.key + " " + edit.value;
        expect_restore_refused(session, checkpoint, edit.name, what);
        auto restore = run_cryo(session, { "restore", "-D", checkpoint.images, "-d" });
        EXPECT_NE(restore.output.find(edit.error), std::string::npos) << context("restore, " + what, restore);
        auto mem = run_cryo(session, { "mem", "-D", checkpoint.images, "--pid", std::to_string(checkpoint.root),
                                       "--search", "cryo" });
        if (edit.mem_refuses) {
            EXPECT_EQ(mem.exit_code, 1) << context("mem, " + what, mem);
            EXPECT_NE(mem.output.find(edit.name), std::string::npos) << context("mem, " + what, mem);
            EXPECT_NE(mem.output.find(edit.error), std::string::npos) << context("mem, " + what, mem);
        } else {
            EXPECT_TRUE(mem.exit_code == 0 || mem.exit_code == 1) << context("mem, " + what, mem);
        }
        // show and decode read no page data: they may print the image.
        expect_inspection_clean(session, checkpoint, edit.name, what, false);
        write_bytes(path, pristine);
        write_bytes(checkpoint.images + "/manifest.img", pristine_manifest);
    }
}

// Absurd values in a header (payload size, version, kind) with the manifest
// to match, and an absurd file size in the manifest itself.
TEST(HostileHeader, AbsurdSizesAndValuesAreRefused)
{
    Session session;
    Checkpoint checkpoint = make_checkpoint(session, "threads", "images");
    std::string core = name_of("core", checkpoint.root);
    struct Field {
        size_t offset;
        uint64_t value;
        size_t width;
        std::string error;
    };
    std::string core_path = checkpoint.images + "/" + core;
    std::string pristine = read_file(core_path);
    std::string pristine_manifest = read_file(checkpoint.images + "/manifest.img");
    for (const auto& field : { Field { 16, 1ull << 63, 8, "header says" }, Field { 16, ~0ull, 8, "header says" },
                               Field { 16, 0, 8, "header says" }, Field { 16, pristine.size(), 8, "header says" },
                               Field { 8, 0xffffffff, 4, "format version" }, Field { 4, 0x4e414d, 4, "holds kind" },
                               Field { 24, 0, 8, "checksum mismatch" } }) {
        std::string damaged = pristine;
        std::memcpy(damaged.data() + field.offset, &field.value, field.width);
        write_bytes(core_path, damaged);
        ASSERT_NO_FATAL_FAILURE(fix_manifest(session, checkpoint.images, core));
        std::string what = core + " with header bytes " + std::to_string(field.offset) + ".." +
            std::to_string(field.offset + field.width) + " = " + std::to_string(field.value) + ", manifest fixed up";
        expect_restore_refused(session, checkpoint, core, what);
        auto restore = run_cryo(session, { "restore", "-D", checkpoint.images, "-d" });
        EXPECT_NE(restore.output.find(field.error), std::string::npos) << context("restore, " + what, restore);
        expect_inspection_clean(session, checkpoint, core, what);
        write_bytes(core_path, pristine);
        write_bytes(checkpoint.images + "/manifest.img", pristine_manifest);
    }

    // A manifest (written here, by hand) that says the page file is 4 EiB:
    // verify compares sizes before it reads anything. And one that lists a
    // file 100000 times.
    std::string pages = name_of("pages", checkpoint.root);
    write_manifest(checkpoint.images, checkpoint.root, { { pages, 1ull << 62 } });
    std::string what = "manifest.img claiming 4 EiB for " + pages;
    expect_restore_refused(session, checkpoint, pages, what);
    expect_inspection_clean(session, checkpoint, pages, what);
    write_manifest(checkpoint.images, checkpoint.root, {}, 100000);
    what = "manifest.img listing tree.img 100000 times";
    expect_restore_refused(session, checkpoint, "manifest.img", what);
    expect_inspection_clean(session, checkpoint, "manifest.img", what);
    // Written the same way without damage, it is accepted: the checks above
    // were refusing the damage, not the hand-made manifest.
    write_manifest(checkpoint.images, checkpoint.root, {});
    restore_detached(session, checkpoint.root, checkpoint.images);
    release_and_expect_pass(session, checkpoint.root);
}

// tree.img edited with a pid listed twice (the drawn tree would loop), and
// with a chain of 20000 zombies, each the parent of the next (show drew the
// tree recursively: a deep enough chain overflowed its stack).
TEST(HostileTree, RepeatedPidsAndDeepChainsAreHandled)
{
    Session session;
    Checkpoint checkpoint = make_checkpoint(session, "tree", "images");
    std::string path = checkpoint.images + "/tree.img";
    std::string pristine = read_file(path);
    std::string pristine_manifest = read_file(checkpoint.images + "/manifest.img");
    auto entry = [](uint64_t pid, uint64_t ppid) {
        return "{ \"pid\": " + std::to_string(pid) + ", \"ppid\": " + std::to_string(ppid)
            + ", \"state\": \"PROCESS_STATE_ZOMBIE\" }";
    };
    // After the root's entry (the first; its last field is own_ns_pgid),
    // so that the root stays first as restore wants it.
    auto insert_processes = [&](const std::string& entries) {
        return [entries](const std::string& json) {
            size_t at = json.find("\"own_ns_pgid\"", json.find("\"processes\": ["));
            at = at == std::string::npos ? at : json.find('}', at);
            return at == std::string::npos ? json : json.substr(0, at + 1) + ", " + entries + json.substr(at + 1);
        };
    };

    ASSERT_NO_FATAL_FAILURE(edit_image(session, checkpoint.images, "tree.img",
                                       insert_processes(entry(checkpoint.root, checkpoint.root))));
    std::string what = "tree.img with pid " + std::to_string(checkpoint.root) + " twice";
    expect_restore_refused(session, checkpoint, "tree.img", what);
    auto show = run_cryo(session, { "show", checkpoint.images });
    EXPECT_EQ(show.exit_code, 1) << context("show, " + what, show);
    EXPECT_NE(show.output.find("tree.img: pid " + std::to_string(checkpoint.root) + " is listed twice"), std::string::npos)
        << context("show, " + what, show);
    write_bytes(path, pristine);
    write_bytes(checkpoint.images + "/manifest.img", pristine_manifest);

    // Pids above any pid_max: never those of a real process.
    std::string chain;
    for (uint64_t i = 0; i < 20000; ++i)
        chain += (i ? ", " : "") + entry(5000000 + i, i == 0 ? static_cast<uint64_t>(checkpoint.root) : 5000000 + i - 1);
    ASSERT_NO_FATAL_FAILURE(edit_image(session, checkpoint.images, "tree.img", insert_processes(chain)));
    what = "tree.img with a chain of 20000 zombies";
    show = run_cryo(session, { "show", checkpoint.images, "--tree" });
    EXPECT_EQ(show.exit_code, 0) << context("show, " + what, show).substr(0, 4096);
    EXPECT_NE(show.output.find("5019999"), std::string::npos) << context("show, " + what, show).substr(0, 4096);
    auto decode = run_cryo(session, { "decode", "-D", checkpoint.images, "-o", session.dir().file("chain.json") });
    EXPECT_EQ(decode.exit_code, 0) << context("decode, " + what, decode);
    write_bytes(path, pristine);
    write_bytes(checkpoint.images + "/manifest.img", pristine_manifest);
}

} // namespace cryo::e2e
