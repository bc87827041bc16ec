// End-to-end tests of lazy restore (victim lazy): `cryo restore
// --lazy-pages` starts the victim before its memory is in place; the
// lazy-pages server brings pages in on faults and in the background. The
// victim checks every page in a scrambled order, from several threads at
// once, or right after forking, munmapping, mremapping and dropping pages.
// Every test checks that the restore itself filled almost nothing and that
// the server is gone at the end, having logged no error. The remote tests
// take the pages from a `cryo page-server --serve` in another network
// namespace (netns.h), standing for the host that has the checkpoint.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
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

// The MiB of pages `cryo restore` filled itself, from its log line.
int eagerly_filled_mib(const std::string& restore_log)
{
    std::smatch match;
    std::regex line(R"(processes, (\d+) MiB of pages)");
    if (!std::regex_search(restore_log, match, line))
        return -1;
    return std::stoi(match[1]);
}

// The lazy-pages servers that came back to this test (the sub-reaper).
std::vector<pid_t> lazy_servers()
{
    std::vector<pid_t> found;
    for (pid_t pid : children_of_self()) {
        std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
        std::string name;
        std::getline(comm, name);
        if (name == "cryo-lazy-pages")
            found.push_back(pid);
    }
    return found;
}

void expect_server_done(Session& session, const std::string& images)
{
    ASSERT_TRUE(file_exists(images + "/lazy-pages.pid")) << session.diagnostics();
    pid_t server = std::stoi(read_file(images + "/lazy-pages.pid"));
    EXPECT_TRUE(session.wait_until_gone({ server }, 60s)) << "the lazy-pages server is still there\n"
                                                          << read_file(images + "/lazy-pages.log");
    std::string log = read_file(images + "/lazy-pages.log");
    EXPECT_NE(log.find("done:"), std::string::npos) << log;
    EXPECT_EQ(log.find("with errors"), std::string::npos) << log;
    EXPECT_TRUE(session.wait_until_gone(lazy_servers(), 10s)) << session.diagnostics();
}

// Dumps the victim, restores it lazily and lets it check its memory.
void lazy_round_trip(const std::string& mode, int mib, const std::vector<std::string>& dump_options = {},
                     const std::string& pre_dump_images = {})
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "lazy", { std::to_string(mib), mode });
    std::string images = session.dir().file("images");
    if (!pre_dump_images.empty()) {
        auto result = session.cryo({ "pre-dump", "-t", std::to_string(pid), "-D", session.dir().file(pre_dump_images) });
        ASSERT_EQ(result.exit_code, 0) << result.output << session.diagnostics();
    }
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images, false, dump_options));
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images, { "--lazy-pages" }));
    int filled = eagerly_filled_mib(read_file(images + "-restore.log"));
    EXPECT_GE(filled, 0) << read_file(images + "-restore.log");
    EXPECT_LT(filled, 4) << "the restore filled the memory itself\n" << read_file(images + "-restore.log");
    ASSERT_NO_FATAL_FAILURE(release_and_expect_pass(session, pid));
    expect_server_done(session, images);
}

} // namespace

// 256 MiB touched in a scrambled order after the restore.
TEST(LazyRestore, EveryPageInScrambledOrder) { lazy_round_trip("random", 256); }

// Four threads fault on the same pages at once.
TEST(LazyRestore, ThreadsTouchingMemoryConcurrently) { lazy_round_trip("threads", 128); }

// fork, munmap + mmap, mremap and MADV_DONTNEED right after the restore,
// while pages are still pending.
TEST(LazyRestore, ForkUnmapRemapDropRightAfterRestore) { lazy_round_trip("changes", 256); }

// An incremental dump on top of a pre-dump: the pages come from the
// parent checkpoint's page file.
TEST(LazyRestore, PagesFromTheParentCheckpoint)
{
    lazy_round_trip("random", 64, { "--prev-images-dir", "../parent", "--track-mem" }, "parent");
}

