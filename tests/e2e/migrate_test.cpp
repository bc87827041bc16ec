// End-to-end tests of `cryo migrate` to a `cryo page-server --restore` in
// another network namespace with its own PID namespace (netns.h), standing
// for another host: the source tree stays frozen, its pids taken, until
// the destination has restored it with the same pids. The predump victim
// writes its memory all the time, so every pre-dump round has pages to
// send; after the migration it runs on, restored by the destination with
// the same pid (in the destination's namespace), and verifies every page
// itself.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
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
                                     directory + ".out", ServerPids::Own);
    if (!fault.empty())
        ::unsetenv(fault.substr(0, fault.find('=')).c_str());
    return pid;
}

// The destination's exit code.
int destination_exit_code(const std::string& directory)
{
    return own_pids_exit_code(directory + ".out", 120s);
}

pid_t start_migrate(Session& session, pid_t pid, const std::string& key, const std::string& output,
                    const std::string& max_rounds = "3")
{
    return session.start_cryo({ "migrate", "-t", std::to_string(pid), "--address", NamespacePair::server_address(),
                                "--port", std::to_string(kPort), "--key", key, "--max-rounds", max_rounds,
                                "--dirty-threshold", "64" },
                              output);
}

// migrate --lazy, its work directory in the session's; `fault` as for
// start_destination().
pid_t start_lazy_migrate(Session& session, pid_t pid, const std::string& key, const std::string& output,
                         const std::string& fault = "")
{
    if (!fault.empty())
        ::setenv(fault.substr(0, fault.find('=')).c_str(), fault.substr(fault.find('=') + 1).c_str(), 1);
    pid_t migrate = session.start_cryo({ "migrate", "-t", std::to_string(pid), "--address",
                                         NamespacePair::server_address(), "--port", std::to_string(kPort), "--key",
                                         key, "--lazy", "--work-dir", session.dir().path() },
                                       output);
    if (!fault.empty())
        ::unsetenv(fault.substr(0, fault.find('=')).c_str());
    return migrate;
}

bool work_directory_left(const Session& session)
{
    for (const auto& entry : std::filesystem::directory_iterator(session.dir().path()))
        if (entry.path().filename().string().starts_with("cryo-migrate-"))
            return true;
    return false;
}

int exit_code(Session& session, pid_t pid)
{
    return wait_exit_code(session, pid, 120s);
}

// The victim restored with pid `pid` in the destination's PID namespace
// (`server`'s): released, it must say PASS.
void release_migrated_and_expect_pass(Session& session, pid_t server, pid_t pid)
{
    auto inits = children_of(server);
    ASSERT_EQ(inits.size(), 1u) << session.diagnostics();
    pid_t here = pid_seen_here(inits.front(), pid);
    ASSERT_GT(here, 1) << "no process " << pid << " in the destination's PID namespace\n" << session.diagnostics();
    ASSERT_TRUE(send_signal(here, SIGUSR1));
    EXPECT_TRUE(session.wait_for_log("PASS") || session.wait_for_log("FAIL", 1, 1s)) << session.diagnostics();
    EXPECT_EQ(session.log().find("FAIL"), std::string::npos) << session.log();
}

} // namespace

// Pre-dump rounds, the final dump and the restore on the destination,
// which answers once the restored tree runs: only then is the source
// victim killed; the restored one has the same pid there and verifies
// itself.
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
    EXPECT_EQ(destination_exit_code(destination), 0) << read_file(destination + ".out");

    std::string report = read_file(output);
    EXPECT_NE(report.find("migrated to " + NamespacePair::server_address() + ":7412: restored the tree from " + destination + "/"),
              std::string::npos) << report;
    EXPECT_NE(report.find("final"), std::string::npos) << report;
    EXPECT_NE(report.find("total time"), std::string::npos) << report;
    EXPECT_TRUE(file_exists(destination + "/1/manifest.img"));
    EXPECT_TRUE(file_exists(destination + "/2/manifest.img"));
    release_migrated_and_expect_pass(session, server, pid);
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
    (void)start_destination(session, pair, destination, write_hex_key(session, "server-key", 'a'));
    pid_t migrate = start_migrate(session, pid, write_hex_key(session, "client-key", 'b'), output);

    EXPECT_EQ(exit_code(session, migrate), 1) << read_file(output);
    EXPECT_NE(read_file(output).find("wrong key"), std::string::npos) << read_file(output);
    EXPECT_NE(read_file(output).find("pre-dump round 1 (the tree runs on)"), std::string::npos) << read_file(output);
    EXPECT_FALSE(file_exists(destination + "/1/manifest.img"));
    release_and_expect_pass(session, pid);
}

