// See harness.h.
#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#ifndef CRYO_BINARY
#error "CRYO_BINARY must name the cryo executable"
#endif
#ifndef CRYO_VICTIM_DIR
#error "CRYO_VICTIM_DIR must name the directory of the victims"
#endif

namespace cryo::e2e {

namespace {

// Closes every descriptor above `last_kept` (stderr by default) in a
// freshly forked child.
void close_other_fds(int last_kept = 2)
{
    for (int fd = last_kept + 1; fd < 4096; ++fd)
        ::close(fd);
}

// `fd3`: a descriptor to hand over as fd 3 (-1: none).
[[noreturn]] void exec_with_output(const std::vector<std::string>& argv, const std::string& output, const char* stdin_path,
                                   int fd3 = -1)
{
    int in = ::open(stdin_path, O_RDONLY);
    int out = ::open(output.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (in < 0 || out < 0)
        ::_exit(126);
    if (fd3 >= 0 && (fd3 = ::fcntl(fd3, F_DUPFD, 100)) < 0)
        ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    if (fd3 >= 0 && ::dup2(fd3, 3) != 3)
        ::_exit(126);
    close_other_fds(fd3 >= 0 ? 3 : 2);
    std::vector<char*> args;
    for (const auto& arg : argv)
        args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
}

struct CloneArgs {
    const std::vector<std::string>* argv;
    const std::string* output;
};

int exec_in_namespace(void* raw)
{
    auto* args = static_cast<CloneArgs*>(raw);
    exec_with_output(*args->argv, *args->output, "/dev/null");
}

} // namespace

bool send_signal(pid_t pid, int signal)
{
    if (pid <= 1)
        return false;
    return ::kill(pid, signal) == 0;
}

bool file_exists(const std::string& path)
{
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

std::string read_file(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

void write_file(const std::string& path, const std::string& text)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

bool process_exists(pid_t pid) { return pid > 0 && file_exists("/proc/" + std::to_string(pid)); }

std::vector<pid_t> children_of_self() { return children_of(::getpid()); }

std::vector<pid_t> children_of(pid_t pid)
{
    std::vector<pid_t> children;
    std::error_code error;
    for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", error)) {
        std::istringstream list(read_file(task.path().string() + "/children"));
        pid_t child = 0;
        while (list >> child)
            if (child > 1)
                children.push_back(child);
    }
    return children;
}

std::string process_report(pid_t pid)
{
    std::string proc = "/proc/" + std::to_string(pid);
    if (pid <= 0 || !file_exists(proc))
        return "pid " + std::to_string(pid) + ": gone\n";
    std::string text = "pid " + std::to_string(pid) + ":";
    std::istringstream status(read_file(proc + "/status"));
    std::string line;
    while (std::getline(status, line))
        for (const char* key : { "Name:", "State:", "PPid:", "NSpid:", "Threads:", "SigPnd:", "ShdPnd:", "SigBlk:", "SigCgt:" })
            if (line.rfind(key, 0) == 0)
                text += " " + line;
    text += " wchan: " + read_file(proc + "/wchan") + "\n";
    std::string stack = read_file(proc + "/stack");
    if (!stack.empty())
        text += stack;
    return text;
}

pid_t unused_pid()
{
    for (pid_t pid = 32000; pid > 1000; --pid)
        if (!process_exists(pid))
            return pid;
    return 32767;
}

TempDir::TempDir()
{
    char pattern[] = "/tmp/cryo-e2e-XXXXXX";
    char* made = ::mkdtemp(pattern);
    m_path = made ? made : "/tmp/cryo-e2e-failed";
}

TempDir::~TempDir()
{
    std::error_code ignored;
    std::filesystem::remove_all(m_path, ignored);
}

Session::Session()
{
    static bool made_subreaper = [] { return ::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0; }();
    (void)made_subreaper;
}

Session::~Session()
{
    for (pid_t pid : m_tracked)
        send_signal(pid, SIGKILL);
    std::vector<pid_t> pids(m_tracked.begin(), m_tracked.end());
    wait_until_gone(pids, std::chrono::seconds(10));
    kill_remaining_children();
}

// Anything still our child now was started by this test or handed to us as
// the sub-reaper (an orphan of a victim tree, a restored process nobody
// tracked): kill it by its pid, reap it, and repeat, since killing a parent
// hands its own children to us.
void Session::kill_remaining_children()
{
    for (int round = 0; round < 100; ++round) {
        reap_available();
        auto children = children_of_self();
        if (children.empty())
            return;
        for (pid_t child : children)
            send_signal(child, SIGKILL);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

pid_t Session::start_victim(const std::string& name, const std::vector<std::string>& args, bool new_pid_namespace)
{
    std::vector<std::string> argv = m_launcher.victim_prefix;
    argv.push_back(std::string(CRYO_VICTIM_DIR) + "/victim_" + name);
    argv.push_back(log_path());
    argv.insert(argv.end(), args.begin(), args.end());
    std::string output = log_path();
    pid_t pid;
    if (new_pid_namespace) {
        static std::vector<char> stack(1 << 20);
        CloneArgs clone_args { &argv, &output };
        pid = ::clone(exec_in_namespace, stack.data() + stack.size(), CLONE_NEWPID | SIGCHLD, &clone_args);
    } else {
        pid = ::fork();
        if (pid == 0)
            exec_with_output(argv, output, "/dev/null");
    }
    if (pid > 0)
        track(pid);
    return pid;
}

bool Session::wait_for_log(const std::string& word, int count, std::chrono::seconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        std::istringstream lines(log());
        std::string line;
        int found = 0;
        while (std::getline(lines, line))
            if (line.rfind(word, 0) == 0)
                ++found;
        if (found >= count)
            return true;
        reap_available();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
}

std::string Session::log() const { return read_file(log_path()); }

CommandResult Session::cryo(const std::vector<std::string>& args, int fd3)
{
    static int counter = 0;
    std::string output = m_dir.file("cryo-output-" + std::to_string(++counter));
    pid_t pid = start_cryo(args, output, fd3);
    CommandResult result;
    auto status = wait_for_exit(pid, std::chrono::seconds(120));
    if (status)
        result.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
    result.output = read_file(output);
    result.peak_rss_kb = m_last_cryo_peak_rss_kb = status ? m_last_waited_peak_rss_kb : 0;
    // In a sanitizer build (scripts/sanitize) any report fails the test,
    // also from a run that was meant to fail with some exit code.
    for (const char* marker : { "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:" })
        if (result.output.find(marker) != std::string::npos)
            ADD_FAILURE() << "sanitizer report from cryo " << args.front() << ":\n" << result.output;
    return result;
}

pid_t Session::start_cryo(const std::vector<std::string>& args, const std::string& output_file, int fd3)
{
    std::vector<std::string> argv = m_launcher.cryo_prefix;
    argv.push_back(m_launcher.cryo_binary);
    argv.insert(argv.end(), args.begin(), args.end());
    pid_t pid = ::fork();
    if (pid == 0)
        exec_with_output(argv, output_file, "/dev/null", fd3);
    return pid;
}

void Session::reap_available()
{
    int status = 0;
    pid_t done;
    while ((done = ::waitpid(-1, &status, WNOHANG | __WALL)) > 0)
        m_exit_status[done] = status;
}

std::optional<int> Session::wait_for_exit(pid_t pid, std::chrono::seconds timeout)
{
    if (auto earlier = m_exit_status.find(pid); earlier != m_exit_status.end()) {
        int status = earlier->second;
        m_exit_status.erase(earlier);
        if (!process_exists(pid))
            return status;
        // Else that was an earlier process with this pid (restored since).
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        struct rusage usage {};
        pid_t done = ::wait4(-1, &status, WNOHANG | __WALL, &usage);
        if (done == pid) {
            m_last_waited_peak_rss_kb = usage.ru_maxrss;
            return status;
        }
        if (done > 0) {
            m_exit_status[done] = status;
            continue;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return std::nullopt;
}

bool Session::wait_until_gone(const std::vector<pid_t>& pids, std::chrono::seconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        reap_available();
        bool any = false;
        for (pid_t pid : pids)
            any = any || process_exists(pid);
        if (!any)
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

std::vector<pid_t> Session::image_pids(const std::string& images) const
{
    std::vector<pid_t> pids;
    std::regex core_name("core-([0-9]+)\\.img");
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(images, error)) {
        std::smatch match;
        std::string name = entry.path().filename().string();
        if (std::regex_match(name, match, core_name))
            pids.push_back(std::stoi(match[1]));
    }
    return pids;
}

std::string Session::diagnostics() const
{
    std::string text = "--- victim log ---\n" + log();
    text += "--- processes ---\n";
    // What we started or restored, what came back to us, and their
    // descendants (the rest of a victim tree).
    std::vector<pid_t> queue(m_tracked.begin(), m_tracked.end());
    auto ours = children_of_self();
    queue.insert(queue.end(), ours.begin(), ours.end());
    std::set<pid_t> shown;
    for (size_t i = 0; i < queue.size() && shown.size() < 64; ++i) {
        if (!shown.insert(queue[i]).second)
            continue;
        text += process_report(queue[i]);
        auto children = children_of(queue[i]);
        queue.insert(queue.end(), children.begin(), children.end());
    }
    std::error_code error;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(m_dir.path(), error)) {
        auto name = entry.path().filename().string();
        if (name.ends_with(".log") && name != "victim.log")
            text += "--- " + entry.path().string() + " ---\n" + read_file(entry.path().string());
        if (name.rfind("cryo-output-", 0) == 0)
            text += "--- " + name + " ---\n" + read_file(entry.path().string());
    }
    return text;
}

} // namespace cryo::e2e