// A restore that fails after the server started (an injected fault in
// the release phase, tests/e2e/fault_test.cpp has the switch) kills the
// tree; the server then finds its processes gone and exits.
TEST(LazyRestore, FailedReleaseLeavesNoServerBehind)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "lazy", { "64" });
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    std::vector<std::string> restore { "restore", "-D", images, "-d", "--lazy-pages" };

    // A run that lists the steps restores the victim for real.
    ::setenv("CRYO_FAULT_LIST", "1", 1);
    auto listed = session.cryo(restore);
    ::unsetenv("CRYO_FAULT_LIST");
    ASSERT_EQ(listed.exit_code, 0) << listed.output << session.diagnostics();
    session.track(pid);
    ASSERT_NO_FATAL_FAILURE(release_and_expect_pass(session, pid));
    expect_server_done(session, images);
    std::smatch match;
    ASSERT_TRUE(std::regex_search(listed.output, match, std::regex(R"(cryo: step (\d+): phase release)")))
        << listed.output;

    std::filesystem::remove(images + "/lazy-pages.pid");
    ::setenv("CRYO_FAULT_AT", match[1].str().c_str(), 1);
    auto failed = session.cryo(restore);
    ::unsetenv("CRYO_FAULT_AT");
    EXPECT_EQ(failed.exit_code, 1) << failed.output;
    EXPECT_NE(failed.output.find("injected fault"), std::string::npos) << failed.output;
    EXPECT_FALSE(process_exists(pid)) << session.diagnostics();
    ASSERT_TRUE(file_exists(images + "/lazy-pages.pid")) << "the server was not started before the fault\n"
                                                          << failed.output;
    pid_t server = std::stoi(read_file(images + "/lazy-pages.pid"));
    EXPECT_TRUE(session.wait_until_gone({ server }, 20s)) << read_file(images + "/lazy-pages.log");
}

namespace {

// Flips one bit of the byte at `offset` of `path`, in place.
void corrupt_byte(const std::string& path, std::streamoff offset)
{
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(file.is_open()) << path;
    file.seekg(offset);
    char byte = 0;
    ASSERT_TRUE(file.get(byte)) << path << " has no byte " << offset;
    file.seekp(offset);
    file.put(static_cast<char>(byte ^ 0x10));
    ASSERT_TRUE(file.flush()) << path;
}

// The lazy victim with 64 MiB, dumped: where, its pid and its page file.
struct DumpedVictim {
    std::string images;
    pid_t pid { 0 };
    std::string pages;
};

void dump_lazy_victim(Session& session, DumpedVictim& victim)
{
    victim.images = session.dir().file("images");
    victim.pid = start_and_wait_ready(session, "lazy", { "64" });
    ASSERT_NO_FATAL_FAILURE(dump(session, victim.pid, victim.images));
    victim.pages = "pages-" + std::to_string(victim.pid) + ".img";
}

} // namespace

namespace {

// Restores `images` lazily with one byte of `pages` (its own page file or
// an ancestor's) changed at `offset`, in a chunk only the lazy-pages
// server reads: the restore starts, since that chunk is checked only as it
// is read, and the server kills the victim when it reaches it, naming file
// and chunk.
void expect_corrupted_chunk_kills(Session& session, pid_t pid, const std::string& images, const std::string& pages,
                                  std::streamoff offset)
{
    ASSERT_NO_FATAL_FAILURE(corrupt_byte(pages, offset));
    auto restored = session.cryo({ "restore", "-D", images, "-d", "-v", "-o", images + "-restore.log", "--lazy-pages" });
    session.track(pid);
    // The server streams from the start: under load it can reach the chunk
    // before the restore is done, which then fails and takes the tree along.
    EXPECT_TRUE(restored.exit_code == 0 || restored.exit_code == 1) << restored.output;
    if (restored.exit_code == 0) {
        send_signal(pid, SIGUSR1);
        auto status = session.wait_for_exit(pid, 60s);
        ASSERT_TRUE(status.has_value()) << "the victim runs on with a corrupted page file\n" << session.diagnostics();
        EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << "status " << *status;
    } else {
        EXPECT_TRUE(session.wait_until_gone({ pid }, 20s)) << "a failed restore left the victim behind";
    }
    EXPECT_EQ(session.log().find("PASS"), std::string::npos) << session.diagnostics();
    ASSERT_TRUE(file_exists(images + "/lazy-pages.pid")) << "refused up front\n" << restored.output;
    pid_t server = std::stoi(read_file(images + "/lazy-pages.pid"));
    EXPECT_TRUE(session.wait_until_gone({ server }, 20s));
    std::string log = read_file(images + "/lazy-pages.log");
    EXPECT_NE(log.find("killing pid " + std::to_string(pid) + ": its memory cannot be brought in"), std::string::npos)
        << log;
    EXPECT_NE(log.find(pages + ": chunk " + std::to_string(offset / (1 << 20)) + " (bytes "), std::string::npos) << log;
    EXPECT_NE(log.find("checksum mismatch (corrupted)"), std::string::npos) << log;
    EXPECT_NE(log.find("with errors"), std::string::npos) << log;
}

} // namespace

// A page file with one byte changed in the middle of the large region (a
// chunk only the lazy-pages server reads) kills the victim.
TEST(LazyRestore, CorruptedLazyChunkKillsTheVictim)
{
    Session session;
    DumpedVictim victim;
    ASSERT_NO_FATAL_FAILURE(dump_lazy_victim(session, victim));
    std::string pages = victim.images + "/" + victim.pages;
    auto offset = static_cast<std::streamoff>(std::filesystem::file_size(pages) / 2);
    ASSERT_NO_FATAL_FAILURE(expect_corrupted_chunk_kills(session, victim.pid, victim.images, pages, offset));
}

