// `cryo pre-dump` as a list of passes; see pre_dump.h.
#include "dump/pre_dump.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <optional>

#include "dump/dump.h"
#include "dump/incremental.h"
#include "dump/ownership.h"
#include "dump/manifest.h"
#include "dump/tree.h"
#include "image/writer.h"
#include "mem/vmas.h"
#include "mm.pb.h"
#include "stats.pb.h"

namespace cryo::dump {

namespace {

using Clock = std::chrono::steady_clock;

double milliseconds_since(Clock::time_point start)
{
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct ProcessMemory {
    pid_t pid { 0 };
    image::MemoryImage memory;
    image::PageMap page_map;
    mem::PagePlan plan;
    std::optional<image::OutputFile> pages;
};

struct PreDumpContext {
    const PreDumpOptions& options;
    std::optional<IncrementalDump> incremental;
    std::optional<FrozenTree> tree;
    image::ProcessTree tree_image;   // kept when the tree runs again
    std::optional<image::ImageWriter> writer;
    std::vector<ProcessMemory> processes;
    image::DumpStats stats;
};

// While frozen: every mapping, and where each page goes.
Result<void> plan_memory(PreDumpContext& context)
{
    for (auto& frozen : context.tree->processes()) {
        pid_t pid = frozen.pid();
        auto& process = context.processes.emplace_back();
        process.pid = pid;
        auto vmas = TRY_CTX(mem::collect_vmas(pid), "pid {}", pid);
        process.page_map.set_pid(pid);
        process.page_map.set_page_file(image::pages_name(pid));
        process.plan = TRY(context.incremental->plan(pid, vmas, 0, process.page_map));
        process.memory.set_pid(pid);
        for (auto& vma : vmas)
            *process.memory.add_vmas() = std::move(vma);
        context.stats.set_vmas(context.stats.vmas() + static_cast<uint32_t>(vmas.size()));
    }
    return {};
}

Result<void> write_metadata(PreDumpContext& context)
{
    auto& writer = *context.writer;
    TRY(writer.write_message(std::string(image::kTreeName), image::ImageKind::Tree, context.tree_image));
    for (const auto& process : context.processes) {
        TRY(writer.write_message(image::memory_name(process.pid), image::ImageKind::Memory, process.memory));
        TRY(writer.write_message(image::pagemap_name(process.pid), image::ImageKind::PageMap, process.page_map));
    }
    return {};
}

// While the tree runs again.
Result<void> copy_memory(PreDumpContext& context)
{
    for (auto& process : context.processes) {
        process.pages.emplace(TRY(context.writer->create_file(image::pages_name(process.pid))));
        TRY(mem::copy_planned_pages(process.pid, process.plan, *process.pages, mem::Target::Running));
        context.stats.set_page_bytes(context.stats.page_bytes() + process.pages->size());
        TRY(context.writer->finish_file(std::move(*process.pages)));
    }
    return {};
}

} // namespace

Result<void> run_pre_dump(const PreDumpOptions& options)
{
    auto started = Clock::now();
    if (options.pid <= 1 || options.pid == ::getpid())
        return fail("refusing to pre-dump pid {}: not a process cryo can checkpoint", options.pid);
    // Without root, only the caller's own processes (dump/ownership.h).
    auto caller = TRY(proc::current_caller());
    TRY(check_owned_by_caller(caller, options.pid));
    PreDumpContext context { .options = options };
    // The page server, the parent and its tracker first: nothing is frozen yet.
    std::unique_ptr<net::PageClient> page_server;
    if (options.page_server)
        page_server = TRY(net::PageClient::connect(*options.page_server, options.prev_images_dir));
    context.incremental.emplace(TRY(IncrementalDump::prepare({ .directory = options.directory,
                                                               .parent = options.prev_images_dir,
                                                               .track = true,
                                                               .pre_dump = true,
                                                               .remote_parent = page_server ? page_server->parent() : nullptr })));

    context.writer.emplace(TRY(net::open_image_writer(
        page_server, options.directory, options.sync ? image::SyncMode::Fsync : image::SyncMode::NoSync)));

    // Frozen only for what needs the tree to stand still.
    auto frozen = Clock::now();
    context.tree.emplace(TRY(FrozenTree::freeze(options.pid)));
    for (auto& process : context.tree->processes())
        TRY(check_owned_by_caller(caller, process.pid()));
    // Arm the tracking before the pages are chosen: every write from now
    // on is seen by the next round.
    TRY(context.incremental->arm(*context.tree));
    TRY(plan_memory(context));
    context.tree_image = context.tree->tree();
    context.tree.reset();
    context.stats.set_frozen_ms(milliseconds_since(frozen));

    // The tree runs again. The tracker takes the userfaultfds for the next
    // round (cryo held them meanwhile: nothing was lost).
    auto manifest = describe_checkpoint(options.pid);
    TRY(context.incremental->finish(manifest, options.tracker_timeout));
    context.stats.set_processes(static_cast<uint32_t>(context.tree_image.processes_size()));
    TRY(write_metadata(context));

    TRY(copy_memory(context));
    context.stats.set_pages_stored(context.stats.page_bytes() / 4096);
    context.stats.set_pages_in_parent(context.incremental->parent_bytes() / 4096);
    context.stats.set_total_ms(milliseconds_since(started));
    TRY(context.writer->write_message(std::string(image::kDumpStatsName), image::ImageKind::Stats, context.stats));
    TRY(context.writer->commit(std::move(manifest)));
    context.incremental->committed();
    spdlog::info("pre-dumped the tree of pid {} into {}: {} MiB stored, {} MiB in the parent chain, frozen {:.1f} ms",
                 options.pid, context.writer->directory(), context.stats.page_bytes() >> 20,
                 context.incremental->parent_bytes() >> 20, context.stats.frozen_ms());
    if (options.display_stats)
        fmt::print("{}", format_dump_stats(context.stats));
    if (options.stats_out)
        *options.stats_out = context.stats;
    return {};
}

} // namespace cryo::dump
