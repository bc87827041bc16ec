// The `cryo` command: parses arguments, sets up logging, runs one command
// and prints its error, once, if it fails. Nothing else lives here.
#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "base/log.h"
#include "check/features.h"
#include "cli/leak_check.h"
#include "dump/dump.h"
#include "image/compress.h"
#include "image/dedup.h"
#include "image/key.h"
#include "dump/pre_dump.h"
#include "inspect/chain.h"
#include "inspect/codec.h"
#include "inspect/diff.h"
#include "inspect/memory.h"
#include "inspect/show.h"
#include "lazy/command.h"
#include "migrate/migrate.h"
#include "net/page_server.h"
#include "restore/restore.h"

namespace {

struct CommonOptions {
    int verbosity { 0 };
    std::string log_file;
};

// decode and encode use -o for their output: their log file is --log-file
// only.
enum class LogFileOption { WithShortName, LongOnly };

void add_common_options(CLI::App& command, CommonOptions& common,
                        LogFileOption log_file = LogFileOption::WithShortName)
{
    command.add_flag("-v,--verbose", common.verbosity, "More output (repeat for more)");
    command.add_option(log_file == LogFileOption::WithShortName ? "-o,--log-file" : "--log-file", common.log_file,
                       "Write the log to this file");
}

// Options of criu that scripts pass out of habit. Most ask for something
// cryo always does; they are accepted so those scripts run unchanged, and
// the help says what cryo does instead.
struct CriuCompatFlags {
    bool ignored { false };
    bool ext_unix_sk { false };
    std::string manage_cgroups;
    int64_t timeout { 0 };
};

enum class CriuSide { Dump, Restore };

void add_criu_compat_options(CLI::App& command, CriuCompatFlags& flags, CriuSide side)
{
    bool dump = side == CriuSide::Dump;
    command.add_flag("--file-locks", flags.ignored, "Accepted for criu compatibility: file locks are always saved");
    command.add_flag("--link-remap", flags.ignored,
                     "Accepted for criu compatibility: files deleted while open are always saved (up to --ghost-limit)");
    command.add_flag("--evasive-devices", flags.ignored,
                     "Accepted for criu compatibility: device files are opened again by their path");
    command.add_option("--manage-cgroups", flags.manage_cgroups,
                       dump ? "Accepted for criu compatibility: cgroup v2 membership is always saved"
                            : "criu's cgroup mode: 'ignore' or 'none' leaves the tree in cryo's cgroup (as "
                              "--skip-cgroups); any other mode puts each process back in its cgroup, the default")
        ->expected(0, 1);
    command.add_flag("--ext-unix-sk", flags.ext_unix_sk,
                     dump ? "Every unix socket whose peer is outside the tree counts as declared with --external "
                            "(restore connects it to the peer's name again)"
                          : "Accepted for criu compatibility: external unix sockets are always connected again");
    if (dump)
        command.add_option("--timeout", flags.timeout,
                           "Accepted for criu compatibility: the tree is frozen with ptrace, which needs no timeout");
    else
        command.add_flag("--restore-sibling", flags.ignored,
                         "Accepted for criu compatibility: with -d the restored root is not cryo's child anyway");
}

// --key KEYFILE on every command that reads a checkpoint: the same name and
// meaning everywhere.
constexpr const char* kKeyHelp = "KEYFILE - the key of an encrypted checkpoint (32 raw bytes or 64 hex digits); "
                                 "a key given for a checkpoint that is not encrypted is refused";

// Loads the key file named by an option, if it was given.
cryo::Result<std::optional<cryo::image::Key>> load_key(const std::string& path)
{
    if (path.empty())
        return std::nullopt;
    return TRY(cryo::image::Key::load(path));
}

// --page-server, --address, --port, --key on dump and pre-dump.
struct PageServerFlags {
    bool enabled { false };
    std::string address;
    uint16_t port { 0 };
    std::string key;
};

void add_page_server_options(CLI::App& command, PageServerFlags& flags)
{
    command.add_flag("--page-server", flags.enabled,
                     "Send every file of the checkpoint to a `cryo page-server` instead of writing -D (which is then "
                     "not used; --prev-images-dir is resolved on the server)");
    command.add_option("--address", flags.address, "With --page-server: the server's address");
    command.add_option("--port", flags.port, "With --page-server: the server's port");
    command.add_option("--key", flags.key,
                       "With --page-server: KEYFILE shared with the server (as for --encrypt): both sides prove they "
                       "hold it and every frame is authenticated");
}

// The page server to send to, if --page-server was given.
cryo::Result<std::optional<cryo::net::PageServerAddress>> page_server_address(const PageServerFlags& flags,
                                                                               const std::string& directory)
{
    if (!flags.enabled) {
        if (!flags.address.empty() || flags.port != 0 || !flags.key.empty())
            return cryo::fail("--address, --port and --key need --page-server");
        if (directory.empty())
            return cryo::fail("-D/--images-dir is required (or --page-server)");
        return std::nullopt;
    }
    if (flags.address.empty() || flags.port == 0)
        return cryo::fail("--page-server needs --address and --port");
    return cryo::net::PageServerAddress { .address = flags.address, .port = flags.port, .key = TRY(load_key(flags.key)) };
}

int report(const cryo::Error& error, std::string_view command)
{
    // Once on the terminal, and once in the log file when there is one.
    fmt::print(stderr, "cryo {}: error: {}\n", command, error.message());
    cryo::log_error_to_file(fmt::format("cryo {}: error: {}", command, error.message()));
    return 1;
}

// The end of a command's run.
int exit_status(const cryo::Result<void>& result, std::string_view command)
{
    return result ? 0 : report(result.error(), command);
}

// Loads the key file named by --key into `key`. On failure, reports the
// error for `command` and returns the exit status.
std::optional<int> take_key(const std::string& path, std::optional<cryo::image::Key>& key, std::string_view command)
{
    auto loaded = load_key(path);
    if (!loaded)
        return report(loaded.error(), command);
    key = std::move(*loaded);
    return std::nullopt;
}

int run_check()
{
    auto results = cryo::check::probe_features();
    bool missing_required = false;
    for (const auto& feature : results) {
        const char* state = feature.present ? "yes" : "NO";
        const char* need = feature.need == cryo::check::Need::Required ? "required" : "optional";
        fmt::print("{:<34} {:<4} ({}){}{}\n", feature.name, state, need,
                   feature.detail.empty() ? "" : ": ", feature.detail);
        if (!feature.present && feature.need == cryo::check::Need::Required)
            missing_required = true;
    }
    fmt::print("{}\n", missing_required ? "cryo check: a required feature is missing"
                                         : "cryo check: everything cryo needs is present");
    return missing_required ? 1 : 0;
}

// --auto-dedup: the checkpoint is complete; a failure here says so.
cryo::Result<void> auto_dedup(const std::string& directory)
{
    auto result = cryo::image::run_dedup(directory);
    if (!result)
        return cryo::fail("the checkpoint {} is complete, but --auto-dedup failed: {}", directory, result.error().message());
    return {};
}

// "64M"-style sizes: a number with an optional K, M or G suffix.
cryo::Result<uint64_t> parse_size(const std::string& text)
{
    uint64_t value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    std::string_view suffix(end, static_cast<size_t>(text.data() + text.size() - end));
    int shift = suffix.empty() ? 0 : suffix == "K" ? 10 : suffix == "M" ? 20 : suffix == "G" ? 30 : -1;
    if (error != std::errc() || shift < 0)
        return cryo::fail("--ghost-limit '{}': expected a size such as 64M", text);
    return value << shift;
}

// criu accepts "-v4" for verbosity 4; CLI11 counts "-v" flags, so "-vN"
// becomes N of them.
std::vector<std::string> expand_verbosity(int argc, char** argv)
{
    std::vector<std::string> args;
    for (int i = 0; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg.size() == 3 && arg.starts_with("-v") && arg[2] >= '0' && arg[2] <= '9') {
            for (int level = 0; level < arg[2] - '0'; ++level)
                args.emplace_back("-v");
            continue;
        }
        args.emplace_back(arg);
    }
    return args;
}

