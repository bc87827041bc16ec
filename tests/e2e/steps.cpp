// See steps.h.
#include "steps.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>

#include <gtest/gtest.h>

namespace cryo::e2e {

pid_t start_and_wait_ready(Session& session, const std::string& victim, const std::vector<std::string>& args,
                           bool new_pid_namespace)
{
    pid_t pid = session.start_victim(victim, args, new_pid_namespace);
    EXPECT_GT(pid, 1);
    EXPECT_TRUE(session.wait_for_log("READY")) << session.diagnostics();
    return pid;
}

// Dumps the tree of `pid` into `images` and checks it is gone afterwards:
// `pid` (our child, or handed to us as the sub-reaper) killed by SIGKILL.
void dump(Session& session, pid_t pid, const std::string& images, bool leave_running,
          const std::vector<std::string>& options)
{
    std::vector<std::string> args { "dump", "-t", std::to_string(pid), "-D", images, "-v", "-o", images + "-dump.log" };
    if (leave_running)
        args.push_back("--leave-running");
    args.insert(args.end(), options.begin(), options.end());
    auto result = session.cryo(args);
    ASSERT_EQ(result.exit_code, 0) << result.output << session.diagnostics();
    ASSERT_TRUE(file_exists(images + "/manifest.img"));
    for (const auto& entry : std::filesystem::directory_iterator(images)) {
        struct stat st {};
        ::stat(entry.path().c_str(), &st);
        EXPECT_EQ(st.st_mode & 0777, 0600u) << entry.path();
    }
    if (!leave_running) {
        auto status = session.wait_for_exit(pid, std::chrono::seconds(20));
        ASSERT_TRUE(status.has_value()) << "the checkpointed process " << pid << " is still alive\n" << session.diagnostics();
        EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL)
            << "the checkpointed process did not die by SIGKILL: status " << *status << "\n" << session.diagnostics();
        ASSERT_TRUE(session.wait_until_gone(session.image_pids(images))) << "the checkpointed tree is still alive\n" << session.diagnostics();
    }
}

void restore_detached(Session& session, pid_t pid, const std::string& images, const std::vector<std::string>& options,
                      int fd3)
{
    std::string pidfile = images + ".pid";
    std::vector<std::string> args { "restore", "-D", images, "-d", "--pidfile", pidfile, "-v", "-o", images + "-restore.log" };
    args.insert(args.end(), options.begin(), options.end());
    auto result = session.cryo(args, fd3);
    ASSERT_EQ(result.exit_code, 0) << result.output << session.diagnostics();
    EXPECT_EQ(std::stoi(read_file(pidfile)), pid);
    for (pid_t restored : session.image_pids(images))
        session.track(restored);
}

void dump_and_restore(Session& session, pid_t pid, const std::string& images)
{
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
}

void release_and_expect_pass(Session& session, pid_t pid)
{
    ASSERT_TRUE(send_signal(pid, SIGUSR1));
    auto status = session.wait_for_exit(pid);
    ASSERT_TRUE(status.has_value()) << "victim did not exit\n" << session.diagnostics();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "status " << *status << "\n" << session.diagnostics();
    std::string log = session.log();
    EXPECT_NE(log.find("PASS"), std::string::npos) << session.diagnostics();
    EXPECT_EQ(log.find("FAIL"), std::string::npos) << session.diagnostics();
}

void expect_dump_refused(const std::string& victim, const std::vector<std::string>& args,
                         const std::vector<std::string>& dump_options, const std::vector<std::string>& expected)
{
    Session session;
    pid_t pid = start_and_wait_ready(session, victim, args);
    std::string images = session.dir().file("images");
    std::vector<std::string> command { "dump", "-t", std::to_string(pid), "-D", images };
    command.insert(command.end(), dump_options.begin(), dump_options.end());
    auto result = session.cryo(command);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    for (auto text : expected) {
        if (auto at = text.find("{log}"); at != std::string::npos)
            text.replace(at, 5, session.log_path());
        EXPECT_NE(result.output.find(text), std::string::npos) << "no '" << text << "' in:\n" << result.output;
    }
    EXPECT_FALSE(file_exists(images + "/manifest.img"));
    release_and_expect_pass(session, pid);
}

int wait_exit_code(Session& session, pid_t pid, std::chrono::seconds timeout)
{
    auto status = session.wait_for_exit(pid, timeout);
    return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

uintmax_t directory_size(const std::string& path)
{
    uintmax_t total = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(path))
        if (entry.is_regular_file())
            total += entry.file_size();
    return total;
}

uintmax_t file_size(const std::string& path)
{
    std::error_code error;
    auto size = std::filesystem::file_size(path, error);
    return error ? 0 : size;
}

std::string pages_file(const std::string& images, pid_t pid)
{
    return images + "/pages-" + std::to_string(pid) + ".img";
}

std::string write_hex_key(Session& session, const std::string& name, char fill)
{
    std::string path = session.dir().file(name);
    write_file(path, std::string(64, fill));
    return path;
}

void restore_and_expect_pass(Session& session, pid_t pid, const std::string& images)
{
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e
