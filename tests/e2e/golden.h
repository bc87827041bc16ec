// Golden files of `cryo show` (tests/e2e/golden/): its text with the values
// that change from run to run replaced by placeholders, and the structure
// of its JSON document. The replacements are listed, with the reason for
// each, in tests/e2e/golden/README.md; everything else must match byte for
// byte, so a change of the output format fails the test.
//
// CRYO_UPDATE_GOLDEN=1 in the environment writes the files instead of
// comparing (review the diff before committing it).
#pragma once

#include <string>

namespace cryo::e2e {

// The process group and session of the process running the test: outside
// the checkpoint, and different by environment (a shell's locally, 0 when
// the test runs in a PID namespace whose leaders are outside it). Printed
// as <OUTER-PGID> and <OUTER-SID>; -1: none.
struct OuterIds {
    long group = -1;
    long session = -1;
};

// What the normalisation replaces: the test's temporary directory, the
// directory holding the victims, the ids outside the checkpoint.
struct GoldenPaths {
    std::string temp_dir;
    std::string victim_dir;
    OuterIds outer {};
};

// `text` (output of `cryo show`) normalised; `report_json` is `cryo show
// --format json` of the same checkpoint, which names the pids and tids.
std::string normalise_show_text(const std::string& text, const std::string& report_json, const GoldenPaths& paths);
// One line per key path of a JSON document with the type of its value
// ("processes[].pid: number"), sorted, each path once: the document's
// structure without its values.
std::string json_structure(const std::string& json);
// Expects `actual` to equal tests/e2e/golden/NAME (or writes it there under
// CRYO_UPDATE_GOLDEN=1); on a mismatch the first differing line is shown.
void expect_golden(const std::string& name, const std::string& actual);

} // namespace cryo::e2e