// A changed byte in metadata (the process's core image) or in the part of
// a chunk of the page file that holds pages the restore fills itself is
// refused before anything starts. The last chunk is one: the large region
// was mapped after the libraries, below them, so the pages of their data
// (private file mappings, never lazy) come after it in the file.
TEST(LazyRestore, CorruptedMetadataOrEagerPagesRefusedUpFront)
{
    Session session;
    DumpedVictim victim;
    ASSERT_NO_FATAL_FAILURE(dump_lazy_victim(session, victim));
    const auto& [images, pid, pages] = victim;
    std::string pristine = read_file(images + "/" + pages);
    std::vector<std::string> restore { "restore", "-D", images, "-d", "--lazy-pages" };
    auto refused = [&](const std::string& name, std::streamoff offset, const std::string& expected) {
        SCOPED_TRACE(name);
        ASSERT_NO_FATAL_FAILURE(corrupt_byte(images + "/" + name, offset));
        auto result = session.cryo(restore);
        EXPECT_EQ(result.exit_code, 1) << result.output;
        EXPECT_NE(result.output.find(expected), std::string::npos) << result.output;
        EXPECT_FALSE(file_exists(images + "/lazy-pages.pid")) << "a lazy-pages server was started";
        EXPECT_FALSE(process_exists(pid)) << session.diagnostics();
        ASSERT_NO_FATAL_FAILURE(corrupt_byte(images + "/" + name, offset));   // back as it was
    };
    std::string core = "core-" + std::to_string(pid) + ".img";
    refused(core, 40, images + "/" + core + ": checksum mismatch (corrupted)");
    auto last = static_cast<std::streamoff>(pristine.size()) - 100;
    refused(pages, last, images + "/" + pages + ": chunk " + std::to_string(last / (1 << 20)) + " (bytes ");
    EXPECT_EQ(read_file(images + "/" + pages), pristine);

    // Put back, the same checkpoint restores and passes.
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images, { "--lazy-pages" }));
    ASSERT_NO_FATAL_FAILURE(release_and_expect_pass(session, pid));
    expect_server_done(session, images);
}

namespace {

// The predump victim (64 MiB written all the time) in a chain of
// `rounds` checkpoints: `rounds - 1` pre-dumps 100 ms apart, then the
// dump on top of them (with `dump_options`). Returns the directories,
// oldest first; the last is the one to restore.
std::vector<std::string> dump_chain(Session& session, pid_t pid, int rounds,
                                    const std::vector<std::string>& dump_options = {})
{
    std::vector<std::string> images;
    for (int round = 1; round <= rounds; ++round) {
        images.push_back(session.dir().file("round" + std::to_string(round)));
        std::vector<std::string> args { round < rounds ? "pre-dump" : "dump", "-t", std::to_string(pid), "-D",
                                        images.back(), "-o", images.back() + "-dump.log" };
        if (round > 1) {
            args.insert(args.end(), { "--prev-images-dir", "../round" + std::to_string(round - 1), "--track-mem" });
            std::this_thread::sleep_for(100ms);
        }
        if (round == rounds)
            args.insert(args.end(), dump_options.begin(), dump_options.end());
        auto result = session.cryo(args);
        EXPECT_EQ(result.exit_code, 0) << result.output << session.diagnostics();
        if (result.exit_code != 0)
            return {};
    }
    EXPECT_TRUE(session.wait_until_gone({ pid }, 10s)) << "the dumped victim is still there";
    return images;
}

} // namespace

// Two pre-dumps and a dump, restored lazily: the ancestors' page files are
// not verified whole first (their chunks are checked as the lazy-pages
// server reads them), the restore fills almost nothing itself, and the
// victim checks every page against its table of generations, so a page
// taken from the wrong round fails it.
TEST(LazyRestore, ChainOfTwoPreDumpsAndADump)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump");
    auto images = dump_chain(session, pid, 3);
    ASSERT_EQ(images.size(), 3u);
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images[2], { "--lazy-pages" }));
    std::string restore_log = read_file(images[2] + "-restore.log");
    int filled = eagerly_filled_mib(restore_log);
    EXPECT_GE(filled, 0) << restore_log;
    EXPECT_LT(filled, 4) << "the restore filled the memory itself\n" << restore_log;
    ASSERT_NO_FATAL_FAILURE(release_and_expect_pass(session, pid));
    expect_server_done(session, images[2]);
}