// One subcommand: its options and what it runs once they are parsed. Only
// the subcommand the command line names gets its options (run_command):
// building every subcommand's options took a fifth of each command's start,
// which counts in every small dump and restore (bench/README.md).
class Command {
public:
    virtual ~Command() = default;
    virtual void add_options(CLI::App& command, CommonOptions& common) = 0;
    virtual int run() = 0;
};

// -t, -D and the page server: what dump and pre-dump read and where they
// write it.
void add_target_options(CLI::App& command, pid_t& pid, std::string& directory, PageServerFlags& page_server)
{
    command.add_option("-t,--tree", pid, "PID of the root of the tree")->required();
    command.add_option("-D,--images-dir", directory, "Directory for the image files");
    add_page_server_options(command, page_server);
}

auto verify(bool skip) { return skip ? cryo::inspect::Verify::Skip : cryo::inspect::Verify::Checksums; }

// The run of decode, encode, mem and diff: the key, whether to verify, the
// command itself.
template <typename Options>
int run_inspection(const std::string& key, bool no_verify, Options& options,
                   cryo::Result<void> (*run)(const Options&), std::string_view command)
{
    if (auto failed = take_key(key, options.key, command))
        return *failed;
    options.verify = verify(no_verify);
    return exit_status(run(options), command);
}