// The fault step (base/fault.h) of the destination's first restore phase,
// found by a migration whose destination lists its steps.
std::string restore_step(const NamespacePair& pair, bool lazy = false)
{
    Session session;
    std::string key = write_hex_key(session, "key", 'a');
    std::string listed = session.dir().file("listed");
    pid_t pid = start_and_wait_ready(session, "predump");
    pid_t server = start_destination(session, pair, listed, key, "CRYO_FAULT_LIST=1");
    pid_t migrate = lazy ? start_lazy_migrate(session, pid, key, session.dir().file("migrate.out"))
                         : start_migrate(session, pid, key, session.dir().file("migrate.out"), "0");
    session.wait_for_exit(pid, 120s);
    EXPECT_EQ(exit_code(session, migrate), 0) << read_file(session.dir().file("migrate.out"));
    EXPECT_EQ(destination_exit_code(listed), 0) << read_file(listed + ".out");
    release_migrated_and_expect_pass(session, server, pid);
    std::string listing = read_file(listed + ".out");
    auto at = listing.find(": phase ");
    if (at == std::string::npos) {
        ADD_FAILURE() << listing;
        return "";
    }
    auto start = listing.rfind("step ", at) + 5;
    return listing.substr(start, at - start);
}

// The restore on the destination fails (an injected fault at its first
// phase): the source tree, frozen until then, runs on and verifies
// itself; the error is the destination's.
TEST(Migrate, FailedRestoreOnTheDestinationResumesTheSource)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    std::string step = restore_step(pair);
    ASSERT_FALSE(step.empty());

    Session session;
    std::string key = write_hex_key(session, "key", 'a');
    std::string destination = session.dir().file("destination");
    std::string output = session.dir().file("migrate.out");
    pid_t pid = start_and_wait_ready(session, "predump");
    start_destination(session, pair, destination, key, "CRYO_FAULT_AT=" + step);
    pid_t migrate = start_migrate(session, pid, key, output, "0");
    EXPECT_EQ(exit_code(session, migrate), 1) << read_file(output);
    EXPECT_EQ(destination_exit_code(destination), 1) << read_file(destination + ".out");
    std::string report = read_file(output);
    EXPECT_NE(report.find("final dump (the tree runs on)"), std::string::npos) << report;
    EXPECT_NE(report.find("the destination could not restore round 1"), std::string::npos) << report;
    EXPECT_NE(report.find("injected fault at step " + step), std::string::npos) << report;
    EXPECT_TRUE(file_exists(destination + "/1/manifest.img"));
    ASSERT_TRUE(process_exists(pid)) << report << session.diagnostics();
    release_and_expect_pass(session, pid);
}

// The destination goes away while it restores (killed while stalled at
// its first restore phase): the connection breaks and the source runs on.
TEST(Migrate, DestinationLostDuringRestoreResumesTheSource)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    std::string step = restore_step(pair);
    ASSERT_FALSE(step.empty());

    Session session;
    std::string key = write_hex_key(session, "key", 'a');
    std::string destination = session.dir().file("destination");
    std::string output = session.dir().file("migrate.out");
    pid_t pid = start_and_wait_ready(session, "predump");
    pid_t server = start_destination(session, pair, destination, key, "CRYO_FAULT_STALL_AT=" + step);
    pid_t migrate = start_migrate(session, pid, key, output, "0");
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (read_file(destination + ".out").find("stalled at step") == std::string::npos
           && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(20ms);
    ASSERT_NE(read_file(destination + ".out").find("stalled at step"), std::string::npos)
        << read_file(output) << read_file(destination + ".out");
    ASSERT_TRUE(send_signal(server, SIGKILL));
    EXPECT_EQ(exit_code(session, migrate), 1) << read_file(output);
    std::string report = read_file(output);
    EXPECT_NE(report.find("final dump (the tree runs on)"), std::string::npos) << report;
    EXPECT_NE(report.find("broken transfer"), std::string::npos) << report;
    ASSERT_TRUE(process_exists(pid)) << report << session.diagnostics();
    release_and_expect_pass(session, pid);
}