// One byte changed in the middle of the oldest round's page file (the
// 64 MiB region, left to the lazy-pages server): the ancestor's pages are
// not verified whole first, so the restore starts all the same, and the
// server kills the victim when it first reads that chunk, naming the
// ancestor's file and the chunk.
TEST(LazyRestore, CorruptedAncestorChunkKillsTheVictim)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump");
    auto images = dump_chain(session, pid, 3);
    ASSERT_EQ(images.size(), 3u);
    std::string pages = pages_file(images[0], pid);
    auto offset = static_cast<std::streamoff>(std::filesystem::file_size(pages) / 2);
    ASSERT_NO_FATAL_FAILURE(expect_corrupted_chunk_kills(session, pid, images[2], pages, offset));

    // A plain restore verifies the whole chain first and refuses it.
    auto plain = session.cryo({ "restore", "-D", images[2], "-d" });
    EXPECT_EQ(plain.exit_code, 1) << plain.output;
    EXPECT_NE(plain.output.find(pages + ": checksum mismatch (corrupted)"), std::string::npos) << plain.output;
}

// The victims of the plain round trip (tests/e2e/e2e_test.cpp) that have
// large private memory, threads, children sharing memory copy-on-write,
// signals and syscalls in flight, restored lazily.
class LazyVictims : public testing::TestWithParam<std::string> { };

TEST_P(LazyVictims, RestoredLazilyVerifiesItself)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, GetParam());
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images, { "--lazy-pages" }));
    ASSERT_NO_FATAL_FAILURE(release_and_expect_pass(session, pid));
    // A process with no lazy memory needs no server.
    if (std::filesystem::exists(images + "/lazy-pages.pid"))
        expect_server_done(session, images);
    EXPECT_TRUE(session.wait_until_gone(lazy_servers(), 10s)) << session.diagnostics();
}

INSTANTIATE_TEST_SUITE_P(Victims, LazyVictims,
                         testing::Values("memory", "cow", "threads", "tree", "signals", "fpu", "pipes", "timers", "seccomp", "seccomp_strict",
                                         "sigsuspend"));

namespace {

// Starts `cryo lazy-pages -D DIR OPTIONS` in the background (its output in
// DIR.lazy.out) and waits until it registered: DIR/lazy-pages.sock, 0600.
pid_t start_lazy_pages_command(Session& session, const std::string& directory,
                               const std::vector<std::string>& options = {})
{
    using namespace std::chrono_literals;
    std::vector<std::string> args { "lazy-pages", "-D", directory, "-v" };
    args.insert(args.end(), options.begin(), options.end());
    pid_t command = session.start_cryo(args, directory + ".lazy.out");
    session.track(command);
    std::string socket = directory + "/lazy-pages.sock";
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!file_exists(socket) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(10ms);
    struct stat st {};
    EXPECT_EQ(::stat(socket.c_str(), &st), 0) << read_file(directory + ".lazy.out");
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    return command;
}

// CRIU's sequence, `cryo lazy-pages -D DIR &` then `cryo restore -D DIR
// --lazy-pages` (restore_detached): the restore finds the waiting command
// (its log says `restore_says`), which follows the lazy-pages server the
// restore starts and exits 0 once every page is in.
void criu_sequence(Session& session, pid_t pid, const std::string& directory,
                   const std::vector<std::string>& lazy_pages_options, const std::string& restore_says)
{
    using namespace std::chrono_literals;
    pid_t command = start_lazy_pages_command(session, directory, lazy_pages_options);
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, directory, { "--lazy-pages" }));
    std::string restore_log = read_file(directory + "-restore.log");
    EXPECT_NE(restore_log.find("a `cryo lazy-pages` waits for " + directory + restore_says), std::string::npos)
        << restore_log;
    EXPECT_FALSE(file_exists(directory + "/lazy-pages.sock")) << "the registration outlived its restore";
    ASSERT_NO_FATAL_FAILURE(release_and_expect_pass(session, pid));
    expect_server_done(session, directory);
    EXPECT_EQ(wait_exit_code(session, command, 60s), 0) << read_file(directory + ".lazy.out");
    pid_t server = std::stoi(read_file(directory + "/lazy-pages.pid"));
    EXPECT_NE(read_file(directory + ".lazy.out").find("lazy-pages server pid " + std::to_string(server) + " is done"),
              std::string::npos) << read_file(directory + ".lazy.out");
}

} // namespace

// The pages from the local checkpoint.
TEST(LazyPagesCommand, CriuSequenceWithALocalDirectory)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "lazy", { "128", "random" });
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    ASSERT_NO_FATAL_FAILURE(criu_sequence(session, pid, images, {}, "\n"));
}

