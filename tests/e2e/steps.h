// The steps every end-to-end test is made of, with their checks: start a
// victim and wait for READY, dump it (images 0600, the original gone by
// SIGKILL), restore it detached (same pid in the pidfile), release it with
// SIGUSR1 and expect PASS. Shared by every *_test.cpp here.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "harness.h"

namespace cryo::e2e {

pid_t start_and_wait_ready(Session& session, const std::string& victim, const std::vector<std::string>& args = {},
                           bool new_pid_namespace = false);
// Dumps the tree of `pid` into `images` and checks it is gone afterwards:
// `pid` (our child, or handed to us as the sub-reaper) killed by SIGKILL.
// `options` are added to the command line.
void dump(Session& session, pid_t pid, const std::string& images, bool leave_running = false,
          const std::vector<std::string>& options = {});
// `fd3`, unless -1, is handed to cryo as its fd 3 (--inherit-fd fd[3]:ID).
void restore_detached(Session& session, pid_t pid, const std::string& images, const std::vector<std::string>& options = {},
                      int fd3 = -1);
// dump() then restore_detached() with the same images.
void dump_and_restore(Session& session, pid_t pid, const std::string& images);
void release_and_expect_pass(Session& session, pid_t pid);
// restore_detached() then release_and_expect_pass().
void restore_and_expect_pass(Session& session, pid_t pid, const std::string& images);
// Starts `victim` with `args`, runs `cryo dump` with `dump_options` added
// and expects it to fail with every one of `expected` in its output
// ("{log}" stands for the victim's log path) and no checkpoint written;
// then the victim, never restored, must pass.
void expect_dump_refused(const std::string& victim, const std::vector<std::string>& args,
                         const std::vector<std::string>& dump_options, const std::vector<std::string>& expected);
// Bytes in the regular files under `path`.
uintmax_t directory_size(const std::string& path);
// Waits up to `timeout` for a process this session started (a victim or a
// background cryo) and returns its exit code, or -1 if it was killed by a
// signal or is still running.
int wait_exit_code(Session& session, pid_t pid, std::chrono::seconds timeout);
// Bytes in the file at `path`, 0 when there is none.
uintmax_t file_size(const std::string& path);
// The page file of process `pid` in `images`.
std::string pages_file(const std::string& images, pid_t pid);
// A key file of 64 hex digits `fill` (--key of the page server and
// migrate) in the session's directory; returns its path.
std::string write_hex_key(Session& session, const std::string& name, char fill);

} // namespace cryo::e2e