class DumpCommand final : public Command {
public:
    void add_options(CLI::App& command, CommonOptions& common) override
    {
        add_target_options(command, options_.pid, options_.directory, page_server_);
        command.add_flag("-R,--leave-running", options_.leave_running,
                         "Let the tree run on after the dump instead of killing it");
        command.add_flag("--no-sync", no_sync_, "Do not fsync the image files (faster, less safe)");
        command.add_option("--ghost-limit", ghost_limit_,
                           "Most data kept in the image for a file deleted while open (bytes, or with K/M/G; default "
                           "64M)");
        command.add_option("--external", options_.externals,
                           "ID - an open file that is outside the tree on purpose, as /proc/PID/fd shows it: "
                           "socket:[INODE] (a unix socket whose peer is outside: restore connects to the peer's name "
                           "again), pipe:[INODE] or a path (not saved: restore needs --inherit-fd fd[N]:ID)");
        command.add_flag("--tcp-established", options_.tcp_established,
                         "Checkpoint established TCP connections (TCP_REPAIR; the peer does not see the connection "
                         "close)");
        command.add_flag("--display-stats", options_.display_stats, "Print the time of each phase and the page counts");
        command.add_flag(fmt::format("--compress{{{}}}", cryo::image::kDefaultCompressionLevel),
                         options_.compression_level,
                         fmt::format("Compress the page data with zstd (multi-threaded); --compress=LEVEL chooses the "
                                     "level (1-{}, default {})",
                                     cryo::image::kMaxCompressionLevel, cryo::image::kDefaultCompressionLevel));
        command.add_option("--encrypt", encrypt_key_,
                           "KEYFILE - encrypt and authenticate every file of the checkpoint (AES-256-GCM) with this "
                           "key: 32 raw bytes or 64 hex digits (make one with: head -c 32 /dev/urandom > KEYFILE)");
        command.add_option("--prev-images-dir", options_.prev_images_dir,
                           "The previous checkpoint (a pre-dump), relative to the images directory: pages not written "
                           "since are left there instead of being stored again");
        command.add_flag("--track-mem", options_.track_mem,
                         "With --leave-running: keep tracking written pages for a later dump with --prev-images-dir");
        command.add_option("--tracker-timeout", tracker_timeout_,
                           "With --track-mem: seconds the tracking is kept for the next dump (default 600)");
        command.add_flag("--auto-dedup", auto_dedup_,
                         "With --prev-images-dir: once the dump is complete, punch out of the ancestors' page files "
                         "what it does not need (as cryo dedup; they can no longer be restored themselves)");
        command.add_flag("-j,--shell-job", shell_job_,
                         "Accepted for criu compatibility: terminals are always dumped by path");
        add_criu_compat_options(command, criu_, CriuSide::Dump);
        add_common_options(command, common);
    }

    int run() override
    {
        auto key = load_key(encrypt_key_);
        if (!key)
            return report(key.error(), "dump");
        if (options_.compression_level < 0 || options_.compression_level > cryo::image::kMaxCompressionLevel)
            return report(cryo::Error::make("--compress={}: the level must be 1 to {} (0: no compression)",
                                            options_.compression_level, cryo::image::kMaxCompressionLevel),
                          "dump");
        options_.encrypt_key = std::move(*key);
        options_.sync = !no_sync_;
        options_.external_unix_peers = criu_.ext_unix_sk;
        if (!ghost_limit_.empty()) {
            auto bytes = parse_size(ghost_limit_);
            if (!bytes)
                return report(bytes.error(), "dump");
            options_.ghost_limit = *bytes;
        }
        options_.tracker_timeout = std::chrono::seconds(tracker_timeout_);
        auto server = page_server_address(page_server_, options_.directory);
        if (!server)
            return report(server.error(), "dump");
        options_.page_server = std::move(*server);
        if (auto_dedup_ && options_.page_server)
            return report(cryo::Error::make("--auto-dedup works on local checkpoints, not with --page-server"), "dump");
        auto result = cryo::dump::run_dump(options_);
        if (result && auto_dedup_)
            result = auto_dedup(options_.directory);
        return exit_status(result, "dump");
    }

private:
    cryo::dump::DumpOptions options_;
    PageServerFlags page_server_;
    bool no_sync_ { false };
    std::string ghost_limit_;
    std::string encrypt_key_;
    int64_t tracker_timeout_ { 600 };
    bool auto_dedup_ { false };
    bool shell_job_ { false };
    CriuCompatFlags criu_;
};