// With no restore the command gives up after --timeout, and a SIGTERM ends
// it too; either way its registration is gone. A registration whose
// command is gone (the socket left behind by a SIGKILL) is ignored: the
// restore works as without one.
TEST(LazyPagesCommand, TimeoutSignalAndStaleRegistration)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "lazy", { "16" });
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));

    auto timed_out = session.cryo({ "lazy-pages", "-D", images, "--timeout", "1" });
    EXPECT_EQ(timed_out.exit_code, 1) << timed_out.output;
    EXPECT_NE(timed_out.output.find("no `cryo restore -D " + images + " --lazy-pages` came within 1 s"),
              std::string::npos) << timed_out.output;
    EXPECT_FALSE(file_exists(images + "/lazy-pages.sock"));

    pid_t command = start_lazy_pages_command(session, images);
    auto second = session.cryo({ "lazy-pages", "-D", images, "--timeout", "1" });
    EXPECT_EQ(second.exit_code, 1) << second.output;
    EXPECT_NE(second.output.find("another `cryo lazy-pages` is waiting"), std::string::npos) << second.output;
    ASSERT_TRUE(send_signal(command, SIGTERM));
    EXPECT_EQ(wait_exit_code(session, command, 20s), 1) << read_file(images + ".lazy.out");
    EXPECT_NE(read_file(images + ".lazy.out").find("interrupted by signal"), std::string::npos)
        << read_file(images + ".lazy.out");
    EXPECT_FALSE(file_exists(images + "/lazy-pages.sock"));

    // A stale socket: bound, never listened on, left behind.
    int stale = ::socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(stale, 0);
    sockaddr_un address {};
    address.sun_family = AF_UNIX;
    std::string path = images + "/lazy-pages.sock";
    ASSERT_LT(path.size(), sizeof(address.sun_path));
    path.copy(address.sun_path, sizeof(address.sun_path) - 1);
    EXPECT_EQ(::bind(stale, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    ::close(stale);
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images, { "--lazy-pages" }));
    EXPECT_EQ(read_file(images + "-restore.log").find("a `cryo lazy-pages` waits for"), std::string::npos)
        << read_file(images + "-restore.log");
    ASSERT_NO_FATAL_FAILURE(release_and_expect_pass(session, pid));
    expect_server_done(session, images);
}

// A restore that fails before the tree runs (here: no checkpoint in the
// directory) ends the waiting command with an error.
TEST(LazyPagesCommand, FailedRestoreEndsItWithAnError)
{
    using namespace std::chrono_literals;
    Session session;
    std::string empty = session.dir().file("empty");
    std::filesystem::create_directory(empty);
    pid_t command = start_lazy_pages_command(session, empty);
    auto failed = session.cryo({ "restore", "-D", empty, "-d", "--lazy-pages" });
    EXPECT_EQ(failed.exit_code, 1) << failed.output;
    EXPECT_EQ(wait_exit_code(session, command, 20s), 1) << read_file(empty + ".lazy.out");
    EXPECT_NE(read_file(empty + ".lazy.out").find("ended before the tree ran"), std::string::npos)
        << read_file(empty + ".lazy.out");
    EXPECT_FALSE(file_exists(empty + "/lazy-pages.sock"));
}

namespace {

constexpr uint16_t kServePort = 7413;

// `cryo page-server --serve` of `images` in the other namespace, for one
// lazy restore; `fault` (CRYO_FAULT_LIST=1, CRYO_FAULT_AT=K) goes to its
// environment.
pid_t start_serving(Session& session, const NamespacePair& pair, const std::string& images, const std::string& key,
                    const std::string& fault = "", const std::string& output_suffix = ".serve.out")
{
    if (!fault.empty())
        ::setenv(fault.substr(0, fault.find('=')).c_str(), fault.substr(fault.find('=') + 1).c_str(), 1);
    pid_t pid = start_listening_cryo(session, pair,
                                     { "page-server", "-D", images, "--serve", "--once", "--address",
                                       NamespacePair::server_address(), "--port", std::to_string(kServePort), "--key",
                                       key },
                                     images + output_suffix);
    if (!fault.empty())
        ::unsetenv(fault.substr(0, fault.find('=')).c_str());
    return pid;
}

std::vector<std::string> remote_restore_options(const std::string& key)
{
    return { "--lazy-pages", "--page-server", "--address", NamespacePair::server_address(), "--port",
             std::to_string(kServePort), "--key", key };
}

// A victim (`victim` ARGS) dumped into `images` and served from the other
// namespace with `key` (start_serving, `fault` to its environment);
// `fetched` is the directory a remote restore fetches it into.
struct ServedCheckpoint {
    std::string key;
    pid_t pid { 0 };
    std::string images;
    std::string fetched;
    pid_t server { 0 };
};

void dump_and_serve(Session& session, const NamespacePair& pair, const std::string& victim,
                    const std::vector<std::string>& args, ServedCheckpoint& served, const std::string& fault = "")
{
    served.key = write_hex_key(session, "key", 'c');
    served.pid = start_and_wait_ready(session, victim, args);
    served.images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, served.pid, served.images));
    served.fetched = session.dir().file("fetched");
    served.server = start_serving(session, pair, served.images, served.key, fault);
}

