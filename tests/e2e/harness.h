// The end-to-end harness: starts victims, runs `cryo`, waits, cleans up.
//
// The harness process is a child sub-reaper, so restored processes (whose
// parent, `cryo restore -d`, exits) and orphans of a killed tree come back
// to it and are waited for here. Every process it starts or that comes back
// to it is killed and reaped when a test ends, pass or fail, and every
// temporary directory is removed. Signals go through one helper that
// refuses pid <= 1.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace cryo::e2e {

// kill(2) to one process; refuses pid <= 1 (never a group, never everyone).
bool send_signal(pid_t pid, int signal);

struct CommandResult {
    int exit_code { -1 };
    std::string output;   // stdout and stderr together
    long peak_rss_kb { 0 };  // of cryo (and the children it waited for), from wait4
};

// A temporary directory, removed with everything in it.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return m_path; }
    std::string file(const std::string& name) const { return m_path + "/" + name; }

private:
    std::string m_path;
};

// How victims and cryo are started: directly, as root, unless a test (the
// rootless ones) puts a command in front (setpriv switching to its user)
// and names its own copy of cryo.
struct Launcher {
    std::vector<std::string> victim_prefix;
    std::vector<std::string> cryo_prefix;
    std::string cryo_binary { CRYO_BINARY };
};

// One test's processes and files.
class Session {
public:
    Session();
    ~Session();

    const TempDir& dir() const { return m_dir; }
    void set_launcher(Launcher launcher) { m_launcher = std::move(launcher); }
    std::string log_path() const { return m_dir.file("victim.log"); }

    // Starts tests/victims/victim_NAME with the log as stdout/stderr; with
    // new_pid_namespace it is pid 1 of a new PID namespace. Returns its pid
    // (as seen here).
    pid_t start_victim(const std::string& name, const std::vector<std::string>& args = {}, bool new_pid_namespace = false);
    // Waits until the log holds `count` lines starting with `word`.
    bool wait_for_log(const std::string& word, int count = 1, std::chrono::seconds timeout = std::chrono::seconds(20));
    std::string log() const;

    // Runs `cryo ARGS` to completion; `fd3`, unless -1, is handed to cryo
    // as its fd 3 (for --inherit-fd fd[3]:ID).
    CommandResult cryo(const std::vector<std::string>& args, int fd3 = -1);
    // Starts `cryo ARGS` without waiting (a foreground restore); its output
    // goes to `output_file`.
    pid_t start_cryo(const std::vector<std::string>& args, const std::string& output_file, int fd3 = -1);

    // Waits for one process (a child or re-parented to us) and returns its
    // wait status, reaping anything else that exits meanwhile. A process
    // reaped earlier (while waiting for another one) and not seen alive again
    // since gives the status it had then.
    std::optional<int> wait_for_exit(pid_t pid, std::chrono::seconds timeout = std::chrono::seconds(60));
    // The peak RSS (ru_maxrss, KiB) of the last `cryo` run by cryo(), as
    // wait4 reported it (for steps that do not return the CommandResult).
    long last_cryo_peak_rss_kb() const { return m_last_cryo_peak_rss_kb; }
    // Waits until every listed pid is gone from /proc (reaping as it goes).
    bool wait_until_gone(const std::vector<pid_t>& pids, std::chrono::seconds timeout = std::chrono::seconds(20));
    // The pids of the live processes of a checkpoint (from core-PID.img names).
    std::vector<pid_t> image_pids(const std::string& images) const;
    // Remembers pids to kill at the end.
    void track(pid_t pid)
    {
        m_tracked.insert(pid);
        m_exit_status.erase(pid);   // a new process with that pid
    }
    // Everything the harness knows about this test, for a failure message.
    std::string diagnostics() const;

private:
    void reap_available();
    void kill_remaining_children();
    TempDir m_dir;
    Launcher m_launcher;
    std::set<pid_t> m_tracked;
    std::map<pid_t, int> m_exit_status;   // of processes reaped by the loops here
    long m_last_waited_peak_rss_kb { 0 };  // ru_maxrss of the process wait_for_exit() returned
    long m_last_cryo_peak_rss_kb { 0 };
};

bool file_exists(const std::string& path);
std::string read_file(const std::string& path);
// Replaces the file at `path` with `text`.
void write_file(const std::string& path, const std::string& text);
bool process_exists(pid_t pid);
// The live children of the harness (its own and those handed to it as the
// sub-reaper), from /proc/self/task/*/children.
std::vector<pid_t> children_of_self();
std::vector<pid_t> children_of(pid_t pid);
// State, parent, signal masks, wait channel and kernel stack of a process,
// for failure messages.
std::string process_report(pid_t pid);
pid_t unused_pid();

} // namespace cryo::e2e
