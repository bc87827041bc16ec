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

void add_common_options(CLI::App& command, CommonOptions& common)
{
    command.add_flag("-v,--verbose", common.verbosity, "More output (repeat for more)");
    command.add_option("-o,--log-file", common.log_file, "Write the log to this file");
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

} // namespace

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

int run_command(int argc, char** argv)
{
    CLI::App app { "cryo: checkpoint and restore Linux process trees", "cryo" };
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("cryo ") + CRYO_VERSION);

    CommonOptions common;

    cryo::dump::DumpOptions dump_options;
    auto* dump = app.add_subcommand("dump", "Checkpoint a process tree into a directory");
    dump->add_option("-t,--tree", dump_options.pid, "PID of the root of the tree")->required();
    dump->add_option("-D,--images-dir", dump_options.directory, "Directory for the image files");
    PageServerFlags dump_page_server;
    add_page_server_options(*dump, dump_page_server);
    dump->add_flag("-R,--leave-running", dump_options.leave_running,
                   "Let the tree run on after the dump instead of killing it");
    bool no_sync = false;
    dump->add_flag("--no-sync", no_sync, "Do not fsync the image files (faster, less safe)");
    std::string ghost_limit;
    dump->add_option("--ghost-limit", ghost_limit,
                     "Most data kept in the image for a file deleted while open (bytes, or with K/M/G; default 64M)");
    dump->add_option("--external", dump_options.externals,
                     "ID - an open file that is outside the tree on purpose, as /proc/PID/fd shows it: socket:[INODE] "
                     "(a unix socket whose peer is outside: restore connects to the peer's name again), pipe:[INODE] "
                     "or a path (not saved: restore needs --inherit-fd fd[N]:ID)");
    dump->add_flag("--tcp-established", dump_options.tcp_established,
                   "Checkpoint established TCP connections (TCP_REPAIR; the peer does not see the connection close)");
    dump->add_flag("--display-stats", dump_options.display_stats, "Print the time of each phase and the page counts");
    dump->add_flag(fmt::format("--compress{{{}}}", cryo::image::kDefaultCompressionLevel), dump_options.compression_level,
                   fmt::format("Compress the page data with zstd (multi-threaded); --compress=LEVEL chooses the level "
                               "(1-{}, default {})",
                               cryo::image::kMaxCompressionLevel, cryo::image::kDefaultCompressionLevel));
    std::string encrypt_key;
    dump->add_option("--encrypt", encrypt_key,
                     "KEYFILE - encrypt and authenticate every file of the checkpoint (AES-256-GCM) with this key: "
                     "32 raw bytes or 64 hex digits (make one with: head -c 32 /dev/urandom > KEYFILE)");
    dump->add_option("--prev-images-dir", dump_options.prev_images_dir,
                     "The previous checkpoint (a pre-dump), relative to the images directory: pages not written "
                     "since are left there instead of being stored again");
    dump->add_flag("--track-mem", dump_options.track_mem,
                   "With --leave-running: keep tracking written pages for a later dump with --prev-images-dir");
    int64_t dump_tracker_timeout = 600;
    dump->add_option("--tracker-timeout", dump_tracker_timeout,
                     "With --track-mem: seconds the tracking is kept for the next dump (default 600)");
    bool dump_auto_dedup = false;
    dump->add_flag("--auto-dedup", dump_auto_dedup,
                   "With --prev-images-dir: once the dump is complete, punch out of the ancestors' page files what it "
                   "does not need (as cryo dedup; they can no longer be restored themselves)");
    bool shell_job = false;
    dump->add_flag("-j,--shell-job", shell_job,
                   "Accepted for criu compatibility: terminals are always dumped by path");
    CriuCompatFlags dump_criu;
    add_criu_compat_options(*dump, dump_criu, CriuSide::Dump);
    add_common_options(*dump, common);

    cryo::dump::PreDumpOptions pre_dump_options;
    auto* pre_dump = app.add_subcommand("pre-dump", "Copy a tree's memory while it runs, for a later incremental dump");
    pre_dump->add_option("-t,--tree", pre_dump_options.pid, "PID of the root of the tree")->required();
    pre_dump->add_option("-D,--images-dir", pre_dump_options.directory, "Directory for the image files");
    PageServerFlags pre_dump_page_server;
    add_page_server_options(*pre_dump, pre_dump_page_server);
    pre_dump->add_option("--prev-images-dir", pre_dump_options.prev_images_dir,
                         "The previous pre-dump, relative to the images directory");
    int64_t pre_dump_tracker_timeout = 600;
    pre_dump->add_option("--tracker-timeout", pre_dump_tracker_timeout,
                         "Seconds the write tracking is kept for the next dump (default 600)");
    bool pre_dump_no_sync = false;
    pre_dump->add_flag("--no-sync", pre_dump_no_sync, "Do not fsync the image files");
    pre_dump->add_flag("--display-stats", pre_dump_options.display_stats, "Print the frozen time and page counts");
    bool pre_dump_auto_dedup = false;
    pre_dump->add_flag("--auto-dedup", pre_dump_auto_dedup,
                       "With --prev-images-dir: once the pre-dump is complete, punch out of the previous rounds' page "
                       "files what it does not need (as cryo dedup)");
    bool pre_dump_track_mem = false;
    pre_dump->add_flag("--track-mem", pre_dump_track_mem, "Accepted for criu compatibility: pre-dump always tracks");
    add_common_options(*pre_dump, common);

    cryo::restore::RestoreOptions restore_options;
    auto* restore = app.add_subcommand("restore", "Restore a process tree from a directory");
    restore->add_option("-D,--images-dir", restore_options.directory, "Directory with the image files")->required();
    restore->add_flag("-d,--restore-detached", restore_options.detach,
                      "Return once the tree runs instead of waiting for it");
    restore->add_option("--pidfile", restore_options.pidfile, "Write the root PID here once it runs");
    restore->add_option("--inherit-fd", restore_options.inherit_fds,
                        "fd[N]:ID - use cryo's fd N for the open file ID (pipe:[INODE], socket:[INODE] or a path)");
    bool no_file_check = false;
    restore->add_flag("--no-file-check", no_file_check,
                      "Restore even if a mapped or read-only open file changed since the dump");
    bool skip_cpu_check = false;
    restore->add_flag("--skip-cpu-check", skip_cpu_check,
                      "Restore even on a CPU that lacks a feature the checkpoint's CPU had");
    restore->add_flag("--skip-cgroups", restore_options.skip_cgroups,
                      "Leave the restored tree in cryo's cgroup instead of the cgroups it was in");
    restore->add_flag("--tcp-established", restore_options.tcp_established,
                      "Restore the established TCP connections of the checkpoint");
    restore->add_flag("--display-stats", restore_options.display_stats, "Print the time of each phase and the page counts");
    restore->add_flag("--lazy-pages", restore_options.lazy_pages,
                      "Start the tree before its large private memory is in place; a background server brings it in");
    restore->add_flag("-j,--shell-job", restore_options.shell_job,
                      "Give the restored tree cryo's terminal in place of the terminal it had");
    std::string restore_key;
    restore->add_option("--key", restore_key, kKeyHelp);
    CriuCompatFlags restore_criu;
    add_criu_compat_options(*restore, restore_criu, CriuSide::Restore);
    PageServerFlags restore_page_server;
    restore->add_flag("--page-server", restore_page_server.enabled,
                      "With --lazy-pages: fetch the checkpoint from a `cryo page-server --serve` into -D, the lazy "
                      "pages on first touch (--key is then the page server's key)");
    restore->add_option("--address", restore_page_server.address, "With --page-server: the server's address");
    restore->add_option("--port", restore_page_server.port, "With --page-server: the server's port");
    add_common_options(*restore, common);

    cryo::lazy::LazyPagesOptions lazy_pages_options;
    PageServerFlags lazy_pages_page_server;
    int64_t lazy_pages_timeout = 600;
    auto* lazy_pages = app.add_subcommand("lazy-pages", "Wait for `cryo restore -D DIR --lazy-pages` (as criu "
                                                        "lazy-pages) and follow the lazy-pages server it starts");
    lazy_pages->add_option("-D,--images-dir", lazy_pages_options.directory, "The directory the restore uses")->required();
    lazy_pages->add_flag("--page-server", lazy_pages_page_server.enabled,
                         "The restore fetches the checkpoint from a `cryo page-server --serve` into -D, the lazy "
                         "pages on first touch");
    lazy_pages->add_option("--address", lazy_pages_page_server.address, "With --page-server: the server's address");
    lazy_pages->add_option("--port", lazy_pages_page_server.port, "With --page-server: the server's port");
    lazy_pages->add_option("--key", lazy_pages_page_server.key, "With --page-server: KEYFILE shared with the server");
    lazy_pages->add_option("--timeout", lazy_pages_timeout,
                           "Seconds to wait for the restore before giving up (default 600)");
    add_common_options(*lazy_pages, common);

    cryo::inspect::ShowOptions show_options;
    auto* show = app.add_subcommand("show", "Print what a checkpoint holds: tree, memory, files");
    show->add_option("-D,--images-dir,directory", show_options.directory, "The checkpoint")->required();
    show->add_option("--format", show_options.format, "text (default) or json (one document, see proto/report.proto)");
    show->add_option("--pid", show_options.pid, "Only this process");
    show->add_flag("--tree", show_options.tree, "The process tree");
    show->add_flag("--files", show_options.files, "Open files of each process");
    show->add_flag("--memory", show_options.memory, "Memory map of each process");
    show->add_flag("--stats", show_options.stats, "Statistics of the dump and of the last restore");
    show->add_flag("--env", show_options.environment, "Each process's environment (at dump time)");
    std::string show_key;
    show->add_option("--key", show_key, kKeyHelp);
    add_common_options(*show, common);

    // decode/encode/mem/diff read untrusted files; --no-verify skips the
    // manifest checks for the forensics of a damaged checkpoint. decode and
    // encode use -o for their output, so their log file is --log-file only.
    cryo::inspect::DecodeOptions decode_options;
    bool decode_no_verify = false;
    auto* decode = app.add_subcommand("decode", "Print a checkpoint's metadata images (manifest too) as one JSON document");
    decode->add_option("-D,--images-dir,directory", decode_options.directory, "The checkpoint")->required();
    decode->add_option("--image", decode_options.image, "Only this image (file name, e.g. core-12.img)");
    decode->add_option("-o,--output", decode_options.output, "Write the document here (mode 0600) instead of stdout");
    decode->add_flag("--no-verify", decode_no_verify, "Do not check the manifest's checksums (damaged checkpoints)");
    std::string decode_key;
    decode->add_option("--key", decode_key, kKeyHelp);
    decode->add_flag("-v,--verbose", common.verbosity, "More output (repeat for more)");
    decode->add_option("--log-file", common.log_file, "Write the log to this file");

    cryo::inspect::EncodeOptions encode_options;
    bool encode_no_verify = false;
    auto* encode = app.add_subcommand("encode", "Write the images of a JSON document (from decode) into a checkpoint");
    encode->add_option("-i,--input", encode_options.input, "The JSON document (default: stdin)");
    encode->add_option("-D,--images-dir,directory", encode_options.directory,
                       "The checkpoint directory (its page files stay; the manifest is rewritten)")->required();
    encode->add_flag("--no-verify", encode_no_verify, "Do not checksum the files encode keeps (page files)");
    std::string encode_key;
    encode->add_option("--key", encode_key,
                       "KEYFILE - the key of an encrypted checkpoint: the images are sealed again with it (required "
                       "when the manifest says the checkpoint is encrypted, refused otherwise)");
    encode->add_flag("-v,--verbose", common.verbosity, "More output (repeat for more)");
    encode->add_option("--log-file", common.log_file, "Write the log to this file");

    cryo::inspect::MemOptions mem_options;
    bool mem_no_verify = false;
    int mem_pid = 0;
    auto* mem = app.add_subcommand("mem", "Hexdump, search or extract the stored memory of a checkpoint");
    mem->add_option("-D,--images-dir,directory", mem_options.directory, "The checkpoint")->required();
    auto* mem_pid_option = mem->add_option("-p,--pid", mem_pid, "The process (default: the only one)");
    mem->add_option("--addr", mem_options.address, "Start address (hex)");
    mem->add_option("--len", mem_options.length, "Bytes (default: to the end of the mapping)");
    mem->add_option("--search", mem_options.search, "Find this string in the stored pages");
    mem->add_option("--search-hex", mem_options.search_hex, "Find these bytes (hex: 'de ad be ef')");
    mem->add_option("--extract", mem_options.extract, "Write the region to this file instead of printing it");
    mem->add_option("--max-matches", mem_options.max_matches, "Stop after this many matches (default 1000)");
    mem->add_flag("--no-verify", mem_no_verify, "Do not check the manifest's checksums (damaged checkpoints)");
    std::string mem_key;
    mem->add_option("--key", mem_key, kKeyHelp);
    add_common_options(*mem, common);

    cryo::inspect::DiffOptions diff_options;
    bool diff_no_verify = false;
    auto* diff = app.add_subcommand("diff", "What changed between two checkpoints of one tree");
    diff->add_option("before", diff_options.before, "The older checkpoint")->required();
    diff->add_option("after", diff_options.after, "The newer checkpoint")->required();
    diff->add_flag("--no-verify", diff_no_verify, "Do not check the manifests' checksums (damaged checkpoints)");
    std::string diff_key;
    diff->add_option("--key", diff_key, "KEYFILE - the key of both checkpoints, when they are encrypted");
    add_common_options(*diff, common);

    cryo::net::PageServerOptions page_server_options;
    auto* page_server = app.add_subcommand("page-server", "Receive checkpoints sent by dump/pre-dump --page-server");
    page_server->add_option("-D,--images-dir", page_server_options.directory,
                            "Directory the checkpoint is written into (a complete checkpoint, restorable from here)")
        ->required();
    page_server->add_option("--address", page_server_options.address, "Address to listen on (default: all)");
    page_server->add_option("--port", page_server_options.port, "Port to listen on")->required();
    std::string page_server_key;
    page_server->add_option("--key", page_server_key,
                            "KEYFILE - only clients holding this key are accepted (without it: any client, trusted "
                            "networks only)");
    page_server->add_flag("--once", page_server_options.once, "Exit after one checkpoint (or one failed attempt)");
    page_server->add_flag("--serve", page_server_options.serve,
                          "Serve the checkpoint in DIR to `cryo restore --lazy-pages --page-server` on other hosts "
                          "(files, and pages on first touch) instead of receiving");
    bool page_server_no_sync = false;
    page_server->add_flag("--no-sync", page_server_no_sync, "Do not fsync the received files");
    bool page_server_restore = false;
    page_server->add_flag("--restore", page_server_restore,
                          "Receive a `cryo migrate`: each checkpoint into DIR/1, DIR/2, ... (DIR new or empty); restore "
                          "the last one (detached) when the sender asks, tell it the outcome and exit");
    add_common_options(*page_server, common);

    cryo::migrate::MigrateOptions migrate_options;
    PageServerFlags migrate_destination;
    migrate_destination.enabled = true;
    auto* migrate = app.add_subcommand("migrate", "Move a running tree to a `cryo page-server --restore`");
    migrate->add_option("-t,--tree", migrate_options.pid, "PID of the root of the tree")->required();
    migrate->add_option("--address", migrate_destination.address, "The destination's address")->required();
    migrate->add_option("--port", migrate_destination.port, "The destination's port")->required();
    migrate->add_option("--key", migrate_destination.key, "KEYFILE shared with the destination (as for --page-server)");
    migrate->add_option("--max-rounds", migrate_options.max_rounds,
                        "Pre-dump rounds at most before the final dump (default 5; 0: dump at once)");
    migrate->add_option("--dirty-threshold", migrate_options.dirty_threshold,
                        "Dump once a pre-dump round stores fewer pages than this (default 1024)");
    migrate->add_flag("--lazy", migrate_options.lazy,
                      "Post-copy: no pre-dump rounds; the destination restores at once and fetches the pages from the "
                      "frozen source, which is killed once it has them all");
    migrate->add_option("--work-dir", migrate_options.work_directory,
                        "With --lazy: where the source's checkpoint (metadata only: the pages are read from the frozen "
                        "tree) is written while it is served (default /var/tmp)");
    add_common_options(*migrate, common);

    std::string dedup_directory;
    auto* dedup = app.add_subcommand("dedup", "Free the disk the ancestors of an incremental checkpoint use for pages it "
                                              "does not need");
    dedup->add_option("-D,--images-dir,directory", dedup_directory, "The newest checkpoint of the chain")->required();
    add_common_options(*dedup, common);

    std::string check_directory;
    auto* check = app.add_subcommand("check", "Report the kernel features cryo needs, or verify a checkpoint (-D)");
    check->add_option("-D,--images-dir", check_directory,
                      "Verify this checkpoint and every ancestor of its chain instead (files, checksums, parent links)");
    add_common_options(*check, common);

    auto args = expand_verbosity(argc, argv);
    std::vector<char*> arg_pointers;
    for (auto& arg : args)
        arg_pointers.push_back(arg.data());
    CLI11_PARSE(app, static_cast<int>(arg_pointers.size()), arg_pointers.data());

    if (auto logging = cryo::setup_logging(common.verbosity, common.log_file); !logging)
        return report(logging.error(), app.get_subcommands().front()->get_name());

    if (dump->parsed()) {
        auto key = load_key(encrypt_key);
        if (!key)
            return report(key.error(), "dump");
        if (dump_options.compression_level < 0 || dump_options.compression_level > cryo::image::kMaxCompressionLevel)
            return report(cryo::Error::make("--compress={}: the level must be 1 to {} (0: no compression)", dump_options.compression_level,
                                            cryo::image::kMaxCompressionLevel),
                          "dump");
        dump_options.encrypt_key = std::move(*key);
        dump_options.sync = !no_sync;
        dump_options.external_unix_peers = dump_criu.ext_unix_sk;
        if (!ghost_limit.empty()) {
            auto bytes = parse_size(ghost_limit);
            if (!bytes)
                return report(bytes.error(), "dump");
            dump_options.ghost_limit = *bytes;
        }
        dump_options.tracker_timeout = std::chrono::seconds(dump_tracker_timeout);
        auto server = page_server_address(dump_page_server, dump_options.directory);
        if (!server)
            return report(server.error(), "dump");
        dump_options.page_server = std::move(*server);
        if (dump_auto_dedup && dump_options.page_server)
            return report(cryo::Error::make("--auto-dedup works on local checkpoints, not with --page-server"), "dump");
        auto result = cryo::dump::run_dump(dump_options);
        if (result && dump_auto_dedup)
            result = auto_dedup(dump_options.directory);
        return result ? 0 : report(result.error(), "dump");
    }
    if (pre_dump->parsed()) {
        pre_dump_options.sync = !pre_dump_no_sync;
        pre_dump_options.tracker_timeout = std::chrono::seconds(pre_dump_tracker_timeout);
        auto server = page_server_address(pre_dump_page_server, pre_dump_options.directory);
        if (!server)
            return report(server.error(), "pre-dump");
        pre_dump_options.page_server = std::move(*server);
        if (pre_dump_auto_dedup && pre_dump_options.page_server)
            return report(cryo::Error::make("--auto-dedup works on local checkpoints, not with --page-server"), "pre-dump");
        auto result = cryo::dump::run_pre_dump(pre_dump_options);
        if (result && pre_dump_auto_dedup)
            result = auto_dedup(pre_dump_options.directory);
        return result ? 0 : report(result.error(), "pre-dump");
    }
    if (page_server->parsed()) {
        auto key = load_key(page_server_key);
        if (!key)
            return report(key.error(), "page-server");
        page_server_options.key = std::move(*key);
        page_server_options.sync = !page_server_no_sync;
        if (page_server_restore && page_server_options.once)
            return report(cryo::Error::make("--restore and --once cannot go together (--restore exits after the restore)"),
                          "page-server");
        if (page_server_restore) {
            page_server_options.restore = cryo::migrate::restore_received;
            page_server_options.restore_lazily = cryo::migrate::restore_lazily;
        }
        auto result = cryo::net::run_page_server(page_server_options);
        return result ? 0 : report(result.error(), "page-server");
    }
    if (migrate->parsed()) {
        if (migrate_options.max_rounds < 0)
            return report(cryo::Error::make("--max-rounds {}: must be 0 or more", migrate_options.max_rounds), "migrate");
        auto destination = page_server_address(migrate_destination, "");
        if (!destination)
            return report(destination.error(), "migrate");
        migrate_options.destination = std::move(**destination);
        auto result = cryo::migrate::run_migrate(migrate_options);
        return result ? 0 : report(result.error(), "migrate");
    }
    if (lazy_pages->parsed()) {
        if (auto server = page_server_address(lazy_pages_page_server, lazy_pages_options.directory); !server)
            return report(server.error(), "lazy-pages");
        if (lazy_pages_page_server.enabled)
            lazy_pages_options.page_server = cryo::lazy::PageServerRequest {
                .address = lazy_pages_page_server.address,
                .port = lazy_pages_page_server.port,
                .key = lazy_pages_page_server.key,
            };
        lazy_pages_options.timeout = std::chrono::seconds(lazy_pages_timeout);
        auto result = cryo::lazy::run_lazy_pages(lazy_pages_options);
        return result ? 0 : report(result.error(), "lazy-pages");
    }
    if (restore->parsed()) {
        // A `cryo lazy-pages` waiting for this directory (lazy/command.h):
        // its page-server settings are the restore's.
        std::optional<cryo::lazy::Registration> registration;
        if (restore_options.lazy_pages && !restore_page_server.enabled) {
            auto found = cryo::lazy::find_registration(restore_options.directory);
            if (!found)
                return report(found.error(), "restore");
            registration = std::move(*found);
        }
        if (registration) {
            restore_options.lazy_pages_command = registration->connection.get();
            if (registration->page_server) {
                if (!restore_key.empty())
                    return report(cryo::Error::make("--key: the waiting `cryo lazy-pages` names the page server's "
                                                    "key (give it --key there)"),
                                  "restore");
                restore_page_server.enabled = true;
                restore_page_server.address = registration->page_server->address;
                restore_page_server.port = registration->page_server->port;
                restore_key = registration->page_server->key;
            }
        }
        auto key = load_key(restore_key);
        if (!key)
            return report(key.error(), "restore");
        std::unique_ptr<cryo::net::PageFetcher> fetcher;
        if (restore_page_server.enabled) {
            restore_page_server.key = restore_key;
            auto server = page_server_address(restore_page_server, restore_options.directory);
            if (!server)
                return report(server.error(), "restore");
            if (!restore_options.lazy_pages)
                return report(cryo::Error::make("--page-server needs --lazy-pages (restore what `cryo page-server` "
                                                "received from its directory instead)"),
                              "restore");
            auto connected = cryo::net::PageFetcher::connect(**server);
            if (!connected)
                return report(connected.error(), "restore");
            fetcher = std::move(*connected);
            restore_options.page_server = fetcher.get();
        } else {
            restore_options.key = std::move(*key);
        }
        restore_options.check_files = !no_file_check;
        restore_options.check_cpu = !skip_cpu_check;
        if (restore_criu.manage_cgroups == "ignore" || restore_criu.manage_cgroups == "none")
            restore_options.skip_cgroups = true;
        auto result = cryo::restore::run_restore(restore_options);
        return result ? *result : report(result.error(), "restore");
    }
    if (show->parsed()) {
        auto key = load_key(show_key);
        if (!key)
            return report(key.error(), "show");
        show_options.key = std::move(*key);
        auto result = cryo::inspect::run_show(show_options);
        return result ? 0 : report(result.error(), "show");
    }
    auto verify = [](bool skip) { return skip ? cryo::inspect::Verify::Skip : cryo::inspect::Verify::Checksums; };
    if (decode->parsed()) {
        auto key = load_key(decode_key);
        if (!key)
            return report(key.error(), "decode");
        decode_options.key = std::move(*key);
        decode_options.verify = verify(decode_no_verify);
        auto result = cryo::inspect::run_decode(decode_options);
        return result ? 0 : report(result.error(), "decode");
    }
    if (encode->parsed()) {
        auto key = load_key(encode_key);
        if (!key)
            return report(key.error(), "encode");
        encode_options.key = std::move(*key);
        encode_options.verify = verify(encode_no_verify);
        auto result = cryo::inspect::run_encode(encode_options);
        return result ? 0 : report(result.error(), "encode");
    }
    if (mem->parsed()) {
        auto key = load_key(mem_key);
        if (!key)
            return report(key.error(), "mem");
        mem_options.key = std::move(*key);
        mem_options.verify = verify(mem_no_verify);
        if (mem_pid_option->count() > 0)
            mem_options.pid = mem_pid;
        auto result = cryo::inspect::run_mem(mem_options);
        return result ? 0 : report(result.error(), "mem");
    }
    if (diff->parsed()) {
        auto key = load_key(diff_key);
        if (!key)
            return report(key.error(), "diff");
        diff_options.key = std::move(*key);
        diff_options.verify = verify(diff_no_verify);
        auto result = cryo::inspect::run_diff(diff_options);
        return result ? 0 : report(result.error(), "diff");
    }
    if (dedup->parsed()) {
        auto result = cryo::image::run_dedup(dedup_directory);
        return result ? 0 : report(result.error(), "dedup");
    }
    if (!check_directory.empty()) {
        auto result = cryo::inspect::run_check_chain(check_directory);
        return result ? 0 : report(result.error(), "check");
    }
    return run_check();
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