// Bytes the file at `path` takes on disk (holes take none).
uintmax_t allocated_bytes(const std::string& path)
{
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? static_cast<uintmax_t>(st.st_blocks) * 512 : 0;
}

} // namespace

// The checkpoint is on the other host: restore fetches its metadata and
// the few pages it fills itself, the lazy-pages server the rest over the
// network, on first touch in a scrambled order and in the background. The
// victim verifies every page. Then the same restore again, with the page
// server failing the eighth fetch the lazy-pages server makes (32 MiB into
// its stream), then with the page server killed at that fetch (the
// connection breaks): the victim is killed (not left with zeros) and the
// log says why. The lazy-pages server starts just before the tree is
// released, so the kill may also come while the restore releases it,
// which then fails: either way the victim is gone.
TEST(LazyRestore, PagesFromAPageServerOnAnotherHost)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    ServedCheckpoint served;
    ASSERT_NO_FATAL_FAILURE(dump_and_serve(session, pair, "lazy", { "256", "random" }, served, "CRYO_FAULT_LIST=1"));
    auto& [key, pid, images, fetched, server] = served;
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, fetched, remote_restore_options(key)));
    std::string restore_log = read_file(fetched + "-restore.log");
    int filled = eagerly_filled_mib(restore_log);
    EXPECT_GE(filled, 0) << restore_log;
    EXPECT_LT(filled, 4) << "the restore filled the memory itself\n" << restore_log;
    EXPECT_LT(allocated_bytes(pages_file(fetched, pid)), 16u << 20) << "the lazy pages were fetched by the restore";
    EXPECT_EQ(file_size(pages_file(fetched, pid)), file_size(pages_file(images, pid)));
    ASSERT_NO_FATAL_FAILURE(release_and_expect_pass(session, pid));
    expect_server_done(session, fetched);
    EXPECT_NE(read_file(fetched + "/lazy-pages.log").find("with pages from a page server"), std::string::npos);
    EXPECT_EQ(wait_exit_code(session, server, 30s), 0) << read_file(images + ".serve.out");
    std::string listing = read_file(images + ".serve.out");
    EXPECT_NE(listing.find("served " + images), std::string::npos) << listing;

    // The step of the eighth fetch after the restore's own.
    std::smatch match;
    ASSERT_TRUE(std::regex_search(restore_log, match, std::regex(R"(after (\d+) fetches from the page server)")))
        << restore_log;
    int failing = std::stoi(match[1]) + 8;
    ASSERT_TRUE(std::regex_search(listing, match,
                                  std::regex("cryo: step (\\d+): fetch #" + std::to_string(failing) + " ")))
        << listing;
    std::string step = match[1];

    // The same restore with the page server failing, or stalled and then
    // killed, at that fetch.
    auto broken_at = [&](const std::string& fault, const std::string& output, const std::string& expected) {
        std::filesystem::remove_all(fetched);
        std::filesystem::remove(fetched + ".pid");
        std::this_thread::sleep_for(100ms);
        server = start_serving(session, pair, images, key, fault + "=" + step, output);
        std::vector<std::string> restore { "restore", "-D", fetched, "-d", "-v", "-o", fetched + "-restore.log" };
        for (const auto& option : remote_restore_options(key))
            restore.push_back(option);
        auto restored = session.cryo(restore);
        session.track(pid);
        EXPECT_TRUE(restored.exit_code == 0 || restored.exit_code == 1) << restored.output;
        if (restored.exit_code == 0)
            send_signal(pid, SIGUSR1);
        if (fault == "CRYO_FAULT_STALL_AT") {
            auto deadline = std::chrono::steady_clock::now() + 30s;
            while (read_file(images + output).find("stalled at step") == std::string::npos
                   && std::chrono::steady_clock::now() < deadline)
                std::this_thread::sleep_for(10ms);
            ASSERT_NE(read_file(images + output).find("stalled at step"), std::string::npos) << read_file(images + output);
            ASSERT_TRUE(send_signal(server, SIGKILL));
        }
        pid_t lazy_server = std::stoi(read_file(fetched + "/lazy-pages.pid"));
        std::string log;
        if (restored.exit_code == 1) {
            // Under load the failing fetch can come before the restore is
            // done: the restore fails and takes the tree with it (cryo
            // reaps it, so only its absence can be checked here).
            EXPECT_TRUE(session.wait_until_gone({ pid }, 20s)) << "a failed restore left the victim behind";
            EXPECT_TRUE(session.wait_until_gone({ lazy_server }, 20s));
            log = read_file(fetched + "/lazy-pages.log");
        } else {
            auto status = session.wait_for_exit(pid, 60s);
            ASSERT_TRUE(status.has_value()) << "the victim runs on without its pages\n" << session.diagnostics();
            EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << "status " << *status;
            EXPECT_TRUE(session.wait_until_gone({ lazy_server }, 20s));
            log = read_file(fetched + "/lazy-pages.log");
            EXPECT_NE(log.find("killing pid " + std::to_string(pid) + ": its memory cannot be brought in"),
                      std::string::npos) << log;
            EXPECT_NE(log.find(expected), std::string::npos) << log;
        }
        EXPECT_NE(log.find("with errors"), std::string::npos) << log;
        EXPECT_NE(wait_exit_code(session, server, 30s), 0) << read_file(images + output);
    };
    broken_at("CRYO_FAULT_AT", ".serve-failing.out", "injected fault at step " + step);
    broken_at("CRYO_FAULT_STALL_AT", ".serve-killed.out", "closed the connection (broken transfer)");
}

