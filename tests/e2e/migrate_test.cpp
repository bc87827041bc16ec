// End-to-end tests of `cryo migrate` to a `cryo page-server --restore` in
// another network namespace (netns.h), standing for another host. The
// predump victim writes its memory all the time, so every pre-dump round
// has pages to send; after the migration it runs on, restored by the
// destination with the same pid, and verifies every page itself.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "netns.h"
#include "steps.h"

namespace cryo::e2e {

namespace {

using namespace std::chrono_literals;

constexpr uint16_t kPort = 7412;

// `fault` (CRYO_FAULT_LIST=1, CRYO_FAULT_AT=K: base/fault.h) goes to its
// environment.
pid_t start_destination(Session& session, const NamespacePair& pair, const std::string& directory,
                        const std::string& key, const std::string& fault = "")
{
    if (!fault.empty())
        ::setenv(fault.substr(0, fault.find('=')).c_str(), fault.substr(fault.find('=') + 1).c_str(), 1);
    pid_t pid = start_listening_cryo(session, pair,
                                     { "page-server", "-D", directory, "--address", NamespacePair::server_address(),
                                       "--port", std::to_string(kPort), "--key", key, "--restore" },
                                     directory + ".out");
    if (!fault.empty())
        ::unsetenv(fault.substr(0, fault.find('=')).c_str());
    return pid;
}

pid_t start_migrate(Session& session, pid_t pid, const std::string& key, const std::string& output,
                    const std::string& max_rounds = "3")
{
    return session.start_cryo({ "migrate", "-t", std::to_string(pid), "--address", NamespacePair::server_address(),
                                "--port", std::to_string(kPort), "--key", key, "--max-rounds", max_rounds,
                                "--dirty-threshold", "64" },
                              output);
}

int exit_code(Session& session, pid_t pid)
{
    return wait_exit_code(session, pid, 120s);
}

} // namespace

// Pre-dump rounds, the final dump and the restore on the destination: the
// source victim is killed (and reaped here, which frees its pid), the
// destination restores it with the same pid and it verifies itself.
TEST(Migrate, RunningVictimMovesAndVerifiesItself)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    std::string key = write_hex_key(session, "key", 'a');
    std::string destination = session.dir().file("destination");
    std::string output = session.dir().file("migrate.out");
    pid_t pid = start_and_wait_ready(session, "predump");
    pid_t server = start_destination(session, pair, destination, key);
    pid_t migrate = start_migrate(session, pid, key, output);

    auto source = session.wait_for_exit(pid, 120s);
    ASSERT_TRUE(source.has_value()) << read_file(output) << session.diagnostics();
    EXPECT_TRUE(WIFSIGNALED(*source) && WTERMSIG(*source) == SIGKILL) << "status " << *source;
    EXPECT_EQ(exit_code(session, migrate), 0) << read_file(output);
    EXPECT_EQ(exit_code(session, server), 0) << read_file(destination + ".out");
    session.track(pid);   // the restored victim

    std::string report = read_file(output);
    EXPECT_NE(report.find("migrated to " + NamespacePair::server_address() + ":7412: restored the tree from " + destination + "/"),
              std::string::npos) << report;
    EXPECT_NE(report.find("final"), std::string::npos) << report;
    EXPECT_NE(report.find("total time"), std::string::npos) << report;
    EXPECT_TRUE(file_exists(destination + "/1/manifest.img"));
    EXPECT_TRUE(file_exists(destination + "/2/manifest.img"));
    ASSERT_TRUE(process_exists(pid)) << read_file(destination + ".out") << session.diagnostics();
    release_and_expect_pass(session, pid);
}

// A destination holding another key refuses the first round: nothing was
// frozen, the source runs on.
TEST(Migrate, WrongKeyLeavesTheSourceRunning)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    std::string destination = session.dir().file("destination");
    std::string output = session.dir().file("migrate.out");
    pid_t pid = start_and_wait_ready(session, "predump");
    pid_t server = start_destination(session, pair, destination, write_hex_key(session, "server-key", 'a'));
    pid_t migrate = start_migrate(session, pid, write_hex_key(session, "client-key", 'b'), output);

    EXPECT_EQ(exit_code(session, migrate), 1) << read_file(output);
    EXPECT_NE(read_file(output).find("wrong key"), std::string::npos) << read_file(output);
    EXPECT_NE(read_file(output).find("pre-dump round 1 (the tree runs on)"), std::string::npos) << read_file(output);
    EXPECT_FALSE(file_exists(destination + "/1/manifest.img"));
    ASSERT_TRUE(send_signal(server, SIGKILL));
    session.wait_for_exit(server, 10s);
    release_and_expect_pass(session, pid);
}

// The restore on the destination fails (an injected fault at its first
// phase; the step is found by a first migration that lists the steps):
// the source tree is gone, as documented, the error says where the
// checkpoint is, and restoring it from there by hand works.
TEST(Migrate, FailedRestoreLeavesACheckpointToRestoreByHand)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    std::string step;
    {
        Session session;
        std::string key = write_hex_key(session, "key", 'a');
        std::string listed = session.dir().file("listed");
        pid_t pid = start_and_wait_ready(session, "predump");
        pid_t server = start_destination(session, pair, listed, key, "CRYO_FAULT_LIST=1");
        pid_t migrate = start_migrate(session, pid, key, session.dir().file("migrate.out"), "0");
        session.wait_for_exit(pid, 120s);
        ASSERT_EQ(exit_code(session, migrate), 0) << read_file(session.dir().file("migrate.out"));
        ASSERT_EQ(exit_code(session, server), 0) << read_file(listed + ".out");
        session.track(pid);
        release_and_expect_pass(session, pid);
        std::string listing = read_file(listed + ".out");
        auto at = listing.find(": phase ");
        ASSERT_NE(at, std::string::npos) << listing;
        auto start = listing.rfind("step ", at) + 5;
        step = listing.substr(start, at - start);
    }

    Session session;
    std::string key = write_hex_key(session, "key", 'a');
    std::string destination = session.dir().file("destination");
    std::string output = session.dir().file("migrate.out");
    pid_t pid = start_and_wait_ready(session, "predump");
    pid_t server = start_destination(session, pair, destination, key, "CRYO_FAULT_AT=" + step);
    pid_t migrate = start_migrate(session, pid, key, output, "0");
    auto source = session.wait_for_exit(pid, 120s);
    ASSERT_TRUE(source.has_value()) << read_file(output);
    EXPECT_EQ(exit_code(session, migrate), 1) << read_file(output);
    EXPECT_EQ(exit_code(session, server), 1) << read_file(destination + ".out");
    std::string report = read_file(output);
    EXPECT_NE(report.find("the restore failed and the source tree is gone"), std::string::npos) << report;
    EXPECT_NE(report.find("cryo restore -D DIR/1"), std::string::npos) << report;
    EXPECT_NE(report.find("injected fault at step " + step), std::string::npos) << report;
    EXPECT_FALSE(process_exists(pid));
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, destination + "/1"));
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e