// Post-copy: the destination restores at once and fetches the pages from
// the frozen source, which is killed once the destination has them all.
// `victim` `args` verifies itself after the move; `report` (when given)
// gets migrate's report.
void lazy_migration(const std::string& victim, const std::vector<std::string>& args, std::string* report_out = nullptr)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    std::string key = write_hex_key(session, "key", 'a');
    std::string destination = session.dir().file("destination");
    std::string output = session.dir().file("migrate.out");
    pid_t pid = start_and_wait_ready(session, victim, args);
    pid_t server = start_destination(session, pair, destination, key);
    pid_t migrate = start_lazy_migrate(session, pid, key, output);

    auto source = session.wait_for_exit(pid, 120s);
    ASSERT_TRUE(source.has_value()) << read_file(output) << session.diagnostics();
    EXPECT_TRUE(WIFSIGNALED(*source) && WTERMSIG(*source) == SIGKILL) << "status " << *source;
    EXPECT_EQ(exit_code(session, migrate), 0) << read_file(output);
    EXPECT_EQ(destination_exit_code(destination), 0) << read_file(destination + ".out");
    std::string report = read_file(output);
    EXPECT_NE(report.find("migrated to " + NamespacePair::server_address() + ":7412 (post-copy)"), std::string::npos)
        << report;
    EXPECT_NE(report.find("time to running"), std::string::npos) << report;
    EXPECT_EQ(report.find("time to running (final dump to restored):  -1"), std::string::npos) << report;
    EXPECT_FALSE(work_directory_left(session));
    EXPECT_TRUE(file_exists(destination + "/1/manifest.img"));
    std::string lazy_log = read_file(destination + "/1/lazy-pages.log");
    EXPECT_EQ(lazy_log.find("with errors"), std::string::npos) << lazy_log;
    release_migrated_and_expect_pass(session, server, pid);
    if (report_out)
        *report_out = report;
}

TEST(Migrate, LazyCounterMovesAndVerifiesItself) { lazy_migration("counter", {}); }

// 256 MiB the restored victim touches in a scrambled order, most of it
// brought in from the source by the lazy-pages server.
TEST(Migrate, LazyMemoryMovesAndVerifiesItself) { lazy_migration("lazy", { "256", "random" }); }

// Post-copy with a destination whose restore fails: the source, frozen
// until then, runs on.
TEST(Migrate, LazyFailedRestoreResumesTheSource)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    std::string step = restore_step(pair, true);
    ASSERT_FALSE(step.empty());

    Session session;
    std::string key = write_hex_key(session, "key", 'a');
    std::string destination = session.dir().file("destination");
    std::string output = session.dir().file("migrate.out");
    pid_t pid = start_and_wait_ready(session, "predump");
    start_destination(session, pair, destination, key, "CRYO_FAULT_AT=" + step);
    pid_t migrate = start_lazy_migrate(session, pid, key, output);
    EXPECT_EQ(exit_code(session, migrate), 1) << read_file(output);
    EXPECT_EQ(destination_exit_code(destination), 1) << read_file(destination + ".out");
    std::string report = read_file(output);
    EXPECT_NE(report.find("final dump (the tree runs on)"), std::string::npos) << report;
    EXPECT_NE(report.find("injected fault at step " + step), std::string::npos) << report;
    EXPECT_FALSE(work_directory_left(session));
    ASSERT_TRUE(process_exists(pid)) << report << session.diagnostics();
    release_and_expect_pass(session, pid);
}

// A 100 MiB memfd only a mapping holds: its data is in the page file the
// final dump writes, before the memory listed past its end.
TEST(Migrate, LazyMappedMemfdMovesAndVerifiesItself)
{
    std::string report;
    lazy_migration("fds_mapped", { "big" }, &report);
    auto file_data = report.find("KiB of metadata, ");
    ASSERT_NE(file_data, std::string::npos) << report;
    EXPECT_GE(std::stod(report.substr(file_data + 17)), 100.0) << report;
}

