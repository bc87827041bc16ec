// `cryo restore`, as a list of passes over a RestoreContext.
//
// Everything that can be checked is checked before a process exists: the
// manifest and the checksum of every file, then every image is parsed. The
// process is then created with its PID, set up from the inside (files,
// directories, limits), turned into the image from the outside (memory, mm,
// signals, timers, credentials) and only then given its registers and
// released. Until that moment the half-built process is killed on any error.
#include "restore/restore.h"

#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <optional>
#include <vector>

#include "core.pb.h"
#include "fds.pb.h"
#include "image/reader.h"
#include "mem/restore_memory.h"
#include "mm.pb.h"
#include "base/scope_guard.h"
#include "ptrace/injector.h"
#include "ptrace/registers.h"
#include "restore/process_state.h"
#include "restore/restorer.h"
#include "restore/threads.h"
#include "tree.pb.h"

namespace cryo::restore {

namespace {

struct ProcessImages {
    image::ProcessEntry entry;
    image::ProcessCore core;
    image::MemoryImage memory;
    image::PageMap page_map;
    image::FdTable fd_table;
};

struct RestoreContext {
    const RestoreOptions& options;
    std::optional<image::ImageReader> reader;
    image::ProcessTree tree;
    image::FileTable files;
    std::map<uint32_t, const image::OpenFile*> files_by_id;
    ProcessImages process;
    std::optional<NewProcess> created;
    mem::MemoryRestoreStats memory_stats;
};

Result<void> open_and_verify(RestoreContext& context)
{
    context.reader.emplace(TRY(image::ImageReader::open(context.options.directory)));
    TRY(context.reader->verify());
    return {};
}

Result<void> read_images(RestoreContext& context)
{
    const auto& reader = *context.reader;
    context.tree = TRY(reader.read<image::ProcessTree>(std::string(image::kTreeName), image::ImageKind::Tree));
    if (context.tree.processes_size() != 1)
        return fail("the checkpoint holds {} processes: restoring process trees is not supported yet",
                    context.tree.processes_size());
    auto& process = context.process;
    process.entry = context.tree.processes(0);
    pid_t pid = process.entry.pid();
    if (pid <= 1)
        return fail("{}: invalid pid {}", image::kTreeName, pid);
    process.core = TRY(reader.read<image::ProcessCore>(image::core_name(pid), image::ImageKind::Core));
    process.memory = TRY(reader.read<image::MemoryImage>(image::memory_name(pid), image::ImageKind::Memory));
    process.page_map = TRY(reader.read<image::PageMap>(image::pagemap_name(pid), image::ImageKind::PageMap));
    process.fd_table = TRY(reader.read<image::FdTable>(image::fdtable_name(pid), image::ImageKind::FdTable));
    context.files = TRY(reader.read<image::FileTable>(std::string(image::kFileTableName), image::ImageKind::FileTable));
    for (const auto& file : context.files.files())
        context.files_by_id[file.id()] = &file;
    if (process.core.threads_size() < 1 || process.core.threads(0).tid() != pid)
        return fail("{}: the first thread is not the leader {}", image::core_name(pid), pid);
    if (process.page_map.page_file() != image::pages_name(pid))
        return fail("{}: unexpected page file name '{}'", image::pagemap_name(pid), process.page_map.page_file());
    return {};
}

// One thread of the process being restored, with its injector.
struct ThreadInRestore {
    ptrace::Tracee* tracee;
    std::optional<ptrace::Tracee> owned;   // threads other than the leader
    std::optional<ptrace::Injector> injector;
    const image::ThreadCore* core;
};

Result<void> set_final_registers(ptrace::Tracee& tracee, const image::ThreadCore& thread)
{
    auto registers = ptrace::registers_from_image(thread.registers());
    registers.orig_rax = static_cast<uint64_t>(-1);  // no syscall restart on the way out
    TRY(tracee.set_registers(registers));
    TRY(tracee.set_xstate(thread.xstate()));
    TRY(tracee.set_signal_mask(thread.blocked_signals()));
    return {};
}

// Points every thread at its saved registers and lets them all go. The
// trampoline is unmapped by the leader's last injected call, in a
// syscall-exit stop, so no instruction of cryo's runs in the process after
// that.
Result<void> release(std::vector<ThreadInRestore>& threads, uint64_t trampoline)
{
    for (size_t i = 1; i < threads.size(); ++i)
        TRY_CTX(set_final_registers(*threads[i].tracee, *threads[i].core), "thread {}", threads[i].core->tid());
    auto& leader = threads.front();
    long unmapped = TRY(leader.injector->call_to_exit_stop(SYS_munmap, { trampoline, kTrampolineSize, 0, 0, 0, 0 }));
    if (unmapped != 0)
        return fail_errno("munmap of the trampoline", static_cast<int>(-unmapped));
    TRY(set_final_registers(*leader.tracee, *leader.core));
    for (auto& thread : threads)
        TRY(thread.tracee->detach());
    return {};
}

Result<void> morph(RestoreContext& context)
{
    auto& process = context.process;
    pid_t pid = process.entry.pid();
    uint64_t trampoline = TRY(mem::find_trampoline_window(process.memory, kTrampolineWindow));
    auto page_file = TRY(context.reader->open_raw(process.page_map.page_file()));

    RestorerSetup setup;
    setup.pid = pid;
    setup.core = &process.core;
    setup.fd_table = &process.fd_table;
    setup.files = &context.files_by_id;
    setup.trampoline = trampoline;
    setup.page_fd = page_file.get();
    context.created.emplace(TRY(NewProcess::create(setup)));
    auto& created = *context.created;

    auto memory = TRY(ptrace::RemoteMemory::open(pid));
    ptrace::ScratchArea scratch(memory, trampoline + kTrampolineCodeSize, kScratchSize);
    std::vector<ThreadInRestore> threads;
    // Elements point into each other (injectors at tracees): no reallocation.
    threads.reserve(static_cast<size_t>(process.core.threads_size()));
    // On failure the whole process is killed (NewProcess); its threads must
    // not be detached and let run first.
    ScopeGuard forget_threads([&] {
        for (auto& thread : threads)
            if (thread.owned)
                thread.owned->release();
    });
    threads.push_back({ .tracee = &created.tracee(), .core = &process.core.threads(0) });
    threads.front().injector.emplace(
        TRY(ptrace::Injector::create(created.tracee(), trampoline, ptrace::Gadget::SyscallThenTrap)));
    auto& injector = *threads.front().injector;

    mem::AddressSpaceRestore address_space;
    address_space.pid = pid;
    address_space.injector = &injector;
    address_space.memory = &memory;
    address_space.scratch = &scratch;
    address_space.trampoline = trampoline;
    address_space.trampoline_size = kTrampolineSize;
    address_space.temporary_slot = trampoline + kTemporarySlotOffset;
    address_space.page_fd = created.child_page_fd();
    address_space.image = &process.memory;
    address_space.page_map = &process.page_map;
    context.memory_stats = TRY(mem::restore_address_space(address_space));
    TRY(injector.call("close page file", SYS_close, static_cast<uint64_t>(created.child_page_fd())));

    StateRestore state { .pid = pid, .injector = &injector, .scratch = &scratch, .core = &process.core };
    TRY(restore_process_state(state));
    TRY_CTX(restore_thread_state(state, process.core.threads(0)), "thread {}", pid);
    // The other threads, created by the leader while it still has every
    // privilege (set_tid needs CAP_CHECKPOINT_RESTORE).
    for (int i = 1; i < process.core.threads_size(); ++i) {
        const auto& thread_core = process.core.threads(i);
        auto& thread = threads.emplace_back(ThreadInRestore { .core = &thread_core });
        thread.owned.emplace(TRY(create_thread(created.tracee(), injector, scratch, thread_core.tid())));
        thread.tracee = &*thread.owned;
        thread.injector.emplace(TRY(ptrace::Injector::create(*thread.tracee, trampoline, ptrace::Gadget::SyscallThenTrap)));
        StateRestore thread_state = state;
        thread_state.injector = &*thread.injector;
        TRY_CTX(restore_thread_state(thread_state, thread_core), "thread {}", thread_core.tid());
    }
    TRY_CTX(restore_itimers(state), "interval timers");
    for (auto& thread : threads) {
        StateRestore thread_state = state;
        thread_state.injector = &*thread.injector;
        TRY_CTX(restore_credentials(thread_state), "thread {}: credentials", thread.core->tid());
    }
    TRY(release(threads, trampoline));
    spdlog::debug("pid {}: {} threads, {} injected calls in the leader, {} preadv calls for {} MiB", pid,
                  threads.size(), injector.calls(), context.memory_stats.preadv_calls, context.memory_stats.bytes >> 20);
    return {};
}

Result<void> write_pidfile(const std::string& path, pid_t pid)
{
    auto fd = TRY(open_file(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    return write_all(fd.get(), fmt::format("{}\n", pid), path);
}

Result<int> wait_for(pid_t pid)
{
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return fail_errno(fmt::format("waitpid restored pid {}", pid));
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

} // namespace

Result<int> run_restore(const RestoreOptions& options)
{
    auto started = std::chrono::steady_clock::now();
    RestoreContext context { .options = options };

    // Refuse a damaged checkpoint before anything is created.
    TRY(open_and_verify(context));
    TRY(read_images(context));
    // Create the process and turn it into the image; until released, any
    // failure kills it (NewProcess's destructor).
    TRY_CTX(morph(context), "pid {}", context.process.entry.pid());
    pid_t pid = context.created->pid();
    context.created->release();

    auto elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started);
    spdlog::info("restored pid {} from {} in {:.1f} ms", pid, options.directory, elapsed.count());
    // The pidfile is written once the process runs: whoever waits for it may
    // signal the process right away.
    if (!options.pidfile.empty())
        TRY(write_pidfile(options.pidfile, pid));
    if (options.detach)
        return 0;
    return wait_for(pid);
}

} // namespace cryo::restore