class PreDumpCommand final : public Command {
public:
    void add_options(CLI::App& command, CommonOptions& common) override
    {
        add_target_options(command, options_.pid, options_.directory, page_server_);
        command.add_option("--prev-images-dir", options_.prev_images_dir,
                           "The previous pre-dump, relative to the images directory");
        command.add_option("--tracker-timeout", tracker_timeout_,
                           "Seconds the write tracking is kept for the next dump (default 600)");
        command.add_flag("--no-sync", no_sync_, "Do not fsync the image files");
        command.add_flag("--display-stats", options_.display_stats, "Print the frozen time and page counts");
        command.add_flag("--auto-dedup", auto_dedup_,
                         "With --prev-images-dir: once the pre-dump is complete, punch out of the previous rounds' "
                         "page files what it does not need (as cryo dedup)");
        command.add_flag("--track-mem", track_mem_, "Accepted for criu compatibility: pre-dump always tracks");
        add_common_options(command, common);
    }

    int run() override
    {
        options_.sync = !no_sync_;
        options_.tracker_timeout = std::chrono::seconds(tracker_timeout_);
        auto server = page_server_address(page_server_, options_.directory);
        if (!server)
            return report(server.error(), "pre-dump");
        options_.page_server = std::move(*server);
        if (auto_dedup_ && options_.page_server)
            return report(cryo::Error::make("--auto-dedup works on local checkpoints, not with --page-server"),
                          "pre-dump");
        auto result = cryo::dump::run_pre_dump(options_);
        if (result && auto_dedup_)
            result = auto_dedup(options_.directory);
        return exit_status(result, "pre-dump");
    }

private:
    cryo::dump::PreDumpOptions options_;
    PageServerFlags page_server_;
    int64_t tracker_timeout_ { 600 };
    bool no_sync_ { false };
    bool auto_dedup_ { false };
    bool track_mem_ { false };
};

class RestoreCommand final : public Command {
public:
    void add_options(CLI::App& command, CommonOptions& common) override
    {
        command.add_option("-D,--images-dir", options_.directory, "Directory with the image files")->required();
        command.add_flag("-d,--restore-detached", options_.detach,
                         "Return once the tree runs instead of waiting for it");
        command.add_option("--pidfile", options_.pidfile, "Write the root PID here once it runs");
        command.add_option("--inherit-fd", options_.inherit_fds,
                           "fd[N]:ID - use cryo's fd N for the open file ID (pipe:[INODE], socket:[INODE] or a path)");
        command.add_flag("--no-file-check", no_file_check_,
                         "Restore even if a mapped or read-only open file changed since the dump");
        command.add_flag("--skip-cpu-check", skip_cpu_check_,
                         "Restore even on a CPU that lacks a feature the checkpoint's CPU had");
        command.add_flag("--skip-cgroups", options_.skip_cgroups,
                         "Leave the restored tree in cryo's cgroup instead of the cgroups it was in");
        command.add_flag("--tcp-established", options_.tcp_established,
                         "Restore the established TCP connections of the checkpoint");
        command.add_flag("--display-stats", options_.display_stats,
                         "Print the time of each phase and the page counts");
        command.add_flag("--lazy-pages", options_.lazy_pages,
                         "Start the tree before its large private memory is in place; a background server brings it "
                         "in");
        command.add_flag("-j,--shell-job", options_.shell_job,
                         "Give the restored tree cryo's terminal in place of the terminal it had");
        command.add_option("--key", key_, kKeyHelp);
        add_criu_compat_options(command, criu_, CriuSide::Restore);
        command.add_flag("--page-server", page_server_.enabled,
                         "With --lazy-pages: fetch the checkpoint from a `cryo page-server --serve` into -D, the lazy "
                         "pages on first touch (--key is then the page server's key)");
        command.add_option("--address", page_server_.address, "With --page-server: the server's address");
        command.add_option("--port", page_server_.port, "With --page-server: the server's port");
        add_common_options(command, common);
    }

