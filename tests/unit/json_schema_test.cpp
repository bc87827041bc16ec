// The JSON documents of `cryo show --format json` (report.Report) and of
// `cryo decode` (one message per image kind) are what scripts read, and
// their keys are the protobuf field names: they must not change by
// accident. tests/unit/json_schema.txt describes, from the protobuf
// descriptors, every message reachable from those roots (field name,
// number, type) and every enum value (JSON prints enum names); this test
// compares it with what the code was built from.
//
// A field removed, renamed, renumbered or retyped (or an enum value) fails
// the test as an incompatible change; a deliberate break means editing the
// file by hand, in the same commit. New fields or values also fail until the
// file lists them: CRYO_UPDATE_SCHEMA=1 rewrites it, and refuses to when
// anything incompatible changed.
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include "core.pb.h"
#include "fds.pb.h"
#include "inspect/checkpoint.h"
#include "manifest.pb.h"
#include "mm.pb.h"
#include "report.pb.h"
#include "stats.pb.h"
#include "tree.pb.h"

namespace cryo::inspect {
namespace {

namespace pb = google::protobuf;

// One line per fact: "key: value", the key naming what must stay, the value
// what it must stay as.
using Schema = std::map<std::string, std::string>;

std::string field_type(const pb::FieldDescriptor& field)
{
    std::string type;
    if (field.type() == pb::FieldDescriptor::TYPE_MESSAGE || field.type() == pb::FieldDescriptor::TYPE_GROUP)
        type = field.message_type()->full_name();
    else if (field.type() == pb::FieldDescriptor::TYPE_ENUM)
        type = field.enum_type()->full_name();
    else
        type = field.type_name();
    return field.is_repeated() ? "repeated " + type : type;
}

void describe(const pb::Descriptor& message, Schema& schema, std::set<std::string>& seen)
{
    if (!seen.insert(message.full_name()).second)
        return;
    schema["message " + message.full_name()] = "present";
    for (int i = 0; i < message.field_count(); ++i) {
        const auto& field = *message.field(i);
        schema["message " + message.full_name() + " field " + field.name()]
            = std::to_string(field.number()) + " " + field_type(field);
        if (field.message_type())
            describe(*field.message_type(), schema, seen);
        if (const auto* type = field.enum_type(); type && seen.insert(type->full_name()).second)
            for (int value = 0; value < type->value_count(); ++value)
                schema["enum " + type->full_name() + " value " + type->value(value)->name()]
                    = std::to_string(type->value(value)->number());
    }
}

// What the code was built from: the show document's root, and per file
// name the decode document's kind and message.
Schema current_schema()
{
    Schema schema;
    std::set<std::string> seen;
    schema["show document"] = report::Report::descriptor()->full_name();
    describe(*report::Report::descriptor(), schema, seen);
    for (const char* name : { "manifest.img", "tree.img", "files.img", "stats-dump.img", "stats-restore.img", "core-1.img",
                              "mm-1.img", "pagemap-1.img", "fds-1.img" }) {
        auto message = new_message(name);
        EXPECT_NE(message, nullptr) << name;
        if (!message)
            continue;
        schema["decode kind " + std::string(json_kind_name(name))] = message->GetDescriptor()->full_name();
        describe(*message->GetDescriptor(), schema, seen);
    }
    return schema;
}

std::string schema_text(const Schema& schema)
{
    std::string text = "# The JSON schema of `cryo show --format json` and `cryo decode`, from the protobuf\n"
                       "# descriptors (tests/unit/json_schema_test.cpp). Regenerate with\n"
                       "#   CRYO_UPDATE_SCHEMA=1 build/tests/unit/cryo_unit_tests --gtest_filter='JsonSchema.*'\n"
                       "# which only adds: a removed, renamed, renumbered or retyped field is edited here by hand.\n";
    for (const auto& [key, value] : schema)
        text += key + ": " + value + "\n";
    return text;
}

Schema parse_schema(const std::string& text)
{
    Schema schema;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        auto colon = line.rfind(": ");
        if (line.empty() || line[0] == '#' || colon == std::string::npos)
            continue;
        schema[line.substr(0, colon)] = line.substr(colon + 2);
    }
    return schema;
}

std::string read_checked_in()
{
    std::ifstream in(CRYO_JSON_SCHEMA, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(JsonSchema, ShowAndDecodeDocumentsKeepTheirSchema)
{
    Schema now = current_schema();
    Schema checked_in = parse_schema(read_checked_in());
    std::string incompatible, added;
    for (const auto& [key, value] : checked_in) {
        auto it = now.find(key);
        if (it == now.end())
            incompatible += "  removed or renamed: " + key + ": " + value + "\n";
        else if (it->second != value)
            incompatible += "  changed: " + key + ": was " + value + ", now " + it->second + "\n";
    }
    for (const auto& [key, value] : now)
        if (!checked_in.contains(key))
            added += "  added: " + key + ": " + value + "\n";

    const char* update = std::getenv("CRYO_UPDATE_SCHEMA");
    if (update && std::string(update) == "1" && incompatible.empty()) {
        std::ofstream(CRYO_JSON_SCHEMA, std::ios::binary | std::ios::trunc) << schema_text(now);
        return;
    }
    EXPECT_TRUE(incompatible.empty())
        << "the JSON documents changed incompatibly (scripts reading them break):\n" << incompatible
        << "If this is deliberate, edit " << CRYO_JSON_SCHEMA << " by hand and say so in the commit.";
    EXPECT_TRUE(added.empty()) << "new fields, not yet in " << CRYO_JSON_SCHEMA << ":\n" << added
                               << "Run CRYO_UPDATE_SCHEMA=1 build/tests/unit/cryo_unit_tests --gtest_filter='JsonSchema.*' "
                                  "and commit the file.";
}

// The checker itself: what counts as a break and what as an addition.
TEST(JsonSchema, DescriptionNamesNumbersAndTypes)
{
    Schema schema = current_schema();
    EXPECT_EQ(schema["show document"], "cryo.report.Report");
    EXPECT_EQ(schema["decode kind core"], "cryo.image.ProcessCore");
    EXPECT_EQ(schema["decode kind stats-restore"], "cryo.image.RestoreStats");
    EXPECT_EQ(schema["message cryo.report.Process field pid"], "1 int32");
    EXPECT_EQ(schema["message cryo.report.Report field processes"], "2 repeated cryo.report.Process");
    EXPECT_EQ(schema["message cryo.image.Credentials field cap_effective"], "6 uint64");
    EXPECT_TRUE(schema.contains("message cryo.image.DumpStats field phases"));
    EXPECT_EQ(parse_schema(schema_text(schema)), schema);
}

} // namespace
} // namespace cryo::inspect
