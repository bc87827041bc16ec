// `cryo dump`, as a list of passes over a DumpContext.
//
// The order matters: the process is frozen first so nothing changes under
// us; descriptors are checked early because an unsupported one is the most
// common reason to refuse; injected calls run before memory is scanned
// because they briefly map a scratch page; images are committed (manifest
// last) before the process is killed, so a crash at any point leaves either
// the running process or a complete checkpoint, never neither.
#include "dump/dump.h"

#include <time.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <optional>
#include <set>

#include "base/fault.h"
#include "core.pb.h"
#include "dump/collect_core.h"
#include "dump/namespaces.h"
#include "dump/ownership.h"
#include "dump/freeze.h"
#include "dump/incremental.h"
#include "dump/manifest.h"
#include "dump/tree.h"
#include "fds.pb.h"
#include "fds/fd_table.h"
#include "fds/file_kind.h"
#include "image/writer.h"
#include "net/page_client.h"
#include "mem/cow.h"
#include "mem/dump_pages.h"
#include "mem/unlinked_files.h"
#include "mem/vmas.h"
#include "mm.pb.h"
#include "ns/ipc.h"
#include "ns/loginuid.h"
#include "ns/namespaces.h"
#include "restore/sessions.h"
#include "stats.pb.h"
#include "tree.pb.h"

