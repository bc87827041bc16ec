// See migrate.h.
#include "migrate/migrate.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/scope_guard.h"
#include "dump/dump.h"
#include "dump/pre_dump.h"
#include "migrate/live_pages.h"
#include "net/page_server.h"
#include "page_server.pb.h"
#include "restore/restore.h"
#include "stats.pb.h"

namespace cryo::migrate {

namespace {

using Clock = std::chrono::steady_clock;

double milliseconds_since(Clock::time_point start)
{
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string format_report(const std::vector<image::DumpStats>& rounds, double downtime_ms, double total_ms)
{
    std::string text = fmt::format("{:<8}{:>12}{:>14}{:>14}\n", "round", "pages", "MiB", "frozen (ms)");
    for (size_t round = 0; round < rounds.size(); ++round) {
        const auto& stats = rounds[round];
        std::string name = round + 1 == rounds.size() ? "final" : std::to_string(round + 1);
        text += fmt::format("{:<8}{:>12}{:>14.1f}{:>14.1f}\n", name, stats.pages_stored(),
                            static_cast<double>(stats.page_bytes()) / (1 << 20), stats.frozen_ms());
    }
    text += fmt::format("frozen time (final dump to source killed): {:.1f} ms\n", rounds.back().frozen_ms());
    text += fmt::format("downtime (final dump to restored):         {:.1f} ms\n", downtime_ms);
    text += fmt::format("total time:                                {:.1f} ms\n", total_ms);
    return text;
}

// A new directory of its own under `parent` for the source's checkpoint.
Result<std::string> make_work_directory(const std::string& parent)
{
    std::string path = parent + "/cryo-migrate-XXXXXX";
    if (!::mkdtemp(path.data()))
        return fail_errno(fmt::format("create a work directory in {} (--work-dir)", parent));
    return path;
}

// migrate --lazy; see migrate.h.
Result<void> run_lazy_migrate(const MigrateOptions& options)
{
    auto started = Clock::now();
    std::string destination = net::endpoint(options.destination.address, options.destination.port);
    // Connected (and authenticated) while the tree still runs.
    net::Channel channel = TRY_CTX(net::connect_channel(options.destination), "migrate pid {} (the tree runs on)",
                                   options.pid);
    std::string work = TRY(make_work_directory(options.work_directory));
    ScopeGuard remove_work([&] {
        std::error_code error;
        std::filesystem::remove_all(work, error);
    });
    Clock::time_point final_started;
    double running_ms = -1;
    net::ServeStats served;
    // The dump copies no memory: the tree's pages are read from it, still
    // frozen, as the destination fetches them (live_pages.h).
    LivePages live;
    // With the checkpoint committed and the tree frozen: the destination
    // restores from it and fetches its pages until it has them all.
    auto serve = [&]() -> Result<void> {
        TRY(live.open(work));
        image::PageServerRequest request;
        request.set_restore(true);
        request.set_lazy(true);
        TRY(channel.send_text(net::FrameType::Request, request.SerializeAsString()));
        TRY(channel.send_text(net::FrameType::Ready, live.manifest()));
        served = TRY_CTX(live.serve(channel, [&] { running_ms = milliseconds_since(final_started); }),
                         "the destination could not restore lazily");
        return {};
    };
    final_started = Clock::now();
    image::DumpStats stats;
    TRY_CTX(dump::run_dump({ .pid = options.pid,
                             .directory = work,
                             .sync = false,
                             .stats_out = &stats,
                             .before_kill = serve,
                             .leave_pages_in_memory =
                                 [&](pid_t pid, pid_t proc_pid, std::vector<image::Vma>& vmas, uint64_t offset,
                                     image::PageMap& map) { return live.record(pid, proc_pid, vmas, offset, map); } }),
            "migrate pid {} to {}: final dump (the tree runs on)", options.pid, destination);
    fmt::print("cryo migrate: pid {} migrated to {} (post-copy)\n", options.pid, destination);
    fmt::print("checkpoint (final dump):                   {:.1f} KiB of metadata, {:.1f} MiB of file data\n",
               static_cast<double>(stats.metadata_bytes()) / 1024, static_cast<double>(stats.page_bytes()) / (1 << 20));
    fmt::print("memory served from the frozen tree:        {:.1f} MiB\n",
               static_cast<double>(live.listed_bytes()) / (1 << 20));
    fmt::print("time to running (final dump to restored):  {:.1f} ms\n", running_ms);
    fmt::print("pages fetched by the destination:          {:.1f} MiB in {} fetches\n",
               static_cast<double>(served.bytes) / (1 << 20), served.fetches);
    fmt::print("frozen time (final dump to last page):     {:.1f} ms\n", stats.frozen_ms());
    fmt::print("total time:                                {:.1f} ms\n", milliseconds_since(started));
    return {};
}

} // namespace

Result<void> run_migrate(const MigrateOptions& options)
{
    if (options.lazy)
        return run_lazy_migrate(options);
    auto started = Clock::now();
    std::string destination = net::endpoint(options.destination.address, options.destination.port);
    std::vector<image::DumpStats> rounds;

    // Pre-dumps while the tree runs: each round is ../N for the next.
    auto parent = [&] { return rounds.empty() ? std::string() : fmt::format("../{}", rounds.size()); };
    while (static_cast<int>(rounds.size()) < options.max_rounds) {
        image::DumpStats stats;
        TRY_CTX(dump::run_pre_dump({ .pid = options.pid,
                                     .prev_images_dir = parent(),
                                     .page_server = options.destination,
                                     .stats_out = &stats }),
                "migrate pid {} to {}: pre-dump round {} (the tree runs on)", options.pid, destination,
                rounds.size() + 1);
        rounds.push_back(stats);
        spdlog::info("migrate pid {}: round {} sent {} pages", options.pid, rounds.size(), stats.pages_stored());
        if (stats.pages_stored() < options.dirty_threshold)
            break;
    }

    // The final dump: the tree is frozen, what changed since the last
    // round is sent, and the destination restores it while the tree stays
    // frozen here. Only once it says the restored tree runs is the source
    // killed; if it fails (or cannot be reached, or times out) the dump
    // lets the source run on.
    auto final_started = Clock::now();
    image::DumpStats stats;
    std::string restored;
    double downtime_ms = 0;
    auto confirm = [&]() -> Result<void> {
        restored = TRY_CTX(net::request_restore(options.destination), "the destination could not restore round {}",
                           rounds.size() + 1);
        downtime_ms = milliseconds_since(final_started);
        return {};
    };
    TRY_CTX(dump::run_dump({ .pid = options.pid,
                             .prev_images_dir = parent(),
                             .page_server = options.destination,
                             .stats_out = &stats,
                             .before_kill = confirm }),
            "migrate pid {} to {}: final dump (the tree runs on)", options.pid, destination);
    rounds.push_back(stats);
    fmt::print("cryo migrate: pid {} migrated to {}: {}\n{}", options.pid, destination, restored,
               format_report(rounds, downtime_ms, milliseconds_since(started)));
    return {};
}

Result<std::string> restore_received(const std::string& checkpoint)
{
    TRY_CTX(restore::run_restore({ .directory = checkpoint, .detach = true }), "restore {}", checkpoint);
    return fmt::format("restored the tree from {}", checkpoint);
}

Result<std::string> restore_lazily(const std::string& checkpoint, net::PageFetcher& fetcher)
{
    TRY_CTX(restore::run_restore({ .directory = checkpoint, .detach = true, .lazy_pages = true, .page_server = &fetcher }),
            "restore {} lazily", checkpoint);
    return fmt::format("restored the tree lazily into {}", checkpoint);
}

} // namespace cryo::migrate
