// End-to-end tests of `cryo page-server` and `--page-server` between two
// network namespaces joined by a veth pair, standing for two hosts
// (netns.h): the server in its own, the victim and the dump or pre-dump in
// this one. The victim is restored from the server's directory, then
// verifies itself.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "netns.h"
#include "steps.h"

namespace cryo::e2e {

namespace {

using namespace std::chrono_literals;

constexpr uint16_t kPort = 7411;
constexpr uintmax_t kRegion = 64ull << 20;   // the predump victim's region

// A page server in the server namespace; its output goes to DIR.out.
// `fault_stall` stalls it at that fault step (base/fault.h).
pid_t start_server(Session& session, const NamespacePair& pair, const std::string& directory,
                   const std::vector<std::string>& options = {}, int fault_stall = 0)
{
    std::vector<std::string> args { "page-server", "-D", directory, "--address", NamespacePair::server_address(),
                                    "--port", std::to_string(kPort), "--once" };
    args.insert(args.end(), options.begin(), options.end());
    if (fault_stall > 0)
        ::setenv("CRYO_FAULT_STALL_AT", std::to_string(fault_stall).c_str(), 1);
    pid_t pid = start_listening_cryo(session, pair, args, directory + ".out");
    ::unsetenv("CRYO_FAULT_STALL_AT");
    return pid;
}

// The page server's exit status and output once it is done.
std::pair<int, std::string> server_result(Session& session, pid_t server, const std::string& directory)
{
    int code = wait_exit_code(session, server, 30s);
    return { code, read_file(directory + ".out") };
}

std::vector<std::string> page_server_options(const std::vector<std::string>& more = {})
{
    std::vector<std::string> options { "--page-server", "--address", NamespacePair::server_address(), "--port",
                                       std::to_string(kPort) };
    options.insert(options.end(), more.begin(), more.end());
    return options;
}

// `cryo VERB -t PID` sending to the page server, with `more` options.
std::vector<std::string> page_server_command(const std::string& verb, pid_t pid,
                                             const std::vector<std::string>& more = {})
{
    std::vector<std::string> args { verb, "-t", std::to_string(pid) };
    auto options = page_server_options(more);
    args.insert(args.end(), options.begin(), options.end());
    return args;
}

} // namespace

// A dump sent with a key to a server in the other namespace; the server's
// directory is a complete checkpoint that restores directly.
TEST(PageServer, DumpSentThenRestoredFromServerDirectory)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    std::string key = write_hex_key(session, "key", 'a');
    std::string images = session.dir().file("received");
    pid_t pid = start_and_wait_ready(session, "predump");
    pid_t server = start_server(session, pair, images, { "--key", key });
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, false, page_server_options({ "--key", key })));
    auto [code, output] = server_result(session, server, images);
    EXPECT_EQ(code, 0) << output;
    EXPECT_NE(output.find("received a checkpoint"), std::string::npos) << output;
    EXPECT_GE(file_size(pages_file(images, pid)), kRegion);
    restore_and_expect_pass(session, pid, images);
}

// A pre-dump and the incremental dump on top of it, both sent; the parent
// is resolved on the server (../round1 next to round2 there).
TEST(PageServer, PreDumpThenIncrementalDumpBothSent)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    std::string first = session.dir().file("round1");
    std::string last = session.dir().file("round2");
    pid_t pid = start_and_wait_ready(session, "predump");

    pid_t server = start_server(session, pair, first);
    auto pre_dump = session.cryo(page_server_command("pre-dump", pid));
    ASSERT_EQ(pre_dump.exit_code, 0) << pre_dump.output;
    auto [code, output] = server_result(session, server, first);
    ASSERT_EQ(code, 0) << output;
    ASSERT_TRUE(file_exists(first + "/manifest.img"));

    std::this_thread::sleep_for(100ms);
    server = start_server(session, pair, last);
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, last, false, page_server_options({ "--prev-images-dir", "../round1" })));
    auto [last_code, last_output] = server_result(session, server, last);
    EXPECT_EQ(last_code, 0) << last_output;
    // Only what was written since the pre-dump travelled.
    EXPECT_LT(file_size(pages_file(last, pid)), kRegion / 4);
    restore_and_expect_pass(session, pid, last);
}