namespace cryo::dump {

namespace {

// What is collected for one live process of the tree.
struct ProcessImages {
    image::ProcessCore core;
    image::MemoryImage memory;
    image::PageMap page_map;
    image::FdTable fd_table;
};

struct DumpContext {
    const DumpOptions& options;
    std::optional<FrozenTree> tree;
    std::vector<ProcessImages> processes;   // in the order of tree->processes()
    fds::FileRegistry files;
    std::optional<IncrementalDump> incremental;   // --prev-images-dir / --track-mem
    std::optional<image::ImageWriter> writer;
    uint64_t page_bytes { 0 };
    size_t vma_count { 0 };
    image::DumpStats stats;
};

using Clock = std::chrono::steady_clock;

double milliseconds_since(Clock::time_point start)
{
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Runs one pass and records how long it took under `name`.
template <typename Pass>
Result<void> timed(DumpContext& context, const char* name, Pass&& pass)
{
    TRY(fault::step([&] { return fmt::format("phase {}", name); }));
    auto start = Clock::now();
    auto result = pass();
    auto* phase = context.stats.add_phases();
    phase->set_name(name);
    phase->set_ms(milliseconds_since(start));
    return result;
}

Result<void> check_target(DumpContext& context)
{
    pid_t pid = context.options.pid;
    if (pid <= 1)
        return fail("refusing to dump pid {}: not a process cryo can checkpoint", pid);
    if (pid == ::getpid())
        return fail("refusing to dump pid {}: that is cryo itself", pid);
    return {};
}

Result<void> collect_files(DumpContext& context)
{
    auto& processes = context.tree->processes();
    std::set<pid_t> sharing;
    for (const auto& entry : context.tree->tree().processes())
        if (entry.shares_fd_table_with_parent())
            sharing.insert(entry.pid());
    for (size_t i = 0; i < processes.size(); ++i) {
        pid_t pid = processes[i].pid();
        // Its table is its parent's, dumped with the parent.
        if (sharing.contains(pid)) {
            context.processes[i].fd_table.set_pid(pid);
            continue;
        }
        TRY_CTX(context.files.dump_process(pid, processes[i].proc_pid(), processes[i].pidfd(),
                                           context.processes[i].fd_table),
                "pid {}", pid);
    }
    TRY(context.files.check_externals_used());
    // Only now is every open file known: which unix socket peers, deleted
    // files watched by inotify and pidfd targets are in the tree.
    std::vector<const image::FdTable*> tables;
    for (const auto& images : context.processes)
        tables.push_back(&images.fd_table);
    TRY(fds::check_unix_socket_peers(context.files.files(), tables));
    TRY(fds::check_deleted_watches(context.files.files(), tables));
    return fds::check_pidfd_targets(context.files.files(), tables, context.tree->tree());
}

Result<void> collect_cores(DumpContext& context)
{
    auto& processes = context.tree->processes();
    for (size_t i = 0; i < processes.size(); ++i)
        TRY(collect_core(processes[i], context.processes[i].core, *context.processes[i].memory.mutable_fields()));
    return {};
}

Result<void> check_sessions_restorable(const DumpContext& context)
{
    std::set<pid_t> subreapers;
    for (const auto& images : context.processes)
        if (images.core.child_subreaper())
            subreapers.insert(images.core.pid());
    TRY(restore::plan_sessions(context.tree->tree(), [&](pid_t pid) { return subreapers.contains(pid); }));
    return {};
}

Result<void> write_memory(DumpContext& context)
{
    auto& processes = context.tree->processes();
    // Mapped memfds, deleted files and secret memory: saved once for the tree.
    mem::UnlinkedFileDump unlinked_files(context.files.files(), context.options.ghost_limit);
    mem::PageBuffers page_buffers;   // reused from one process to the next
    for (size_t i = 0; i < processes.size(); ++i) {
        pid_t pid = processes[i].pid();
        auto& images = context.processes[i];
        pid_t proc_pid = processes[i].proc_pid();
        auto pages = TRY(context.writer->create_file(image::pages_name(pid)));
        images.page_map.set_pid(pid);
        images.page_map.set_page_file(image::pages_name(pid));
        std::vector<image::Vma> vmas;
        if (context.incremental) {
            vmas = TRY_CTX(mem::collect_vmas(proc_pid), "pid {}", pid);
            auto plan = TRY(context.incremental->plan(pid, vmas, pages.size(), images.page_map));
            TRY(mem::copy_planned_pages(pid, plan, pages,
                                        context.options.leave_running || context.options.before_kill
                                            ? mem::Target::Frozen
                                            : mem::Target::FrozenToBeKilled));
        } else if (!context.options.leave_pages_in_memory) {
            // The pages are copied while smaps is read (mem/vmas.h).
            vmas = TRY(mem::collect_vmas_during(proc_pid, [&](std::vector<image::Vma>& copied) {
                return mem::dump_pages(proc_pid, copied, pages, images.page_map, page_buffers);
            }));
        } else {
            vmas = TRY_CTX(mem::collect_vmas(proc_pid), "pid {}", pid);
        }
        TRY_CTX(unlinked_files.dump_process(processes[i].leader(), vmas, pages), "pid {}", pid);
        // cryo migrate --lazy: the memory stays in the frozen tree, listed
        // past the end of what the page file holds.
        if (context.options.leave_pages_in_memory)
            TRY_CTX(context.options.leave_pages_in_memory(pid, proc_pid, vmas, pages.size(), images.page_map), "pid {}",
                    pid);
        context.page_bytes += pages.size();
        TRY(context.writer->finish_file(std::move(pages)));
        images.memory.set_pid(pid);
        context.vma_count += vmas.size();
        for (const auto& vma : vmas)
            context.stats.set_pages_scanned(context.stats.pages_scanned() + (vma.end() - vma.start()) / 4096);
        for (auto& vma : vmas)
            *images.memory.add_vmas() = std::move(vma);
    }
    // Pages still shared copy-on-write between a parent and its child (the
    // tree lists parents first, so the parent's image is complete).
    const auto& entries = context.tree->tree().processes();
    for (size_t i = 0; i < processes.size(); ++i) {
        pid_t pid = processes[i].pid();
        pid_t ppid = 0;
        for (const auto& entry : entries)
            if (entry.pid() == pid)
                ppid = entry.ppid();
        for (size_t j = 0; j < i; ++j)
            if (processes[j].pid() == ppid)
                TRY_CTX(mem::mark_shared_with_parent(processes[i].proc_pid(), processes[j].proc_pid(),
                                                     context.processes[i].memory, context.processes[j].memory,
                                                     context.processes[i].page_map),
                        "pid {}", pid);
    }
    return {};
}

Result<void> write_metadata(DumpContext& context)
{
    auto& writer = *context.writer;
    TRY(writer.write_message(std::string(image::kTreeName), image::ImageKind::Tree, context.tree->tree()));
    auto& processes = context.tree->processes();
    for (size_t i = 0; i < processes.size(); ++i) {
        pid_t pid = processes[i].pid();
        const auto& images = context.processes[i];
        TRY(writer.write_message(image::core_name(pid), image::ImageKind::Core, images.core));
        TRY(writer.write_message(image::memory_name(pid), image::ImageKind::Memory, images.memory));
        TRY(writer.write_message(image::pagemap_name(pid), image::ImageKind::PageMap, images.page_map));
        TRY(writer.write_message(image::fdtable_name(pid), image::ImageKind::FdTable, images.fd_table));
    }
    TRY(writer.write_message(std::string(image::kFileTableName), image::ImageKind::FileTable, context.files.files()));
    return {};
}

Result<void> commit_images(DumpContext& context)
{
    auto manifest = describe_checkpoint(context.options.pid);
    if (context.incremental)
        TRY(context.incremental->finish(manifest, context.options.tracker_timeout));
    TRY(context.writer->commit(std::move(manifest)));
    if (context.incremental)
        context.incremental->committed();
    return {};
}

// The statistics of this dump, written as the last file before the
// manifest.
Result<void> write_stats(DumpContext& context, Clock::time_point started, Clock::time_point frozen)
{
    auto& stats = context.stats;
    stats.set_total_ms(milliseconds_since(started));
    stats.set_frozen_ms(milliseconds_since(frozen));
    stats.set_processes(static_cast<uint32_t>(context.tree->tree().processes_size()));
    uint32_t threads = 0;
    for (const auto& entry : context.tree->tree().processes())
        threads += static_cast<uint32_t>(entry.tids_size());
    stats.set_threads(threads);
    stats.set_vmas(static_cast<uint32_t>(context.vma_count));
    stats.set_open_files(static_cast<uint32_t>(context.files.files().files_size()));
    stats.set_page_bytes(context.page_bytes);
    stats.set_pages_stored(context.page_bytes / 4096);
    if (context.incremental)
        stats.set_pages_in_parent(context.incremental->parent_bytes() / 4096);
    uint64_t kept = stats.pages_stored() + stats.pages_in_parent();
    stats.set_pages_skipped(stats.pages_scanned() - std::min(stats.pages_scanned(), kept));
    stats.set_metadata_bytes(context.writer->total_bytes() - context.page_bytes);
    return context.writer->write_message(std::string(image::kDumpStatsName), image::ImageKind::Stats, stats);
}

} // namespace

std::string format_dump_stats(const image::DumpStats& stats)
{
    std::string text = fmt::format("{:<28}{:>12}\n", "phase", "ms");
    for (const auto& phase : stats.phases())
        text += fmt::format("{:<28}{:>12.1f}\n", phase.name(), phase.ms());
    text += fmt::format("{:<28}{:>12.1f}\n", "frozen for", stats.frozen_ms());
    text += fmt::format("{:<28}{:>12.1f}\n", "total", stats.total_ms());
    text += fmt::format("{:<28}{:>12}\n", "processes", stats.processes());
    text += fmt::format("{:<28}{:>12}\n", "threads", stats.threads());
    text += fmt::format("{:<28}{:>12}\n", "mappings", stats.vmas());
    text += fmt::format("{:<28}{:>12}\n", "open files", stats.open_files());
    text += fmt::format("{:<28}{:>12}\n", "pages scanned", stats.pages_scanned());
    text += fmt::format("{:<28}{:>12}\n", "pages stored", stats.pages_stored());
    if (stats.pages_in_parent() > 0)
        text += fmt::format("{:<28}{:>12}\n", "pages in parent", stats.pages_in_parent());
    text += fmt::format("{:<28}{:>12}\n", "pages skipped", stats.pages_skipped());
    text += fmt::format("{:<28}{:>12.1f}\n", "page data (MiB)", static_cast<double>(stats.page_bytes()) / (1 << 20));
    text += fmt::format("{:<28}{:>12.1f}\n", "metadata (KiB)", static_cast<double>(stats.metadata_bytes()) / 1024);
    if (stats.total_ms() > 0)
        text += fmt::format("{:<28}{:>12.1f}\n", "page throughput (MiB/s)",
                            static_cast<double>(stats.page_bytes()) / (1 << 20) / (stats.total_ms() / 1000));
    return text;
}

Result<void> run_dump(const DumpOptions& options)
{
    auto started = Clock::now();
    DumpContext context { .options = options, .files = fds::FileRegistry(options.ghost_limit, options.externals) };
    if (options.external_unix_peers)
        context.files.treat_unix_peers_as_external();
    context.files.set_tcp_established(options.tcp_established);

    // Refuse what can never be dumped before touching anything; without
    // root, another user's process too (dump/ownership.h).
    TRY(check_target(context));
    if ((options.compression_level != 0 || options.encrypt_key) && (!options.prev_images_dir.empty() || options.track_mem))
        return fail("--compress and --encrypt cannot be combined with --prev-images-dir or --track-mem yet: "
                    "incremental checkpoints are stored plain");
    if (options.encrypt_key && options.page_server)
        return fail("--encrypt cannot be combined with --page-server yet");
    if (options.leave_pages_in_memory
        && (!options.prev_images_dir.empty() || options.track_mem || options.page_server || options.compression_level != 0
            || options.encrypt_key))
        return fail("pages left in memory need a plain checkpoint in a local directory");
    auto caller = TRY(proc::current_caller());
    TRY(check_owned_by_caller(caller, options.pid));
    // The page server before anything is frozen: one that is not there, or
    // holds another key, is found while the tree runs on.
    std::unique_ptr<net::PageClient> page_server;
    if (options.page_server)
        page_server = TRY(net::PageClient::connect(*options.page_server, options.prev_images_dir));
    // The parent checkpoint and its tracker, before the tree is frozen.
    if (!options.prev_images_dir.empty() || options.track_mem)
        context.incremental.emplace(TRY(IncrementalDump::prepare({ .directory = options.directory,
                                                                   .parent = options.prev_images_dir,
                                                                   .track = options.track_mem && options.leave_running,
                                                                   .remote_parent = page_server ? page_server->parent() : nullptr })));
    // Freeze the whole tree first: from here on nothing changes under us,
    // and dropping `context.tree` on any error lets every process run on.
    auto frozen = Clock::now();
    TRY(timed(context, "freeze", [&]() -> Result<void> {
        context.tree.emplace(TRY(FrozenTree::freeze(options.pid)));
        return {};
    }));
    for (auto& process : context.tree->processes()) {
        TRY(check_owned_by_caller(caller, process.pid()));
        TRY(check_namespaces(process.proc_pid()));   // only PID, UTS and IPC namespaces come back
    }
    // UTS and IPC namespaces, each read once from inside by a helper, and
    // the login uids.
    TRY(timed(context, "namespaces", [&]() -> Result<void> {
        TRY(ns::record_namespaces(context.tree->mutable_tree()));
        return ns::record_loginuids(context.tree->mutable_tree());
    }));
    // Each restored process gets its own fs, handlers and memory; an fd
    // table shared with the parent is dumped once and shared again.
    std::map<pid_t, pid_t> proc_pids;
    for (auto& process : context.tree->processes())
        proc_pids[process.pid()] = process.proc_pid();
    auto sharing = TRY(check_shared_with_parents(proc_pids));
    for (auto& entry : *context.tree->mutable_tree().mutable_processes())
        entry.set_shares_fd_table_with_parent(sharing.contains(entry.pid()));
    context.processes.resize(context.tree->processes().size());
    // Write tracking: taken over from the parent's tracker, or armed now.
    if (context.incremental)
        TRY(timed(context, "dirty tracking", [&] { return context.incremental->arm(*context.tree); }));
    // Descriptors next: an unsupported one is the likeliest refusal, and
    // finding it costs nothing yet.
    TRY(timed(context, "open files", [&] { return collect_files(context); }));
    // Registers, signals, timers and the rest; the injected calls here map
    // and unmap a scratch page, so this comes before the memory scan.
    TRY(timed(context, "registers and state", [&] { return collect_cores(context); }));
    // Sessions the restore cannot make again are refused before the tree
    // is touched further; which processes are sub-reapers is known now.
    TRY(check_sessions_restorable(context));
    // Only now create the directory: a refusal above leaves nothing behind.
    context.writer.emplace(TRY(net::open_image_writer(
        page_server, options.directory, options.sync ? image::SyncMode::Fsync : image::SyncMode::NoSync,
        { .compression_level = options.compression_level, .key = options.encrypt_key })));
    TRY(timed(context, "memory", [&] { return write_memory(context); }));
    TRY(timed(context, "metadata", [&] { return write_metadata(context); }));
    TRY(write_stats(context, started, frozen));
    // The manifest makes the checkpoint complete; only after it is on disk
    // may the tree go away. (The statistics file, written before, cannot
    // hold this phase; --display-stats shows it.)
    TRY(timed(context, "commit", [&] { return commit_images(context); }));
    // cryo migrate: the destination restores while the tree is still
    // frozen here; a failure drops `context.tree`, which lets it run on.
    if (options.before_kill)
        TRY(timed(context, "confirm", options.before_kill));

    if (options.leave_running) {
        context.files.leave_repair_mode();   // TCP connections work again
        context.files.put_back_pty_queues();   // the bytes read from pty queues
        context.tree.reset();   // detaches: every process runs on
    } else {
        // Still in repair mode, the connections close without a packet.
        context.files.release_repaired_sockets();
        context.files.release_pty_queues();
        // The kill applies the tree's SEM_UNDO adjustments to the
        // semaphores of cryo's IPC namespace: said, set by set.
        auto semaphores = ns::read_semaphore_values();
        TRY(timed(context, "kill", [&] { return context.tree->kill(); }));
        ns::warn_changed_semaphores(semaphores);
    }
    context.stats.set_frozen_ms(milliseconds_since(frozen));
    context.stats.set_total_ms(milliseconds_since(started));

    spdlog::info("dumped the tree of pid {} ({} processes) into {}: {} VMAs, {} MiB of pages, {:.1f} ms", options.pid,
                 context.processes.size(), context.writer->directory(), context.vma_count, context.page_bytes >> 20,
                 milliseconds_since(started));
    if (options.display_stats)
        fmt::print("{}", format_dump_stats(context.stats));
    if (options.stats_out)
        *options.stats_out = context.stats;
    return {};
}

} // namespace cryo::dump
