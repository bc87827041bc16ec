// Golden tests of `cryo show` on checkpoints made here: a tree with
// children, a session, groups and a zombie (`tree`, --tree); open files of
// several kinds at fixed numbers (`show_files`, --files); memory regions of
// every kind in a statically linked program (`memory_static`, every
// section: no shared library makes the map depend on the machine). The text
// is compared after normalisation (golden.h, golden/README.md), the JSON
// document by its structure. CRYO_UPDATE_GOLDEN=1 rewrites the files.
#include <gtest/gtest.h>
#include <unistd.h>

#include "golden.h"
#include "harness.h"
#include "steps.h"

namespace cryo::e2e {

namespace {

struct GoldenCase {
    std::string victim;
    std::vector<std::string> show_options;
    std::string golden;   // name of the text golden; the JSON one adds ".json"
};

// Keeps the discovered test names short (ctest shows the printed parameter).
void PrintTo(const GoldenCase& golden_case, std::ostream* out)
{
    *out << golden_case.golden;
}

class ShowGolden : public testing::TestWithParam<GoldenCase> { };

} // namespace

TEST_P(ShowGolden, TextAndJsonStructureMatchTheGoldenFiles)
{
    const auto& param = GetParam();
    Session session;
    pid_t pid = start_and_wait_ready(session, param.victim);
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, true));

    std::vector<std::string> text_args { "show", images };
    text_args.insert(text_args.end(), param.show_options.begin(), param.show_options.end());
    auto text = session.cryo(text_args);
    ASSERT_EQ(text.exit_code, 0) << text.output;
    auto json = session.cryo({ "show", images, "--format", "json" });
    ASSERT_EQ(json.exit_code, 0) << json.output;

    GoldenPaths paths { session.dir().path(), CRYO_VICTIM_DIR, { ::getpgid(0), ::getsid(0) } };
    expect_golden(param.golden + ".txt", normalise_show_text(text.output, json.output, paths));
    expect_golden(param.golden + ".json.txt", json_structure(json.output));
    release_and_expect_pass(session, pid);
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, ShowGolden,
                         testing::Values(GoldenCase { "tree", { "--tree" }, "show_tree" },
                                         GoldenCase { "show_files", { "--files" }, "show_files" },
                                         GoldenCase { "memory_static", {}, "show_memory" }),
                         [](const testing::TestParamInfo<GoldenCase>& info) { return info.param.golden; });