// A client with another key is refused by the server, and the server is
// refused by the client: nothing is written, the victim runs on.
TEST(PageServer, WrongKeyIsRefused)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    std::string images = session.dir().file("received");
    pid_t pid = start_and_wait_ready(session, "predump");
    pid_t server = start_server(session, pair, images, { "--key", write_hex_key(session, "server-key", 'a') });
    auto result = session.cryo(page_server_command("dump", pid, { "--key", write_hex_key(session, "client-key", 'b') }));
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("wrong key"), std::string::npos) << result.output;
    auto [code, output] = server_result(session, server, images);
    EXPECT_EQ(code, 1) << output;
    EXPECT_NE(output.find("wrong key"), std::string::npos) << output;
    EXPECT_FALSE(std::filesystem::exists(images)) << "the server touched its directory for an unauthenticated client";
    release_and_expect_pass(session, pid);
}

// Nobody listening: a clear error, and the victim was never frozen.
TEST(PageServer, ConnectionRefused)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump");
    auto result = session.cryo(page_server_command("dump", pid));
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find("connect to page server " + NamespacePair::server_address() + ":7411: Connection refused"), std::string::npos)
        << result.output;
    release_and_expect_pass(session, pid);
}

// The server dies while the pages are on their way (it stalls as it
// creates the first file, and is killed): the dump fails saying so, the
// victim runs on, and the server's directory has no manifest.
TEST(PageServer, ConnectionKilledMidTransfer)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    std::string images = session.dir().file("received");
    pid_t pid = start_and_wait_ready(session, "predump");
    pid_t server = start_server(session, pair, images, {}, 1);
    pid_t client = session.start_cryo(page_server_command("dump", pid), session.dir().file("dump.out"));
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (read_file(images + ".out").find("stalled at step") == std::string::npos
           && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(10ms);
    ASSERT_NE(read_file(images + ".out").find("stalled at step"), std::string::npos) << read_file(images + ".out");
    std::this_thread::sleep_for(200ms);   // the client is blocked sending pages now
    ASSERT_TRUE(send_signal(server, SIGKILL));
    session.wait_for_exit(server, 10s);
    auto status = session.wait_for_exit(client, 60s);
    ASSERT_TRUE(status.has_value());
    std::string output = read_file(session.dir().file("dump.out"));
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << output;
    EXPECT_NE(output.find(NamespacePair::server_address() + ":7411 (broken transfer)"), std::string::npos) << output;
    EXPECT_FALSE(file_exists(images + "/manifest.img"));
    release_and_expect_pass(session, pid);
}

// The client fails half way (an injected fault as it creates files.img,
// after the pages were sent): the server sees the connection end, keeps
// nothing (the directory it created is gone) and says why; the victim
// runs on.
TEST(PageServer, ClientFailingMidTransferLeavesNothingOnTheServer)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump");
    auto args = page_server_command("dump", pid, { "--leave-running" });

    // A first run lists the steps, to find the one that creates files.img.
    std::string listed = session.dir().file("listed");
    pid_t server = start_server(session, pair, listed);
    ::setenv("CRYO_FAULT_LIST", "1", 1);
    auto listing = session.cryo(args);
    ::unsetenv("CRYO_FAULT_LIST");
    ASSERT_EQ(listing.exit_code, 0) << listing.output;
    server_result(session, server, listed);
    auto at = listing.output.find(": create files.img");
    ASSERT_NE(at, std::string::npos) << listing.output;
    auto start = listing.output.rfind("step ", at) + 5;
    std::string step = listing.output.substr(start, at - start);

    std::string images = session.dir().file("received");
    server = start_server(session, pair, images);
    ::setenv("CRYO_FAULT_AT", step.c_str(), 1);
    auto failed = session.cryo(args);
    ::unsetenv("CRYO_FAULT_AT");
    EXPECT_EQ(failed.exit_code, 1) << failed.output;
    EXPECT_NE(failed.output.find("injected fault"), std::string::npos) << failed.output;
    auto [code, output] = server_result(session, server, images);
    EXPECT_EQ(code, 1) << output;
    EXPECT_NE(output.find("closed the connection (broken transfer)"), std::string::npos) << output;
    EXPECT_FALSE(std::filesystem::exists(images)) << "the server kept files of a broken transfer";
    release_and_expect_pass(session, pid);
}