    int run() override
    {
        // A `cryo lazy-pages` waiting for this directory (lazy/command.h):
        // its page-server settings are the restore's.
        std::optional<cryo::lazy::Registration> registration;
        if (options_.lazy_pages && !page_server_.enabled) {
            auto found = cryo::lazy::find_registration(options_.directory);
            if (!found)
                return report(found.error(), "restore");
            registration = std::move(*found);
        }
        if (registration) {
            options_.lazy_pages_command = registration->connection.get();
            if (registration->page_server) {
                if (!key_.empty())
                    return report(cryo::Error::make("--key: the waiting `cryo lazy-pages` names the page server's "
                                                    "key (give it --key there)"),
                                  "restore");
                page_server_.enabled = true;
                page_server_.address = registration->page_server->address;
                page_server_.port = registration->page_server->port;
                key_ = registration->page_server->key;
            }
        }
        auto key = load_key(key_);
        if (!key)
            return report(key.error(), "restore");
        std::unique_ptr<cryo::net::PageFetcher> fetcher;
        if (page_server_.enabled) {
            page_server_.key = key_;
            auto server = page_server_address(page_server_, options_.directory);
            if (!server)
                return report(server.error(), "restore");
            if (!options_.lazy_pages)
                return report(cryo::Error::make("--page-server needs --lazy-pages (restore what `cryo page-server` "
                                                "received from its directory instead)"),
                              "restore");
            auto connected = cryo::net::PageFetcher::connect(**server);
            if (!connected)
                return report(connected.error(), "restore");
            fetcher = std::move(*connected);
            options_.page_server = fetcher.get();
        } else {
            options_.key = std::move(*key);
        }
        options_.check_files = !no_file_check_;
        options_.check_cpu = !skip_cpu_check_;
        if (criu_.manage_cgroups == "ignore" || criu_.manage_cgroups == "none")
            options_.skip_cgroups = true;
        auto result = cryo::restore::run_restore(options_);
        return result ? *result : report(result.error(), "restore");
    }

private:
    cryo::restore::RestoreOptions options_;
    bool no_file_check_ { false };
    bool skip_cpu_check_ { false };
    std::string key_;
    CriuCompatFlags criu_;
    PageServerFlags page_server_;
};

class LazyPagesCommand final : public Command {
public:
    void add_options(CLI::App& command, CommonOptions& common) override
    {
        command.add_option("-D,--images-dir", options_.directory, "The directory the restore uses")->required();
        command.add_flag("--page-server", page_server_.enabled,
                         "The restore fetches the checkpoint from a `cryo page-server --serve` into -D, the lazy "
                         "pages on first touch");
        command.add_option("--address", page_server_.address, "With --page-server: the server's address");
        command.add_option("--port", page_server_.port, "With --page-server: the server's port");
        command.add_option("--key", page_server_.key, "With --page-server: KEYFILE shared with the server");
        command.add_option("--timeout", timeout_, "Seconds to wait for the restore before giving up (default 600)");
        add_common_options(command, common);
    }

    int run() override
    {
        if (auto server = page_server_address(page_server_, options_.directory); !server)
            return report(server.error(), "lazy-pages");
        if (page_server_.enabled)
            options_.page_server = cryo::lazy::PageServerRequest {
                .address = page_server_.address,
                .port = page_server_.port,
                .key = page_server_.key,
            };
        options_.timeout = std::chrono::seconds(timeout_);
        auto result = cryo::lazy::run_lazy_pages(options_);
        return exit_status(result, "lazy-pages");
    }

private:
    cryo::lazy::LazyPagesOptions options_;
    PageServerFlags page_server_;
    int64_t timeout_ { 600 };
};

