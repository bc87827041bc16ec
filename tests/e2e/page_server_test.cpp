// End-to-end tests of `cryo page-server` and `--page-server` between two
// network namespaces joined by a veth pair, standing for two hosts
// (netns.h): the server in its own, the victim and the dump or pre-dump in
// this one. The victim is restored from the server's directory, then
// verifies itself.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
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

// A TCP relay on 127.0.0.1 between a dump and the page server that damages
// what the dump sends at byte `at` of the stream: flips a bit there, or
// cuts the connection to the server there (it sees the end of the stream
// in the middle of a frame). Everything else passes unchanged, both ways.
// One connection; its sockets are closed and its threads joined when
// dropped.
class DamagingRelay {
public:
    enum class Damage { Flip, Cut };

    DamagingRelay(const std::string& server_address, uint16_t server_port, uint64_t at, Damage damage)
        : m_at(at), m_damage(damage)
    {
        m_listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address { .sin_family = AF_INET, .sin_port = 0, .sin_addr = { htonl(INADDR_LOOPBACK) }, .sin_zero = {} };
        socklen_t length = sizeof(address);
        if (m_listener < 0 || ::bind(m_listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) < 0
            || ::listen(m_listener, 1) < 0 || ::getsockname(m_listener, reinterpret_cast<sockaddr*>(&address), &length) < 0)
            return;
        m_port = ntohs(address.sin_port);
        sockaddr_in server { .sin_family = AF_INET, .sin_port = htons(server_port), .sin_addr = {}, .sin_zero = {} };
        ::inet_pton(AF_INET, server_address.c_str(), &server.sin_addr);
        m_forward = std::thread([this, server] {
            m_client = ::accept4(m_listener, nullptr, nullptr, SOCK_CLOEXEC);
            m_server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (m_client < 0 || m_server < 0
                || ::connect(m_server, reinterpret_cast<const sockaddr*>(&server), sizeof(server)) < 0) {
                if (m_client >= 0)
                    ::shutdown(m_client, SHUT_RDWR);
                return;
            }
            m_backward = std::thread([this] { pump(m_server, m_client); });
            forward();
        });
    }
    DamagingRelay(const DamagingRelay&) = delete;
    DamagingRelay& operator=(const DamagingRelay&) = delete;
    ~DamagingRelay()
    {
        // Wakes a thread blocked in accept, recv or send.
        for (int fd : { m_listener, m_client.load(), m_server.load() })
            if (fd >= 0)
                ::shutdown(fd, SHUT_RDWR);
        if (m_forward.joinable())
            m_forward.join();
        if (m_backward.joinable())
            m_backward.join();
        for (int fd : { m_listener, m_client.load(), m_server.load() })
            if (fd >= 0)
                ::close(fd);
    }

    uint16_t port() const { return m_port; }
    bool damaged() const { return m_damaged; }

private:
    // Dump to server, damaged at m_at. Past a cut, or once the server
    // is gone, what the dump sends is read and dropped: it then learns of
    // the end from the connection closed under its answer.
    void forward()
    {
        std::vector<char> buffer(1 << 16);
        bool open = true;
        for (uint64_t done = 0;;) {
            ssize_t got = ::recv(m_client, buffer.data(), buffer.size(), 0);
            if (got <= 0)
                break;
            size_t length = static_cast<size_t>(got);
            if (open && !m_damaged && done + length > m_at) {
                size_t inside = static_cast<size_t>(m_at - done);
                m_damaged = true;
                if (m_damage == Damage::Cut) {
                    (void)!::send(m_server, buffer.data(), inside, MSG_NOSIGNAL);
                    ::shutdown(m_server, SHUT_WR);
                    open = false;
                }
                buffer[inside] ^= 0x10;
            }
            if (open && ::send(m_server, buffer.data(), length, MSG_NOSIGNAL) != got)
                open = false;
            done += length;
        }
        ::shutdown(m_server, SHUT_WR);
    }

    static void pump(int from, int to)
    {
        std::vector<char> buffer(1 << 16);
        ssize_t got;
        while ((got = ::recv(from, buffer.data(), buffer.size(), 0)) > 0)
            if (::send(to, buffer.data(), static_cast<size_t>(got), MSG_NOSIGNAL) != got)
                break;
        ::shutdown(to, SHUT_WR);
    }

    uint64_t m_at;
    Damage m_damage;
    int m_listener { -1 };
    uint16_t m_port { 0 };
    std::atomic<int> m_client { -1 };
    std::atomic<int> m_server { -1 };
    std::atomic<bool> m_damaged { false };
    std::thread m_forward;
    std::thread m_backward;
};

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

// The pages arrive on the server's splice path (socket to file, checked
// afterwards over the file's bytes). A relay in between flips one bit
// 41 MiB into the stream (inside the page file's data), or cuts the
// connection there: either way the server refuses the checkpoint and
// removes what it had written, the dump fails saying the transfer broke,
// and the victim runs on. Undamaged, the server says how much it spliced.
TEST(PageServer, DamagedFrameOnTheSplicePathIsRefused)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump");
    std::string whole = session.dir().file("whole");
    pid_t server = start_server(session, pair, whole);
    auto sent = session.cryo(page_server_command("dump", pid, { "--leave-running" }));
    ASSERT_EQ(sent.exit_code, 0) << sent.output;
    auto [whole_code, whole_output] = server_result(session, server, whole);
    ASSERT_EQ(whole_code, 0) << whole_output;
    std::smatch match;
    ASSERT_TRUE(std::regex_search(whole_output, match, std::regex(R"(\((\d+) MiB, (\d+) MiB of them spliced)")))
        << whole_output;
    EXPECT_GE(std::stoi(match[2]), 64) << whole_output;

    for (auto damage : { DamagingRelay::Damage::Flip, DamagingRelay::Damage::Cut }) {
        bool flip = damage == DamagingRelay::Damage::Flip;
        SCOPED_TRACE(flip ? "flipped bit" : "cut connection");
        std::string images = session.dir().file(flip ? "flipped" : "cut");
        std::filesystem::remove(whole + ".out");
        std::this_thread::sleep_for(100ms);
        server = start_server(session, pair, images);
        auto failed = [&] {
            DamagingRelay relay(NamespacePair::server_address(), kPort, (41ull << 20) + 12345, damage);
            EXPECT_NE(relay.port(), 0);
            auto result = session.cryo({ "dump", "-t", std::to_string(pid), "--leave-running", "--page-server",
                                         "--address", "127.0.0.1", "--port", std::to_string(relay.port()) });
            EXPECT_TRUE(relay.damaged());
            return result;
        }();
        EXPECT_EQ(failed.exit_code, 1) << failed.output;
        EXPECT_NE(failed.output.find("(broken transfer)"), std::string::npos) << failed.output;
        auto [code, output] = server_result(session, server, images);
        EXPECT_EQ(code, 1) << output;
        EXPECT_NE(output.find(flip ? "a data frame from 10.231." : "closed the connection in the middle of a frame"),
                  std::string::npos)
            << output;
        if (flip)
            EXPECT_NE(output.find("failed its checksum check (corrupted or forged)"), std::string::npos) << output;
        EXPECT_FALSE(std::filesystem::exists(images)) << "the server kept files of a damaged transfer";
    }
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e
