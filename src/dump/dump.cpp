// `cryo dump`, as a list of passes over a DumpContext.
//
// The order matters: the process is frozen first so nothing changes under
// us; descriptors are checked early because an unsupported one is the most
// common reason to refuse; injected calls run before memory is scanned
// because they briefly map a scratch page; images are committed (manifest
// last) before the process is killed, so a crash at any point leaves either
// the running process or a complete checkpoint, never neither.
#include "dump/dump.h"

#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>

#include "core.pb.h"
#include "dump/collect_core.h"
#include "dump/freeze.h"
#include "fds.pb.h"
#include "fds/fd_table.h"
#include "image/writer.h"
#include "mem/dump_pages.h"
#include "mem/vmas.h"
#include "mm.pb.h"
#include "proc/stat.h"
#include "tree.pb.h"

namespace cryo::dump {

namespace {

struct DumpContext {
    const DumpOptions& options;
    std::optional<FrozenProcess> process;
    image::ProcessTree tree;
    image::ProcessCore core;
    image::MemoryImage memory;
    image::PageMap page_map;
    image::FdTable fd_table;
    fds::FileRegistry files;
    std::optional<image::ImageWriter> writer;
    uint64_t page_bytes { 0 };
};

Result<void> check_target(DumpContext& context)
{
    pid_t pid = context.options.pid;
    if (pid <= 1)
        return fail("refusing to dump pid {}: not a process cryo can checkpoint", pid);
    if (pid == ::getpid())
        return fail("refusing to dump pid {}: that is cryo itself", pid);
    return {};
}

Result<void> record_tree(DumpContext& context)
{
    pid_t pid = context.process->pid();
    auto stat = TRY_CTX(proc::read_stat(pid), "pid {}", pid);
    context.tree.set_root_pid(pid);
    auto* entry = context.tree.add_processes();
    entry->set_pid(pid);
    entry->set_ppid(0);
    entry->set_pgid(stat.pgrp);
    entry->set_sid(stat.session);
    for (auto& thread : context.process->threads())
        entry->add_tids(thread.tid());
    entry->set_state(image::PROCESS_STATE_ALIVE);
    entry->set_comm(stat.comm);
    return {};
}

Result<void> write_memory(DumpContext& context)
{
    pid_t pid = context.process->pid();
    auto vmas = TRY_CTX(mem::collect_vmas(pid), "pid {}", pid);
    auto pages = TRY(context.writer->create_file(image::pages_name(pid)));
    context.page_map.set_pid(pid);
    context.page_map.set_page_file(image::pages_name(pid));
    TRY(mem::dump_pages(pid, vmas, pages, context.page_map));
    context.page_bytes = pages.size();
    TRY(context.writer->finish_file(std::move(pages)));
    context.memory.set_pid(pid);
    for (auto& vma : vmas)
        *context.memory.add_vmas() = std::move(vma);
    return {};
}

Result<void> write_metadata(DumpContext& context)
{
    pid_t pid = context.process->pid();
    auto& writer = *context.writer;
    TRY(writer.write_message(std::string(image::kTreeName), image::ImageKind::Tree, context.tree));
    TRY(writer.write_message(image::core_name(pid), image::ImageKind::Core, context.core));
    TRY(writer.write_message(image::memory_name(pid), image::ImageKind::Memory, context.memory));
    TRY(writer.write_message(image::pagemap_name(pid), image::ImageKind::PageMap, context.page_map));
    TRY(writer.write_message(image::fdtable_name(pid), image::ImageKind::FdTable, context.fd_table));
    TRY(writer.write_message(std::string(image::kFileTableName), image::ImageKind::FileTable, context.files.files()));
    return {};
}

Result<void> commit_images(DumpContext& context)
{
    image::Manifest manifest;
    manifest.set_tool_version(CRYO_VERSION);
    timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    manifest.set_created_unix_ns(static_cast<uint64_t>(now.tv_sec) * 1'000'000'000ull + now.tv_nsec);
    utsname host {};
    if (::uname(&host) == 0) {
        manifest.set_hostname(host.nodename);
        manifest.set_kernel_release(host.release);
    }
    manifest.set_root_pid(context.process->pid());
    return context.writer->commit(std::move(manifest));
}

} // namespace

Result<void> run_dump(const DumpOptions& options)
{
    auto started = std::chrono::steady_clock::now();
    DumpContext context { .options = options };

    // Refuse what can never be dumped before touching anything.
    TRY(check_target(context));
    // Freeze first: from here on the process cannot change under us, and
    // dropping `context.process` on any error lets it run on untouched.
    context.process.emplace(TRY(FrozenProcess::freeze(options.pid)));
    pid_t pid = context.process->pid();
    TRY(record_tree(context));
    // Descriptors next: an unsupported one is the likeliest refusal, and
    // finding it costs nothing yet.
    TRY_CTX(context.files.dump_process(pid, context.process->pidfd(), context.fd_table), "pid {}", pid);
    // Registers, signals, timers and the rest; the injected calls here map
    // and unmap a scratch page, so this comes before the memory scan.
    TRY(collect_core(*context.process, context.core, *context.memory.mutable_fields()));
    // Only now create the directory: a refusal above leaves nothing behind.
    context.writer.emplace(TRY(image::ImageWriter::create(
        options.directory, options.sync ? image::SyncMode::Fsync : image::SyncMode::NoSync)));
    TRY(write_memory(context));
    TRY(write_metadata(context));
    // The manifest makes the checkpoint complete; only after it is on disk
    // may the process go away.
    TRY(commit_images(context));

    if (options.leave_running)
        context.process.reset();   // detaches: the process runs on
    else
        TRY(context.process->kill());

    auto elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started);
    spdlog::info("dumped pid {} into {}: {} VMAs, {} MiB of pages, {:.1f} ms", pid, options.directory,
                 context.memory.vmas_size(), context.page_bytes >> 20, elapsed.count());
    return {};
}

} // namespace cryo::dump