// Victims with children sharing memory copy-on-write (whose restorers
// fill it: those pages must be fetched by the restore, not left out),
// threads and trees, restored lazily from the page server.
class RemoteLazyVictims : public testing::TestWithParam<std::string> { };

TEST_P(RemoteLazyVictims, RestoredFromAPageServerVerifiesItself)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    ServedCheckpoint served;
    ASSERT_NO_FATAL_FAILURE(dump_and_serve(session, pair, GetParam(), {}, served));
    auto& [key, pid, images, fetched, server] = served;
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, fetched, remote_restore_options(key)));
    ASSERT_NO_FATAL_FAILURE(release_and_expect_pass(session, pid));
    if (std::filesystem::exists(fetched + "/lazy-pages.pid"))
        expect_server_done(session, fetched);
    EXPECT_EQ(wait_exit_code(session, server, 30s), 0) << read_file(images + ".serve.out");
}

INSTANTIATE_TEST_SUITE_P(Victims, RemoteLazyVictims, testing::Values("memory", "cow", "tree", "threads"));

// CRIU's sequence with pages from another host: `cryo lazy-pages -D DIR
// --page-server --address A --port P --key K &`, then `cryo restore -D DIR
// --lazy-pages` (no --page-server) takes the page server from it.
TEST(LazyPagesCommand, CriuSequenceWithAPageServer)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    ServedCheckpoint served;
    ASSERT_NO_FATAL_FAILURE(dump_and_serve(session, pair, "lazy", { "64", "random" }, served));
    auto& [key, pid, images, fetched, server] = served;
    auto page_server = remote_restore_options(key);
    page_server.erase(page_server.begin());   // --lazy-pages
    ASSERT_NO_FATAL_FAILURE(criu_sequence(session, pid, fetched, page_server, ": pages from the page server"));
    EXPECT_NE(read_file(fetched + "/lazy-pages.log").find("with pages from a page server"), std::string::npos);
    EXPECT_EQ(wait_exit_code(session, server, 30s), 0) << read_file(images + ".serve.out");
}

// A restore holding another key than the page server's is refused before
// anything is fetched or created; the server says why too.
TEST(LazyRestore, PageServerWithAnotherKeyIsRefused)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    pid_t pid = start_and_wait_ready(session, "lazy", { "16" });
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    std::string fetched = session.dir().file("fetched");
    pid_t server = start_serving(session, pair, images, write_hex_key(session, "server-key", 'c'));
    std::vector<std::string> restore { "restore", "-D", fetched, "-d" };
    for (const auto& option : remote_restore_options(write_hex_key(session, "client-key", 'd')))
        restore.push_back(option);
    auto refused = session.cryo(restore);
    EXPECT_EQ(refused.exit_code, 1) << refused.output;
    EXPECT_NE(refused.output.find("wrong key"), std::string::npos) << refused.output;
    EXPECT_FALSE(std::filesystem::exists(fetched));
    EXPECT_FALSE(process_exists(pid));
    EXPECT_EQ(wait_exit_code(session, server, 30s), 1) << read_file(images + ".serve.out");
    EXPECT_NE(read_file(images + ".serve.out").find("wrong key"), std::string::npos) << read_file(images + ".serve.out");
}