class ShowCommand final : public Command {
public:
    void add_options(CLI::App& command, CommonOptions& common) override
    {
        command.add_option("-D,--images-dir,directory", options_.directory, "The checkpoint")->required();
        command.add_option("--format", options_.format,
                           "text (default) or json (one document, see proto/report.proto)");
        command.add_option("--pid", options_.pid, "Only this process");
        command.add_flag("--tree", options_.tree, "The process tree");
        command.add_flag("--files", options_.files, "Open files of each process");
        command.add_flag("--memory", options_.memory, "Memory map of each process");
        command.add_flag("--stats", options_.stats, "Statistics of the dump and of the last restore");
        command.add_flag("--env", options_.environment, "Each process's environment (at dump time)");
        command.add_option("--key", key_, kKeyHelp);
        add_common_options(command, common);
    }

    int run() override
    {
        if (auto failed = take_key(key_, options_.key, "show"))
            return *failed;
        auto result = cryo::inspect::run_show(options_);
        return exit_status(result, "show");
    }

private:
    cryo::inspect::ShowOptions options_;
    std::string key_;
};

// decode/encode/mem/diff read untrusted files; --no-verify skips the
// manifest checks for the forensics of a damaged checkpoint.
class DecodeCommand final : public Command {
public:
    void add_options(CLI::App& command, CommonOptions& common) override
    {
        command.add_option("-D,--images-dir,directory", options_.directory, "The checkpoint")->required();
        command.add_option("--image", options_.image, "Only this image (file name, e.g. core-12.img)");
        command.add_option("-o,--output", options_.output, "Write the document here (mode 0600) instead of stdout");
        command.add_flag("--no-verify", no_verify_, "Do not check the manifest's checksums (damaged checkpoints)");
        command.add_option("--key", key_, kKeyHelp);
        add_common_options(command, common, LogFileOption::LongOnly);
    }

    int run() override { return run_inspection(key_, no_verify_, options_, cryo::inspect::run_decode, "decode"); }

private:
    cryo::inspect::DecodeOptions options_;
    bool no_verify_ { false };
    std::string key_;
};

class EncodeCommand final : public Command {
public:
    void add_options(CLI::App& command, CommonOptions& common) override
    {
        command.add_option("-i,--input", options_.input, "The JSON document (default: stdin)");
        command.add_option("-D,--images-dir,directory", options_.directory,
                           "The checkpoint directory (its page files stay; the manifest is rewritten)")->required();
        command.add_flag("--no-verify", no_verify_, "Do not checksum the files encode keeps (page files)");
        command.add_option("--key", key_,
                           "KEYFILE - the key of an encrypted checkpoint: the images are sealed again with it "
                           "(required when the manifest says the checkpoint is encrypted, refused otherwise)");
        add_common_options(command, common, LogFileOption::LongOnly);
    }

    int run() override { return run_inspection(key_, no_verify_, options_, cryo::inspect::run_encode, "encode"); }

private:
    cryo::inspect::EncodeOptions options_;
    bool no_verify_ { false };
    std::string key_;
};

class MemCommand final : public Command {
public:
    void add_options(CLI::App& command, CommonOptions& common) override
    {
        command.add_option("-D,--images-dir,directory", options_.directory, "The checkpoint")->required();
        pid_option_ = command.add_option("-p,--pid", pid_, "The process (default: the only one)");
        command.add_option("--addr", options_.address, "Start address (hex)");
        command.add_option("--len", options_.length, "Bytes (default: to the end of the mapping)");
        command.add_option("--search", options_.search, "Find this string in the stored pages");
        command.add_option("--search-hex", options_.search_hex, "Find these bytes (hex: 'de ad be ef')");
        command.add_option("--extract", options_.extract, "Write the region to this file instead of printing it");
        command.add_option("--max-matches", options_.max_matches, "Stop after this many matches (default 1000)");
        command.add_flag("--no-verify", no_verify_, "Do not check the manifest's checksums (damaged checkpoints)");
        command.add_option("--key", key_, kKeyHelp);
        add_common_options(command, common);
    }

    int run() override
    {
        if (pid_option_->count() > 0)
            options_.pid = pid_;
        return run_inspection(key_, no_verify_, options_, cryo::inspect::run_mem, "mem");
    }

private:
    cryo::inspect::MemOptions options_;
    int pid_ { 0 };
    CLI::Option* pid_option_ { nullptr };
    bool no_verify_ { false };
    std::string key_;
};

class DiffCommand final : public Command {
public:
    void add_options(CLI::App& command, CommonOptions& common) override
    {
        command.add_option("before", options_.before, "The older checkpoint")->required();
        command.add_option("after", options_.after, "The newer checkpoint")->required();
        command.add_flag("--no-verify", no_verify_, "Do not check the manifests' checksums (damaged checkpoints)");
        command.add_option("--key", key_, "KEYFILE - the key of both checkpoints, when they are encrypted");
        add_common_options(command, common);
    }

