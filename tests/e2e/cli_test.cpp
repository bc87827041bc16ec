// The command line itself: every subcommand is listed and answers --help
// with its own options, although only the subcommand a command line names
// gets its options built (src/cli/main.cpp); what is not a subcommand, or
// lacks a required option, is refused with CLI11's message.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"

namespace cryo::e2e {
namespace {

struct SubcommandHelp {
    std::string name;
    std::string own_option;   // an option only this subcommand has
};

const std::vector<SubcommandHelp> kSubcommands {
    { "dump", "--ghost-limit" },         { "pre-dump", "--tracker-timeout" }, { "restore", "--inherit-fd" },
    { "lazy-pages", "--timeout" },      { "show", "--env" },                 { "decode", "--image" },
    { "encode", "--input" },            { "mem", "--search-hex" },           { "diff", "after" },
    { "page-server", "--serve" },       { "migrate", "--dirty-threshold" },  { "dedup", "--images-dir" },
    { "check", "--images-dir" },
};

TEST(Cli, TopLevelHelpListsEverySubcommand)
{
    Session session;
    auto result = session.cryo({ "--help" });
    ASSERT_EQ(result.exit_code, 0) << result.output;
    for (const auto& subcommand : kSubcommands)
        EXPECT_NE(result.output.find("\n  " + subcommand.name + " "), std::string::npos) << subcommand.name;
    // The top level has no subcommand's options.
    EXPECT_EQ(result.output.find("--leave-running"), std::string::npos) << result.output;
}

TEST(Cli, EachSubcommandsHelpShowsItsOwnOptionsOnly)
{
    Session session;
    for (const auto& subcommand : kSubcommands) {
        auto result = session.cryo({ subcommand.name, "--help" });
        EXPECT_EQ(result.exit_code, 0) << subcommand.name << ": " << result.output;
        EXPECT_NE(result.output.find(subcommand.own_option), std::string::npos) << subcommand.name << ": "
                                                                                 << result.output;
        if (subcommand.name != "dump")
            EXPECT_EQ(result.output.find("--leave-running"), std::string::npos) << subcommand.name;
    }
}

TEST(Cli, VersionIsPrinted)
{
    Session session;
    auto result = session.cryo({ "--version" });
    EXPECT_EQ(result.exit_code, 0) << result.output;
    EXPECT_EQ(result.output.rfind("cryo ", 0), 0u) << result.output;
}

TEST(Cli, UnknownOrMissingSubcommandIsRefused)
{
    Session session;
    for (const std::vector<std::string>& args :
         { std::vector<std::string> {}, std::vector<std::string> { "dumpp" }, std::vector<std::string> { "-v" } }) {
        auto result = session.cryo(args);
        EXPECT_NE(result.exit_code, 0) << result.output;
        EXPECT_NE(result.output.find("subcommand"), std::string::npos) << result.output;
    }
}

TEST(Cli, OptionsAreParsedForTheNamedSubcommandAfterVerbosity)
{
    Session session;
    // -v after the subcommand counts for it, and the subcommand's own
    // required option is still named when it is missing.
    auto missing = session.cryo({ "dump", "-v", "-D", session.dir().file("images") });
    EXPECT_NE(missing.exit_code, 0);
    EXPECT_NE(missing.output.find("--tree is required"), std::string::npos) << missing.output;
    // An option of another subcommand is not this one's.
    auto foreign = session.cryo({ "restore", "--leave-running", "-D", session.dir().path() });
    EXPECT_NE(foreign.exit_code, 0);
    EXPECT_NE(foreign.output.find("not expected: --leave-running"), std::string::npos) << foreign.output;
}

} // namespace
} // namespace cryo::e2e
