// End-to-end tests of `cryo migrate` to a `cryo page-server --restore` in
// another network namespace (netns.h), standing for another host. The
// predump victim writes its memory all the time, so every pre-dump round
// has pages to send; after the migration it runs on, restored by the
// destination with the same pid, and verifies every page itself.
#include <signal.h>
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

pid_t start_destination(Session& session, const NamespacePair& pair, const std::string& directory,
                        const std::string& key)
{
    return start_listening_cryo(session, pair,
                                { "page-server", "-D", directory, "--address", NamespacePair::server_address(),
                                  "--port", std::to_string(kPort), "--key", key, "--restore" },
                                directory + ".out");
}

pid_t start_migrate(Session& session, pid_t pid, const std::string& key, const std::string& output)
{
    return session.start_cryo({ "migrate", "-t", std::to_string(pid), "--address", NamespacePair::server_address(),
                                "--port", std::to_string(kPort), "--key", key, "--max-rounds", "3",
                                "--dirty-threshold", "64" },
                              output);
}

std::string make_key(Session& session, const std::string& name, char fill)
{
    std::string path = session.dir().file(name);
    write_file(path, std::string(64, fill));   // 64 hex digits
    return path;
}

int exit_code(Session& session, pid_t pid)
{
    auto status = session.wait_for_exit(pid, 120s);
    return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
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
    std::string key = make_key(session, "key", 'a');
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
    EXPECT_NE(report.find("migrated to 10.231.0.1:7412: restored the tree from " + destination + "/"),
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
    pid_t server = start_destination(session, pair, destination, make_key(session, "server-key", 'a'));
    pid_t migrate = start_migrate(session, pid, make_key(session, "client-key", 'b'), output);

    EXPECT_EQ(exit_code(session, migrate), 1) << read_file(output);
    EXPECT_NE(read_file(output).find("wrong key"), std::string::npos) << read_file(output);
    EXPECT_NE(read_file(output).find("pre-dump round 1 (the tree runs on)"), std::string::npos) << read_file(output);
    EXPECT_FALSE(file_exists(destination + "/1/manifest.img"));
    ASSERT_TRUE(send_signal(server, SIGKILL));
    session.wait_for_exit(server, 10s);
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e