// `--serve` without a key sends the pages of each Fetch reply with
// sendfile(2), never through cryo's memory: a lazy restore in this
// namespace takes them from the server and the victim checks every page.
// Then the same restore with the server stalled at a later fetch and
// killed (the connection breaks mid-stream): the victim is killed, not
// left with missing pages, and the server fails.
TEST(PageServer, ServedWithoutKeyToALazyRestore)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    pid_t pid = start_and_wait_ready(session, "lazy", { "64", "random" });
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    std::string fetched = session.dir().file("fetched");
    auto restore_options = page_server_options();
    restore_options.insert(restore_options.begin(), "--lazy-pages");

    ::setenv("CRYO_FAULT_LIST", "1", 1);
    pid_t server = start_server(session, pair, images, { "--serve" });
    ::unsetenv("CRYO_FAULT_LIST");
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, fetched, restore_options));
    ASSERT_NO_FATAL_FAILURE(release_and_expect_pass(session, pid));
    auto [code, listing] = server_result(session, server, images);
    EXPECT_EQ(code, 0) << listing;
    EXPECT_NE(listing.find("served " + images), std::string::npos) << listing;

    // The step of the fourth fetch after the restore's own.
    std::smatch match;
    std::string restore_log = read_file(fetched + "-restore.log");
    ASSERT_TRUE(std::regex_search(restore_log, match, std::regex(R"(after (\d+) fetches from the page server)")))
        << restore_log;
    int stalled = std::stoi(match[1]) + 4;
    ASSERT_TRUE(std::regex_search(listing, match, std::regex("step (\\d+): fetch #" + std::to_string(stalled) + " ")))
        << listing;
    int step = std::stoi(match[1]);

    std::filesystem::remove_all(fetched);
    std::filesystem::remove(fetched + ".pid");
    std::filesystem::remove(images + ".out");   // its "listening" line must be the new server's
    std::this_thread::sleep_for(100ms);
    server = start_server(session, pair, images, { "--serve" }, step);
    std::vector<std::string> restore { "restore", "-D", fetched, "-d", "-v", "-o", fetched + "-restore.log" };
    restore.insert(restore.end(), restore_options.begin(), restore_options.end());
    auto restored = session.cryo(restore);
    session.track(pid);
    ASSERT_TRUE(restored.exit_code == 0 || restored.exit_code == 1) << restored.output;
    if (restored.exit_code == 0)
        send_signal(pid, SIGUSR1);
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (read_file(images + ".out").find("stalled at step") == std::string::npos
           && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(10ms);
    ASSERT_NE(read_file(images + ".out").find("stalled at step"), std::string::npos)
        << read_file(images + ".out") << restored.output << read_file(fetched + "-restore.log");
    ASSERT_TRUE(send_signal(server, SIGKILL));
    session.wait_for_exit(server, 10s);
    // Either the restore was still fetching (it failed and took the tree
    // with it) or the lazy-pages server was: it kills the victim.
    EXPECT_TRUE(session.wait_until_gone({ pid }, 60s)) << "the victim runs on without its pages\n"
                                                       << session.diagnostics();
    std::string log = read_file(fetched + "/lazy-pages.log");
    EXPECT_NE(log.find("with errors"), std::string::npos) << log;
}

} // namespace cryo::e2e