// 256 MiB in four threads, each touching it in its own order: the final
// dump copies none of it (the report says how little it wrote), the
// destination reads it all from the frozen source's memory.
TEST(Migrate, LazyMemoryServedFromTheFrozenSource)
{
    std::string report;
    lazy_migration("lazy", { "256", "threads" }, &report);
    // Four pages of five written: 204.8 MiB, and a little more (stack, heap).
    auto served = report.find("memory served from the frozen tree:");
    ASSERT_NE(served, std::string::npos) << report;
    EXPECT_GE(std::stod(report.substr(served + 35)), 204.8) << report;
    EXPECT_NE(report.find("of metadata, 0.0 MiB of file data"), std::string::npos) << report;
}

// The fault step (base/fault.h) of the source's `nth` fetch once the
// destination's tree runs, found by a lazy migration of the 256 MiB victim
// whose source lists its steps.
std::string fetch_step_while_running(const NamespacePair& pair, int nth)
{
    Session session;
    std::string key = write_hex_key(session, "key", 'a');
    std::string destination = session.dir().file("destination");
    std::string output = session.dir().file("migrate.out");
    pid_t pid = start_and_wait_ready(session, "lazy", { "256", "random" });
    pid_t server = start_destination(session, pair, destination, key);
    pid_t migrate = start_lazy_migrate(session, pid, key, output, "CRYO_FAULT_LIST=1");
    session.wait_for_exit(pid, 120s);
    EXPECT_EQ(exit_code(session, migrate), 0) << read_file(output);
    EXPECT_EQ(destination_exit_code(destination), 0) << read_file(destination + ".out");
    release_migrated_and_expect_pass(session, server, pid);
    std::string listing = read_file(output);
    size_t at = 0;
    for (int seen = 0; seen < nth; ++seen) {
        at = listing.find(", the tree runs)", at + 1);
        if (at == std::string::npos) {
            ADD_FAILURE() << "fewer than " << nth << " fetches while the tree runs:\n" << listing;
            return "";
        }
    }
    auto start = listing.rfind("step ", at) + 5;
    return listing.substr(start, listing.find(':', start) - start);
}

// The connection breaks while the destination's tree runs and fetches its
// pages (the source drops it at the 32nd fetch since, about half of
// them; the lazy-pages server, which sends them, says the tree runs as it
// starts, just before the restore releases the tree): the destination's
// tree, which cannot get its memory any more, is killed by its lazy-pages
// server; the source, frozen until then, runs on and verifies its 256 MiB.
TEST(Migrate, LazyConnectionBrokenMidwayResumesTheSource)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    std::string step = fetch_step_while_running(pair, 32);
    ASSERT_FALSE(step.empty());

    Session session;
    std::string key = write_hex_key(session, "key", 'a');
    std::string destination = session.dir().file("destination");
    std::string output = session.dir().file("migrate.out");
    pid_t pid = start_and_wait_ready(session, "lazy", { "256", "random" });
    start_destination(session, pair, destination, key);
    pid_t migrate = start_lazy_migrate(session, pid, key, output, "CRYO_FAULT_AT=" + step);
    EXPECT_EQ(exit_code(session, migrate), 1) << read_file(output);
    std::string report = read_file(output);
    EXPECT_NE(report.find("final dump (the tree runs on)"), std::string::npos) << report;
    EXPECT_NE(report.find("broken at fetch #"), std::string::npos) << report;
    EXPECT_NE(report.find("injected fault at step " + step + " (fetch #"), std::string::npos) << report;
    EXPECT_NE(report.find(", the tree runs))"), std::string::npos) << report;
    EXPECT_FALSE(work_directory_left(session));
    // The destination restored, then lost its pages: its tree is killed.
    EXPECT_EQ(destination_exit_code(destination), 0) << read_file(destination + ".out");
    std::string lazy_log = destination + "/1/lazy-pages.log";
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (read_file(lazy_log).find("done:") == std::string::npos && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(20ms);
    EXPECT_NE(read_file(lazy_log).find("killing pid " + std::to_string(pid)), std::string::npos) << read_file(lazy_log);
    ASSERT_TRUE(process_exists(pid)) << report << session.diagnostics();
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e