// The normalisation itself: what it replaces and what it must leave alone.
TEST(ShowGoldenNormalise, ReplacesOnlyTheVolatileValues)
{
    std::string json = R"({"processes": [{"pid": 4242, "ppid": 17, "pgid": 4242, "sid": 17,
                            "threads": [{"tid": 4242}, {"tid": 4243}]}]})";
    std::string text = "checkpoint /tmp/t/images: format 1, cryo 0.1, host h, kernel 6.1, taken 2026-01-01 00:00:00 UTC\n"
                       "12 files, 3.4 MiB, checksums verified\n"
                       "  4242 /build/victims/victim_x /tmp/t/victim.log  [victim_x] pgid 4242 sid 17  2 threads\n"
                       "  └─ 4243 /build/victims/victim_x /tmp/t/vic...  [victim_x] pgid 4242 sid 17\n"
                       "  uid 0/0/0/0  gid 0/0/0/0  threads: 4242 (a) 4243 (b)\n"
                       "  exe /build/victims/victim_x  cwd /somewhere\n"
                       "  memory: 9 mappings, 1.0G mapped, 64.2M stored\n"
                       "    7ffd12345000-7ffd12366000 rw-p     132K      12K  [stack]\n"
                       "    7ffd12367000-7ffd12369000 r--p       8K        0  [vvar]\n"
                       "    000000400000-000000401000 r--p       4K       4K  /build/victims/victim_x\n"
                       "    000000401000-000000402000 rw-p       4K       4K  \n"
                       "       1  file /tmp/t/victim.log (pos 17, flags 2001)  (shared with 4242:2)\n"
                       "      13  read end of pipe:[98765]\n"
                       "      15  unix socket:[555] peer 556 (1 queued messages)\n"
                       "      16  unix socket:[556] peer 555 (0 queued messages)\n"
                       "dump statistics: frozen 1.2 ms, total 3.4 ms; 5 pages scanned, 4 stored, 1 skipped\n"
                       "  freeze                             0.3 ms\n";
    std::string expected = "checkpoint <TMP>/images: format 1, cryo <VERSION>, host <HOST>, kernel <KERNEL>, taken <TIME>\n"
                           "12 files, <MIB> MiB, checksums verified\n"
                           "  <P1> <VICTIMS>/victim_x <TMP>/victim.log  [victim_x] pgid <P1> sid <P3>  2 threads\n"
                           "  └─ <P2> <COMMAND>...  [victim_x] pgid <P1> sid <P3>\n"
                           "  uid 0/0/0/0  gid 0/0/0/0  threads: <P1> (a) <P2> (b)\n"
                           "  exe <VICTIMS>/victim_x  cwd <CWD>\n"
                           "  memory: <N> mappings, <SIZE> mapped, <SIZE> stored\n"
                           "    <ADDR>-<ADDR> r--p <SIZE> <SIZE>  <VICTIMS>/victim_x\n"   // rows sorted
                           "    <ADDR>-<ADDR> rw-p       4K       4K  \n"
                           "    <ADDR>-<ADDR> rw-p <SIZE> <SIZE>  [stack]\n"
                           "       1  file <TMP>/victim.log (pos <POS>, flags 2001)  (shared with <P1>:2)\n"
                           "      13  read end of pipe:[<I1>]\n"
                           "      15  unix socket:[<I2>] peer <I3> (1 queued messages)\n"
                           "      16  unix socket:[<I3>] peer <I2> (0 queued messages)\n"
                           "dump statistics: <NUMBERS>\n"
                           "  freeze <MS> ms\n";
    EXPECT_EQ(normalise_show_text(text, json, { "/tmp/t", "/build/victims" }), expected);
}

// The group and session the test runs in are outside the checkpoint and
// differ by environment (a shell's locally, 0 in a PID namespace whose
// leaders are outside it): they get their own placeholders and take no
// number, so the numbering is the same everywhere. Only ids in a pid's
// place are replaced: an fd or a position equal to a pid stays.
TEST(ShowGoldenNormalise, TheOuterGroupAndSessionAreTheSameEverywhere)
{
    for (long outer : { 0L, 17L }) {
        std::string id = std::to_string(outer);
        std::string json = R"({"processes": [{"pid": 42, "ppid": 9, "pgid": )" + id + R"(, "sid": )" + id
            + R"(, "threads": [{"tid": 42}]}, {"pid": 43, "ppid": 42, "pgid": 43, "sid": 43}]})";
        std::string text = "  42 x  [x] pgid " + id + " sid " + id + "\n"
                           "  └─ 43 x  [x] pgid 43 sid 43\n"
                           "      42  file /f (pos 43, flags 2)  (shared with 43:42)\n";
        EXPECT_EQ(normalise_show_text(text, json, { "/tmp/t", "/build/victims", { outer, outer } }),
                  "  <P1> x  [x] pgid <OUTER-PGID> sid <OUTER-SID>\n"
                  "  └─ <P2> x  [x] pgid <P2> sid <P2>\n"
                  "      42  file /f (pos 43, flags 2)  (shared with <P2>:42)\n")
            << "outer group and session " << outer;
    }
}

TEST(ShowGoldenNormalise, JsonStructureListsEveryKeyPathOnce)
{
    std::string json = R"({"a": {"b": 1, "c": "x"}, "list": [{"d": true}, {"d": false, "e": null}], "empty": []})";
    EXPECT_EQ(json_structure(json), ": object\n"
                                    "a.b: number\n"
                                    "a.c: string\n"
                                    "a: object\n"
                                    "empty: array\n"
                                    "list: array\n"
                                    "list[].d: bool\n"
                                    "list[].e: null\n"
                                    "list[]: object\n");
}

} // namespace cryo::e2e