// `cryo dedup` drops the chunk checksums of the ancestor files it punches:
// a lazy restore then verifies them whole before anything starts, and a
// changed byte is refused up front, naming the ancestor's file.
TEST(LazyRestore, DeduplicatedAncestorIsVerifiedWholeFirst)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump");
    auto images = dump_chain(session, pid, 2, { "--auto-dedup" });
    ASSERT_EQ(images.size(), 2u);
    std::string pages = pages_file(images[0], pid);
    auto offset = static_cast<std::streamoff>(std::filesystem::file_size(pages) / 2);
    ASSERT_NO_FATAL_FAILURE(corrupt_byte(pages, offset));
    auto refused = session.cryo({ "restore", "-D", images[1], "-d", "--lazy-pages" });
    EXPECT_EQ(refused.exit_code, 1) << refused.output;
    EXPECT_NE(refused.output.find(pages + ": checksum mismatch (corrupted)"), std::string::npos) << refused.output;
    EXPECT_FALSE(file_exists(images[1] + "/lazy-pages.pid")) << "a lazy-pages server was started";
    EXPECT_FALSE(process_exists(pid)) << session.diagnostics();

    ASSERT_NO_FATAL_FAILURE(corrupt_byte(pages, offset));   // back as it was
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images[1], { "--lazy-pages" }));
    ASSERT_NO_FATAL_FAILURE(release_and_expect_pass(session, pid));
    expect_server_done(session, images[1]);
}

// An incremental chain (two pre-dumps, then the dump) served from the
// other namespace: the restore fetches each ancestor's metadata and the
// few of its pages it fills itself into -D/fetched-parent and
// -D/fetched-parent/fetched-parent (image/chain.h), and the lazy-pages
// server brings the rest from the ancestors' page files on the page
// server. The victim checks every page.
TEST(LazyRestore, ChainFromAPageServerOnAnotherHost)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    pid_t pid = start_and_wait_ready(session, "predump");
    auto images = dump_chain(session, pid, 3);
    ASSERT_EQ(images.size(), 3u);
    std::string key = write_hex_key(session, "key", 'c');
    pid_t server = start_serving(session, pair, images[2], key);
    std::string fetched = session.dir().file("fetched");
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, fetched, remote_restore_options(key)));
    std::string restore_log = read_file(fetched + "-restore.log");
    int filled = eagerly_filled_mib(restore_log);
    EXPECT_GE(filled, 0) << restore_log;
    EXPECT_LT(filled, 4) << "the restore filled the memory itself\n" << restore_log;
    for (int ancestor : { 1, 2 }) {
        std::string pages = pages_file(fetched + "/fetched-parent" + (ancestor == 2 ? "/fetched-parent" : ""), pid);
        ASSERT_TRUE(file_exists(pages)) << restore_log;
        EXPECT_EQ(file_size(pages), file_size(pages_file(images[2 - ancestor], pid)));
        EXPECT_LT(allocated_bytes(pages), 16u << 20) << "the lazy pages of " << pages << " were fetched by the restore";
    }
    ASSERT_NO_FATAL_FAILURE(release_and_expect_pass(session, pid));
    expect_server_done(session, fetched);
    EXPECT_EQ(wait_exit_code(session, server, 30s), 0) << read_file(images[2] + ".serve.out");
    EXPECT_NE(read_file(images[2] + ".serve.out").find("served " + images[2]), std::string::npos);
    // What was fetched is no checkpoint to restore without its page server.
    auto plain = session.cryo({ "restore", "-D", fetched, "-d" });
    EXPECT_EQ(plain.exit_code, 1) << plain.output;
    EXPECT_FALSE(process_exists(pid));
}

// A plain restore of what a lazy restore fetched is refused: the page
// file has holes where the lazy pages were.
TEST(LazyRestore, FetchedCheckpointIsNotRestoredWithoutItsPageServer)
{
    NamespacePair pair;
    ASSERT_TRUE(pair.ok()) << "cannot create the network namespaces (ip netns, veth)";
    Session session;
    ServedCheckpoint served;
    ASSERT_NO_FATAL_FAILURE(dump_and_serve(session, pair, "lazy", { "16" }, served));
    auto& [key, pid, images, fetched, server] = served;
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, fetched, remote_restore_options(key)));
    ASSERT_NO_FATAL_FAILURE(release_and_expect_pass(session, pid));
    expect_server_done(session, fetched);
    EXPECT_EQ(wait_exit_code(session, server, 30s), 0) << read_file(images + ".serve.out");
    auto plain = session.cryo({ "restore", "-D", fetched, "-d" });
    EXPECT_EQ(plain.exit_code, 1) << plain.output;
    EXPECT_NE(plain.output.find("pages-" + std::to_string(pid) + ".img"), std::string::npos) << plain.output;
    EXPECT_FALSE(process_exists(pid));
}

} // namespace cryo::e2e
