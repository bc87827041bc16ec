// Two network namespaces standing for two hosts, for the tests of
// `cryo page-server` and `cryo migrate`: a namespace each test creates
// (unique name, removed when it ends, pass or fail, with the pair) for the
// server (`ip netns exec`), joined by a veth pair to this one, where the
// victim and the sender run (cryo dumps only processes in its own
// namespaces).
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "harness.h"

namespace cryo::e2e {

// The harness execs without a PATH search.
inline constexpr const char* kIp = "/usr/sbin/ip";

inline int run_ip(const std::string& command)
{
    return std::system((std::string(kIp) + " " + command + " >/dev/null 2>&1").c_str());
}

// A network namespace for the server joined by a veth pair to this one,
// on a subnet 10.231.N.0/24 of its own (server .1, this side .2): tests run
// in parallel (ctest -j) and each adds an address here, so each needs its
// own subnet. The veth end here is named after N, and link names are unique
// in a namespace, so creating it is what claims N. Removed, with the pair,
// when dropped. One pair at a time per test process (server_address() is
// the current one's).
class NamespacePair {
public:
    NamespacePair()
        : m_server("cryo-ps-" + std::to_string(::getpid()) + "-s")
    {
        remove();   // left over from a crashed earlier run with this pid
        if (run_ip("netns add " + m_server) != 0)
            return;
        for (int attempt = 0; attempt < 250 && s_subnet < 0; ++attempt) {
            int subnet = (::getpid() + attempt) % 250;
            if (run_ip("link add cryops" + std::to_string(subnet) + " type veth peer name cryops-s netns " + m_server) == 0)
                s_subnet = subnet;
        }
        std::string client_link = "cryops" + std::to_string(s_subnet);
        m_ok = s_subnet >= 0 && run_ip("-n " + m_server + " addr add " + server_address() + "/24 dev cryops-s") == 0
            && run_ip("addr add " + client_address() + "/24 dev " + client_link) == 0
            && run_ip("-n " + m_server + " link set cryops-s up") == 0
            && run_ip("link set " + client_link + " up") == 0
            && run_ip("-n " + m_server + " link set lo up") == 0;
    }
    ~NamespacePair() { remove(); }
    NamespacePair(const NamespacePair&) = delete;
    NamespacePair& operator=(const NamespacePair&) = delete;

    bool ok() const { return m_ok; }
    const std::string& server() const { return m_server; }
    static std::string server_address() { return "10.231." + std::to_string(s_subnet) + ".1"; }
    static std::string client_address() { return "10.231." + std::to_string(s_subnet) + ".2"; }

private:
    // Deleting the namespace deletes the veth pair, this end too.
    void remove()
    {
        run_ip("netns del " + m_server);
        s_subnet = -1;
    }

    static inline int s_subnet { -1 };
    std::string m_server;
    bool m_ok { false };
};

// Whether the server side has pids of its own as well: a PID namespace
// (with its own /proc) whose init is a shell that runs cryo, writes
// "cryo exited with N" after it and then stays, so that a tree cryo
// restored there (the destination of `cryo migrate`, which has the source
// tree's pids while the source still holds them here) outlives cryo. The
// pid returned is `unshare --kill-child`'s: killing it (the session does)
// kills that init and with it everything in the namespace.
enum class ServerPids { Shared, Own };

// Starts `cryo ARGS` in the server namespace, its output in `output`, and
// waits until it says it is listening.
inline pid_t start_listening_cryo(Session& session, const NamespacePair& pair, const std::vector<std::string>& args,
                                  const std::string& output, ServerPids pids = ServerPids::Shared)
{
    using namespace std::chrono_literals;
    Launcher launcher;
    launcher.cryo_prefix = { kIp, "netns", "exec", pair.server() };
    if (pids == ServerPids::Own)
        launcher.cryo_prefix.insert(launcher.cryo_prefix.end(),
                                    { "/usr/bin/unshare", "--pid", "--kill-child", "--mount-proc", "/bin/sh", "-c",
                                      "\"$@\"; echo \"cryo exited with $?\"; exec sleep 3600", "sh" });
    session.set_launcher(launcher);
    pid_t pid = session.start_cryo(args, output);
    session.set_launcher({});
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (read_file(output).find("listening on") == std::string::npos && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(10ms);
    EXPECT_NE(read_file(output).find("listening on"), std::string::npos) << read_file(output);
    return pid;
}

// The exit code of a cryo started with ServerPids::Own, from its output;
// -1 if it did not exit within `timeout`.
inline int own_pids_exit_code(const std::string& output, std::chrono::seconds timeout)
{
    using namespace std::chrono_literals;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::smatch match;
    std::regex line(R"(cryo exited with (\d+))");
    for (;;) {
        std::string text = read_file(output);
        if (std::regex_search(text, match, line))
            return std::stoi(match[1]);
        if (std::chrono::steady_clock::now() >= deadline)
            return -1;
        std::this_thread::sleep_for(20ms);
    }
}

// The pid, as seen here, of the process that is `pid` in the PID namespace
// of `init` (the init of a ServerPids::Own server, as seen here); 0 if none.
inline pid_t pid_seen_here(pid_t init, pid_t pid)
{
    std::error_code error;
    auto namespace_of = [&](const std::string& process) {
        return std::filesystem::read_symlink("/proc/" + process + "/ns/pid", error).string();
    };
    std::string wanted = namespace_of(std::to_string(init));
    if (error)
        return 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
        std::string name = entry.path().filename();
        if (name.find_first_not_of("0123456789") != std::string::npos || namespace_of(name) != wanted)
            continue;
        std::ifstream status(entry.path() / "status");
        std::string line;
        while (std::getline(status, line))
            if (line.rfind("NSpid:", 0) == 0 && line.ends_with("\t" + std::to_string(pid)))
                return std::stoi(name);
    }
    return 0;
}

} // namespace cryo::e2e