    int run() override { return run_inspection(key_, no_verify_, options_, cryo::inspect::run_diff, "diff"); }

private:
    cryo::inspect::DiffOptions options_;
    bool no_verify_ { false };
    std::string key_;
};

class PageServerCommand final : public Command {
public:
    void add_options(CLI::App& command, CommonOptions& common) override
    {
        command.add_option("-D,--images-dir", options_.directory,
                           "Directory the checkpoint is written into (a complete checkpoint, restorable from here)")
            ->required();
        command.add_option("--address", options_.address, "Address to listen on (default: all)");
        command.add_option("--port", options_.port, "Port to listen on")->required();
        command.add_option("--key", key_,
                           "KEYFILE - only clients holding this key are accepted (without it: any client, trusted "
                           "networks only)");
        command.add_flag("--once", options_.once, "Exit after one checkpoint (or one failed attempt)");
        command.add_flag("--serve", options_.serve,
                         "Serve the checkpoint in DIR to `cryo restore --lazy-pages --page-server` on other hosts "
                         "(files, and pages on first touch) instead of receiving");
        command.add_flag("--no-sync", no_sync_, "Do not fsync the received files");
        command.add_flag("--restore", restore_,
                         "Receive a `cryo migrate`: each checkpoint into DIR/1, DIR/2, ... (DIR new or empty); "
                         "restore the last one (detached) when the sender asks, tell it the outcome and exit");
        add_common_options(command, common);
    }

    int run() override
    {
        if (auto failed = take_key(key_, options_.key, "page-server"))
            return *failed;
        options_.sync = !no_sync_;
        if (restore_ && options_.once)
            return report(cryo::Error::make("--restore and --once cannot go together (--restore exits after the "
                                            "restore)"),
                          "page-server");
        if (restore_) {
            options_.restore = cryo::migrate::restore_received;
            options_.restore_lazily = cryo::migrate::restore_lazily;
        }
        auto result = cryo::net::run_page_server(options_);
        return exit_status(result, "page-server");
    }

private:
    cryo::net::PageServerOptions options_;
    std::string key_;
    bool no_sync_ { false };
    bool restore_ { false };
};

class MigrateCommand final : public Command {
public:
    void add_options(CLI::App& command, CommonOptions& common) override
    {
        destination_.enabled = true;
        command.add_option("-t,--tree", options_.pid, "PID of the root of the tree")->required();
        command.add_option("--address", destination_.address, "The destination's address")->required();
        command.add_option("--port", destination_.port, "The destination's port")->required();
        command.add_option("--key", destination_.key, "KEYFILE shared with the destination (as for --page-server)");
        command.add_option("--max-rounds", options_.max_rounds,
                           "Pre-dump rounds at most before the final dump (default 5; 0: dump at once)");
        command.add_option("--dirty-threshold", options_.dirty_threshold,
                           "Dump once a pre-dump round stores fewer pages than this (default 1024)");
        command.add_flag("--lazy", options_.lazy,
                         "Post-copy: no pre-dump rounds; the destination restores at once and fetches the pages from "
                         "the frozen source, which is killed once it has them all");
        command.add_option("--work-dir", options_.work_directory,
                           "With --lazy: where the source's checkpoint (metadata only: the pages are read from the "
                           "frozen tree) is written while it is served (default /var/tmp)");
        add_common_options(command, common);
    }

    int run() override
    {
        if (options_.max_rounds < 0)
            return report(cryo::Error::make("--max-rounds {}: must be 0 or more", options_.max_rounds), "migrate");
        auto destination = page_server_address(destination_, "");
        if (!destination)
            return report(destination.error(), "migrate");
        options_.destination = std::move(**destination);
        auto result = cryo::migrate::run_migrate(options_);
        return exit_status(result, "migrate");
    }

private:
    cryo::migrate::MigrateOptions options_;
    PageServerFlags destination_;
};

class DedupCommand final : public Command {
public:
    void add_options(CLI::App& command, CommonOptions& common) override
    {
        command.add_option("-D,--images-dir,directory", directory_, "The newest checkpoint of the chain")->required();
        add_common_options(command, common);
    }

    int run() override
    {
        auto result = cryo::image::run_dedup(directory_);
        return exit_status(result, "dedup");
    }

private:
    std::string directory_;
};

class CheckCommand final : public Command {
public:
    void add_options(CLI::App& command, CommonOptions& common) override
    {
        command.add_option("-D,--images-dir", directory_,
                           "Verify this checkpoint and every ancestor of its chain instead (files, checksums, parent "
                           "links)");
        add_common_options(command, common);
    }

    int run() override
    {
        if (directory_.empty())
            return run_check();
        auto result = cryo::inspect::run_check_chain(directory_);
        return exit_status(result, "check");
    }

private:
    std::string directory_;
};

struct Subcommand {
    std::string_view name;
    const char* description;
    std::unique_ptr<Command> (*make)();
};

template <typename T>
std::unique_ptr<Command> make_command()
{
    return std::make_unique<T>();
}

constexpr Subcommand kSubcommands[] = {
    { "dump", "Checkpoint a process tree into a directory", make_command<DumpCommand> },
    { "pre-dump", "Copy a tree's memory while it runs, for a later incremental dump", make_command<PreDumpCommand> },
    { "restore", "Restore a process tree from a directory", make_command<RestoreCommand> },
    { "lazy-pages",
      "Wait for `cryo restore -D DIR --lazy-pages` (as criu lazy-pages) and follow the lazy-pages server it starts",
      make_command<LazyPagesCommand> },
    { "show", "Print what a checkpoint holds: tree, memory, files", make_command<ShowCommand> },
    { "decode", "Print a checkpoint's metadata images (manifest too) as one JSON document", make_command<DecodeCommand> },
    { "encode", "Write the images of a JSON document (from decode) into a checkpoint", make_command<EncodeCommand> },
    { "mem", "Hexdump, search or extract the stored memory of a checkpoint", make_command<MemCommand> },
    { "diff", "What changed between two checkpoints of one tree", make_command<DiffCommand> },
    { "page-server", "Receive checkpoints sent by dump/pre-dump --page-server", make_command<PageServerCommand> },
    { "migrate", "Move a running tree to a `cryo page-server --restore`", make_command<MigrateCommand> },
    { "dedup", "Free the disk the ancestors of an incremental checkpoint use for pages it does not need",
      make_command<DedupCommand> },
    { "check", "Report the kernel features cryo needs, or verify a checkpoint (-D)", make_command<CheckCommand> },
};

// The subcommand a command line names: its first argument that is not an
// option (cryo's own options, --help and --version, take no value).
std::string_view named_subcommand(const std::vector<std::string>& args)
{
    for (size_t i = 1; i < args.size(); ++i)
        if (!args[i].starts_with('-'))
            return args[i];
    return {};
}

} // namespace

int run_command(int argc, char** argv)
{
    CLI::App app { "cryo: checkpoint and restore Linux process trees", "cryo" };
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("cryo ") + CRYO_VERSION);

    // Every subcommand is listed (for --help and for CLI11's error on an
    // unknown one); only the named one gets its options.
    auto args = expand_verbosity(argc, argv);
    std::string_view named = named_subcommand(args);
    CommonOptions common;
    std::unique_ptr<Command> command;
    for (const auto& subcommand : kSubcommands) {
        auto* app_command = app.add_subcommand(std::string(subcommand.name), subcommand.description);
        if (subcommand.name == named) {
            command = subcommand.make();
            command->add_options(*app_command, common);
        }
    }
    std::vector<char*> arg_pointers;
    for (auto& arg : args)
        arg_pointers.push_back(arg.data());
    CLI11_PARSE(app, static_cast<int>(arg_pointers.size()), arg_pointers.data());

    if (auto logging = cryo::setup_logging(common.verbosity, common.log_file); !logging)
        return report(logging.error(), app.get_subcommands().front()->get_name());
    return command->run();
}

int main(int argc, char** argv)
{
    auto leak_check = cryo::cli::LeakCheck::from_environment();
    int status = run_command(argc, argv);
    if (leak_check) {
        // The log file is the one descriptor meant to live until exit.
        spdlog::shutdown();
        if (auto leaks = leak_check->leaks(); !leaks.empty()) {
            fmt::print(stderr, "cryo: error: CRYO_CHECK_LEAKS: descriptors leaked (exit status {} becomes 1):\n{}",
                       status, leaks);
            return 1;
        }
    }
    return status;
}
