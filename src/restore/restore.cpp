// `cryo restore`, as a list of passes over a RestoreContext.
//
// Everything that can be checked is checked before a process exists: the
// manifest and the checksum of every file, then every image is parsed and
// every open file is opened. The tree is then created with its PIDs, each
// process set up from the inside (files, directories, limits), then turned
// into the image from the outside (memory, mm, signals, threads, timers,
// credentials) one after the other, and only then are all threads of all
// processes given their registers and released together. Until that moment
// the half-built tree is killed on any error.
#include "restore/restore.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "base/fault.h"
#include "base/kill.h"
#include "base/scope_guard.h"
#include "base/syscalls.h"
#include "core.pb.h"
#include "fds.pb.h"
#include "check/cpu.h"
#include "fds/fd_table.h"
#include "fds/locks.h"
#include "fds/owner.h"
#include "fds/file_kind.h"
#include "fds/file_identity.h"
#include "image/chain.h"
#include "image/transform.h"
#include "image/reader.h"
#include "image/validate.h"
#include "image/writer.h"
#include "lazy/command.h"
#include "lazy/lazy_pages.h"
#include "lazy/remote.h"
#include "mem/restore_memory.h"
#include "mm.pb.h"
#include "ns/namespaces.h"
#include "proc/stat.h"
#include "proc/task.h"
#include "ptrace/injector.h"
#include "ptrace/same_cpu.h"
#include "ptrace/registers.h"
#include "restore/cgroup.h"
#include "restore/privilege.h"
#include "restore/process_state.h"
#include "restore/restorer.h"
#include "restore/sessions.h"
#include "restore/threads.h"
#include "stats.pb.h"
#include "tree.pb.h"

namespace cryo::restore {

namespace {

// The images of one process of the tree (core..fd_table empty for zombies).
struct ProcessImages {
    image::ProcessEntry entry;
    image::ProcessCore core;
    image::MemoryImage memory;
    image::PageMap page_map;
    image::FdTable fd_table;
    UniqueFd page_file;
    image::AncestorPageFiles ancestor_page_files;   // incremental checkpoints
    bool alive() const { return entry.state() == image::PROCESS_STATE_ALIVE; }
};

// One thread being restored, with its injector.
struct ThreadInRestore {
    ptrace::Tracee* tracee { nullptr };
    std::optional<ptrace::Tracee> owned;   // threads other than the leader
    std::optional<ptrace::Injector> injector;
    const image::ThreadCore* core { nullptr };
};

// A process whose morph is done, waiting to be released with the others.
struct MorphedProcess {
    pid_t pid { 0 };
    std::optional<ptrace::RemoteMemory> memory;
    std::vector<ThreadInRestore> threads;
    ~MorphedProcess()
    {
        // Never detach a thread of a half-built process: the tree is killed.
        // The threads cryo created are its tracees, whose deaths only cryo
        // can collect: kill the process now and collect them, or its leader
        // could never be reaped (NewTree waits for it).
        bool killed = false;
        for (auto& thread : threads) {
            if (!thread.owned || thread.owned->tid() <= 0)
                continue;   // the leader (NewTree's), or detached: released
            if (!std::exchange(killed, true))
                kill_quietly(pid);
            while (::waitpid(thread.owned->tid(), nullptr, __WALL) < 0 && errno == EINTR) { }
            thread.owned->release();
        }
    }
};

// A page file a lazy restore checks chunk by chunk (image::verified_by_chunks),
// the last checkpoint's or an ancestor's: which chunks were checked up front.
struct ChunkedPageFile {
    int fd { -1 };
    const image::ManifestFile* record { nullptr };
    std::vector<bool> verified;
};

struct RestoreContext {
    const RestoreOptions& options;
    std::optional<image::ImageReader> reader;
    std::optional<image::ParentChain> chain;   // checkpoints the pages may come from
    image::ProcessTree tree;
    image::FileTable files;
    std::map<uint32_t, UniqueFd> opened_files;
    std::set<uint32_t> async_files;   // O_ASYNC switched on again (fds/owner.h)
    std::vector<ProcessImages> processes;   // parents before children
    std::deque<image::ProcessEntry> helpers;   // made up for groups whose leader is gone
    std::map<pid_t, std::vector<pid_t>> helpers_by_parent;
    uint64_t trampoline { 0 };
    std::map<uint64_t, mem::SharedObject> shared_objects;   // by shmem_id
    mem::UnlinkedFileWindows unlinked_files;   // mapped memfds, deleted and secret files
    std::optional<NewTree> created;
    std::deque<MorphedProcess> morphed;     // stable addresses
    mem::Prefill prefill;                   // memory loaded while verifying page files
    mem::MemoryRestoreStats memory_stats;
    std::map<uint32_t, std::pair<pid_t, int>> pidfd_holders;   // pidfd file id -> the first process and fd with it
    std::vector<lazy::LazyProcess> lazy_processes;   // --lazy-pages: what the server will hold
    std::optional<lazy::RemoteCheckpoint> remote;    // --page-server: where the lazy pages are
    std::map<std::string, ChunkedPageFile> chunked_files;   // --lazy-pages: page files checked chunk by chunk, by path
    pid_t lazy_server { 0 };   // once started: it has the page server's connection from then on
    CgroupPlan cgroups;
    std::optional<ns::NamespaceSet> namespaces;   // UTS and IPC namespaces, filled
    std::optional<DeletedDirectories> deleted_directories;   // removed working directories
};

bool is_page_file(const std::string& name) { return name.starts_with("pages-"); }

// A page file that load_pages() verifies while it loads memory from it: not
// a compressed or sealed one, whose checksum covers the bytes as stored
// (page_file is then the decoded, authenticated memfd; its memory is loaded
// as usual once the processes exist).
bool loads_ahead(const image::ImageReader& reader, const std::string& name)
{
    const image::ManifestFile* record = reader.listed(name);
    return !reader.encrypted() && record && !image::is_transformed(*record);
}

// Metadata files and transformed page files: the others are verified as
// they are loaded (load_pages), once the page maps say where their bytes go.
Result<void> open_and_verify(RestoreContext& context)
{
    context.reader.emplace(TRY(image::ImageReader::open(context.options.directory,
                                                        context.options.key ? &*context.options.key : nullptr)));
    const auto& reader = *context.reader;
    // Page files fetched from a page server have holes where the lazy
    // pages are; their bytes were checked there (lazy/remote.h).
    TRY(reader.verify([&](const std::string& name) {
        return !is_page_file(name) || (!context.remote && !loads_ahead(reader, name));
    }));
    if (context.reader->manifest().pre_dump())
        return fail("{} is a pre-dump: it holds memory only; restore the dump made with --prev-images-dir instead",
                    context.options.directory);
    TRY(image::refuse_deduped(context.options.directory, context.reader->manifest(), "target of a restore"));
    // Incremental checkpoints: every parent verified too, before anything
    // (a lazy restore leaves their page files to load_pages, as its own).
    auto verify = image::ChainVerify::Everything;
    if (context.remote)
        verify = image::ChainVerify::MetadataOnly;
    else if (context.options.lazy_pages)
        verify = image::ChainVerify::ChunkedPagesLater;
    context.chain.emplace(TRY(image::ParentChain::open(context.options.directory, context.reader->manifest(), verify)));
    // Checkpoints older than the CPU record have none to compare.
    if (context.options.check_cpu && context.reader->manifest().has_cpu())
        TRY(check::compare_cpu_features(context.reader->manifest().cpu(), check::current_cpu_features()));
    return {};
}

Result<void> read_process(const image::ImageReader& reader, const image::ParentChain& chain, ProcessImages& process)
{
    pid_t pid = process.entry.pid();
    process.core = TRY(reader.read<image::ProcessCore>(image::core_name(pid), image::ImageKind::Core));
    process.memory = TRY(reader.read<image::MemoryImage>(image::memory_name(pid), image::ImageKind::Memory));
    process.page_map = TRY(reader.read<image::PageMap>(image::pagemap_name(pid), image::ImageKind::PageMap));
    process.fd_table = TRY(reader.read<image::FdTable>(image::fdtable_name(pid), image::ImageKind::FdTable));
    if (process.core.threads_size() < 1 || process.core.threads(0).tid() != pid)
        return fail("{}: the first thread is not the leader {}", image::core_name(pid), pid);
    if (process.page_map.page_file() != image::pages_name(pid))
        return fail("{}: unexpected page file name '{}'", image::pagemap_name(pid), process.page_map.page_file());
    process.page_file = TRY(reader.open_raw(process.page_map.page_file()));
    // Memory is filled run by run with preadv() into the new process: a run
    // outside the page file or its mappings is refused while nothing exists.
    std::string mm_path = fmt::format("{}/{}", reader.directory(), image::memory_name(pid));
    std::string pagemap_path = fmt::format("{}/{}", reader.directory(), image::pagemap_name(pid));
    TRY_CTX(image::check_mappings(process.memory), "{}", mm_path);
    process.ancestor_page_files = TRY(image::open_ancestor_page_files(chain, process.page_map, pid));
    TRY_CTX(image::check_page_map(process.page_map, process.page_map.page_file(),
                                 reader.file_size(process.page_map.page_file()), process.ancestor_page_files.sizes),
            "{}", pagemap_path);
    TRY_CTX(image::check_runs_in_mappings(process.page_map, process.memory), "{}", pagemap_path);
    return {};
}

Result<void> read_images(RestoreContext& context)
{
    const auto& reader = *context.reader;
    context.tree = TRY(reader.read<image::ProcessTree>(std::string(image::kTreeName), image::ImageKind::Tree));
    if (context.tree.processes_size() == 0 || context.tree.processes(0).pid() != context.tree.root_pid())
        return fail("{}: the root process is not listed first", image::kTreeName);
    std::map<pid_t, size_t> seen;
    for (const auto& entry : context.tree.processes()) {
        if (entry.pid() <= 1 || seen.contains(entry.pid()))
            return fail("{}: invalid or repeated pid {}", image::kTreeName, entry.pid());
        if (entry.ppid() != 0 && !seen.contains(entry.ppid()))
            return fail("{}: pid {} is listed before its parent {}", image::kTreeName, entry.pid(), entry.ppid());
        seen[entry.pid()] = context.processes.size();
        auto& process = context.processes.emplace_back();
        process.entry = entry;
        if (process.alive())
            TRY(read_process(reader, *context.chain, process));
    }
    TRY_CTX(image::check_namespaces(context.tree), "{}", image::kTreeName);
    for (const auto& process : context.processes)
        TRY(image::check_sysv_attachments(context.tree, process.entry, process.memory));
    context.files = TRY(reader.read<image::FileTable>(std::string(image::kFileTableName), image::ImageKind::FileTable));
    // Every fd refers to an open file of files.img (found by id - 1), and
    // every pidfd to a process of the tree or to a dead one.
    std::vector<const image::FdTable*> tables;
    for (const auto& process : context.processes) {
        if (!process.alive())
            continue;
        tables.push_back(&process.fd_table);
        for (const auto& entry : process.fd_table.fds()) {
            int index = static_cast<int>(entry.file_id()) - 1;
            if (index < 0 || index >= context.files.files_size() || context.files.files(index).id() != entry.file_id())
                return fail("{}: fd {} refers to file id {}, which {} does not have", image::fdtable_name(process.entry.pid()),
                            entry.fd(), entry.file_id(), image::kFileTableName);
        }
    }
    TRY(fds::check_pidfd_targets(context.files, tables, context.tree));
    TRY_CTX(image::check_inet_sockets(context.files), "{}", image::kFileTableName);
    return {};
}

// Who runs cryo decides what the restored processes may be given (see
// privilege.h): a hostile image is refused while nothing exists.
Result<void> check_privileges(const RestoreContext& context)
{
    auto caller = TRY(proc::current_caller());
    for (const auto& process : context.processes)
        TRY(check_process_privileges(caller, process.entry, process.alive() ? &process.core : nullptr));
    return {};
}

// Private anonymous VMAs whose pages cryo can load before the tree exists
// (mem/prefill.h): not stacks, not shared copy-on-write with the parent or
// with a child (mem/cow.h puts those in place).
std::set<std::pair<pid_t, uint64_t>> shared_with_children(const RestoreContext& context)
{
    std::set<std::pair<pid_t, uint64_t>> shared;   // parent pid, VMA start
    for (const auto& process : context.processes)
        for (const auto& vma : process.memory.vmas())
            if (vma.shares_with_parent())
                shared.insert({ process.entry.ppid(), vma.start() });
    return shared;
}

// Lazy restore: of the page files checked chunk by chunk (the last
// checkpoint's and its ancestors', image::verified_by_chunks), the chunks
// that hold pages cryo fills itself (every run outside the VMAs the
// lazy-pages server may fill, lazy/lazy_pages.h) are verified now; the
// server checks the others as it first reads them (lazy/page_source.h).
// Every such file a run of `process` reads is recorded in
// context.chunked_files.
Result<void> verify_filled_chunks(RestoreContext& context, const ProcessImages& process,
                                  const std::set<std::pair<pid_t, uint64_t>>& shared)
{
    pid_t pid = process.entry.pid();
    std::map<uint64_t, const image::Vma*> vmas;   // by end
    for (const auto& vma : process.memory.vmas())
        vmas[vma.end()] = &vma;
    std::vector<std::byte> buffer;
    for (const auto& run : process.page_map.runs()) {
        if (run.page_count() == 0)
            continue;
        size_t ancestor = run.ancestor();
        const image::ImageReader& reader = ancestor == 0 ? *context.reader : context.chain->ancestor(ancestor);
        const image::ManifestFile* record = reader.listed(process.page_map.page_file());
        if (!record || !image::verified_by_chunks(reader, *record))
            continue;   // verified whole (load_pages, image/chain.h)
        std::string path = fmt::format("{}/{}", reader.directory(), record->name());
        auto& file = context.chunked_files[path];
        if (!file.record) {
            file.fd = ancestor == 0 ? process.page_file.get() : process.ancestor_page_files.files.at(ancestor - 1).get();
            file.record = record;
            file.verified.assign(static_cast<size_t>(record->chunk_xxh3_size()), false);
        }
        auto vma = vmas.upper_bound(run.address());   // check_runs_in_mappings: inside it
        bool served = vma != vmas.end() && mem::lazy_candidate(*vma->second) && !vma->second->shares_with_parent()
            && !shared.contains({ pid, vma->second->start() });
        if (served)
            continue;
        uint64_t chunk_size = record->chunk_size();
        uint64_t end = run.file_offset() + run.page_count() * kPageSize;
        for (uint64_t index = run.file_offset() / chunk_size; index <= (end - 1) / chunk_size; ++index) {
            if (file.verified.at(index))
                continue;
            TRY(image::verify_chunk(file.fd, *record, index, buffer, path));
            file.verified[index] = true;
        }
    }
    return {};
}

// Verifies every page file left to it (loads_ahead), loading the memory it
// can on the way.
Result<void> load_pages(RestoreContext& context)
{
    if (context.remote)
        return {};   // nothing to load ahead in a lazy restore, nothing to verify (see open_and_verify)
    const auto& reader = *context.reader;
    auto shared = shared_with_children(context);
    std::set<std::string> verified;
    for (size_t index = 0; index < context.processes.size(); ++index) {
        const auto& process = context.processes[index];
        if (!process.alive())
            continue;
        const std::string& name = process.page_map.page_file();
        const image::ManifestFile* record = reader.listed(name);
        if (!record)
            return fail("{}/{}: not listed in the manifest", reader.directory(), name);
        if (context.options.lazy_pages)
            TRY(verify_filled_chunks(context, process, shared));
        if (!loads_ahead(reader, name))
            continue;   // verified by open_and_verify()
        if (context.options.lazy_pages && image::verified_by_chunks(reader, *record)) {
            verified.insert(name);
            continue;
        }
        mem::Prefill::PageFile file { process.page_file.get(), fmt::format("{}/{}", reader.directory(), name),
                                      record->size(), record->xxh3() };
        pid_t pid = process.entry.pid();
        TRY(context.prefill.load(index, file, process.memory, process.page_map, [&](const image::Vma& vma) {
            // With --lazy-pages the memory is filled after the start instead.
            return !context.options.lazy_pages && vma.kind() == image::VMA_KIND_ANONYMOUS && vma.stored_bytes() > 0
                && !vma.grows_down()
                && !vma.shares_with_parent() && !shared.contains({ pid, vma.start() });
        }));
        verified.insert(name);
    }
    // A page file no process reads is verified all the same.
    return reader.verify([&](const std::string& name) {
        return is_page_file(name) && loads_ahead(reader, name) && !verified.contains(name);
    });
}

// Maps, in cryo, every shared anonymous memory object of the tree at an
// address free in all the image's processes; the new processes inherit them.
Result<void> map_shared_objects(RestoreContext& context, const image::MemoryImage& all_vmas)
{
    std::map<uint64_t, uint64_t> sizes;
    for (const auto& vma : all_vmas.vmas())
        if (vma.kind() == image::VMA_KIND_SHARED_ANONYMOUS)
            sizes[vma.shmem_id()] = std::max(sizes[vma.shmem_id()], (vma.shmem_size() + kPageSize - 1) & ~(kPageSize - 1));
    for (const auto& [id, size] : sizes) {
        uint64_t address = TRY(mem::find_free_window(all_vmas, size));
        void* mapped = ::mmap(reinterpret_cast<void*>(address), size, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (mapped == MAP_FAILED)
            return fail_errno(fmt::format("mmap shared memory object {} ({} bytes)", id, size));
        context.shared_objects[id] = { address, size };
    }
    return {};
}

// Adds a helper process for every process group whose leader is not in the
// tree, as a child of the first member's parent (the dump checked that the
// member is in its parent's session).
void add_group_helpers(RestoreContext& context, TreePlan& plan, std::map<pid_t, size_t>& index)
{
    for (const auto& process : context.processes) {
        const auto& entry = process.entry;
        if (entry.ppid() == 0 || entry.pgid() == entry.pid() || index.contains(entry.pgid()))
            continue;
        size_t parent = index.at(entry.ppid());
        if (plan.processes[parent].entry->pgid() == entry.pgid())
            continue;   // inherited from the parent
        if (entry.pgid() == entry.sid() && plan.processes[parent].entry->sid() != entry.sid())
            continue;   // led by the session's helper (plan_sessions)
        auto& helper = context.helpers.emplace_back();
        helper.set_pid(entry.pgid());
        helper.set_ppid(entry.ppid());
        helper.set_pgid(entry.pgid());
        helper.set_sid(plan.processes[parent].entry->sid());
        helper.set_own_ns_pgid(entry.own_ns_pgid());
        if (entry.ns_pids_size() == 2) {
            helper.add_ns_pids(entry.pgid());
            helper.add_ns_pids(entry.own_ns_pgid());
        } else {
            helper.add_ns_pids(entry.pgid());
        }
        index[entry.pgid()] = plan.processes.size();
        plan.processes[parent].children.push_back(plan.processes.size());
        plan.processes.push_back(ProcessPlan { .entry = &helper, .helper = true });
        // wait4() in the parent takes the pid as its own namespace sees it.
        context.helpers_by_parent[entry.ppid()].push_back(helper.ns_pids(helper.ns_pids_size() - 1));
    }
}

// Sessions neither a process's own nor its parent's (restore/sessions.h):
// which children come before their parent's setsid(), and the helpers of
// sessions whose leader is gone, put between the adopting process and the
// processes it adopted.
Result<void> add_session_helpers(RestoreContext& context, TreePlan& plan, std::map<pid_t, size_t>& index)
{
    std::set<pid_t> subreapers;
    for (const auto& process : context.processes)
        if (process.alive() && process.core.child_subreaper())
            subreapers.insert(process.entry.pid());
    auto sessions = TRY(plan_sessions(context.tree, [&](pid_t pid) { return subreapers.contains(pid); }));
    for (pid_t pid : sessions.before_parent_setsid)
        plan.processes[index.at(pid)].before_parent_setsid = true;
    for (const auto& session : sessions.helpers) {
        auto& helper = context.helpers.emplace_back();
        helper.set_pid(session.sid);
        helper.set_ppid(session.parent);
        helper.set_pgid(session.sid);
        helper.set_sid(session.sid);
        helper.set_own_ns_pgid(session.sid);
        helper.add_ns_pids(session.sid);
        const auto& first = *plan.processes[index.at(session.children.front())].entry;
        helper.set_uts_ns(first.uts_ns());
        helper.set_ipc_ns(first.ipc_ns());
        size_t parent = index.at(session.parent);
        size_t at = plan.processes.size();
        ProcessPlan planned { .entry = &helper, .parent = static_cast<int>(parent), .session_helper = true };
        for (pid_t child : session.children) {
            size_t moved = index.at(child);
            std::erase(plan.processes[parent].children, moved);
            plan.processes[moved].parent = static_cast<int>(at);
            planned.children.push_back(moved);
        }
        plan.processes[parent].children.push_back(at);
        plan.processes.push_back(std::move(planned));
        index[session.sid] = at;
        context.helpers_by_parent[session.parent].push_back(session.sid);
    }
    return {};
}

// A process sharing its parent's fd table is created by that parent with
// CLONE_FILES (restorer.h): the parent must be a live process of the image
// (checked again here: the image may have been edited).
Result<void> check_shared_fd_tables(const TreePlan& plan)
{
    for (const auto& process : plan.processes) {
        if (!process.shares_parent_fd_table)
            continue;
        const auto& parent = plan.processes[static_cast<size_t>(process.parent)];
        if (!process.core || !parent.core || parent.entry->pid() != process.entry->ppid())
            return fail("pid {}: it shares the fd table of its parent {}, but one of them is no live process of the image, "
                        "or a session helper is between them: not supported",
                        process.entry->pid(), process.entry->ppid());
    }
    return {};
}

Result<void> check_mapped_files(const RestoreContext& context)
{
    std::map<std::string, const image::FileIdentity*> checked;
    for (const auto& process : context.processes) {
        for (const auto& vma : process.memory.vmas()) {
            if (!vma.has_file_identity() || checked.contains(vma.path()))
                continue;
            checked[vma.path()] = &vma.file_identity();
            auto file = TRY_CTX(open_file(vma.path(), O_RDONLY | O_CLOEXEC), "pid {}: mapped file", process.entry.pid());
            TRY_CTX(fds::check_file_identity(file.get(), vma.path(), vma.file_identity()), "pid {}", process.entry.pid());
        }
    }
    return {};
}

Result<void> plan_and_create(RestoreContext& context)
{
    image::MemoryImage all_vmas;
    for (const auto& process : context.processes)
        for (const auto& vma : process.memory.vmas())
            *all_vmas.add_vmas() = vma;
    TRY(map_shared_objects(context, all_vmas));
    // Mapped memfds, deleted and secret files, likewise (mem/unlinked_files.h).
    context.unlinked_files = TRY(mem::UnlinkedFileWindows::prepare(all_vmas, *context.reader, context.files,
                                                                   context.opened_files));
    // A trampoline address free in cryo and in every process of the image.
    context.trampoline = TRY(mem::find_free_window(all_vmas, kTrampolineWindow));

    TreePlan plan;
    plan.trampoline = context.trampoline;
    std::map<pid_t, size_t> index;
    for (const auto& process : context.processes) {
        index[process.entry.pid()] = plan.processes.size();
        ProcessPlan entry;
        entry.entry = &process.entry;
        if (process.alive()) {
            entry.core = &process.core;
            entry.fd_table = &process.fd_table;
            entry.memory = &process.memory;
            entry.page_map = &process.page_map;
            entry.page_fd = process.page_file.get();
            for (const auto& file : process.ancestor_page_files.files)
                entry.ancestor_page_fds.push_back(file.get());
            entry.shares_parent_fd_table = process.entry.shares_fd_table_with_parent();
        }
        if (process.entry.ppid() != 0) {
            entry.parent = static_cast<int>(index.at(process.entry.ppid()));
            plan.processes[index.at(process.entry.ppid())].children.push_back(plan.processes.size());
        }
        plan.processes.push_back(std::move(entry));
    }
    add_group_helpers(context, plan, index);
    TRY(add_session_helpers(context, plan, index));
    TRY(check_shared_fd_tables(plan));
    plan.files = &context.files;
    for (const auto& [id, fd] : context.opened_files)
        plan.opened_files[id] = fd.get();
    plan.prefilled = context.prefill.vmas();
    plan.namespaces = &*context.namespaces;
    plan.deleted_directories = &*context.deleted_directories;
    context.created.emplace(TRY(NewTree::create(plan)));
    // Every process has its loaded memory now: cryo's side goes, so that
    // the first write of the restored program finds the page its own.
    for (const auto& vma : context.prefill.vmas())
        context.created->member(context.processes[vma.process].entry.pid()).materialized.push_back(vma.start);
    context.memory_stats.bytes += context.prefill.bytes();
    context.prefill.unmap();
    // Every process inherited its page file: cryo's copies can go (a decoded
    // page file is a memfd whose memory is freed once the last copy closes).
    // A lazy restore keeps them for the lazy-pages server.
    if (!context.options.lazy_pages)
        for (auto& process : context.processes)
            process.page_file.reset();
    // The groups exist and every member joined: the helpers can go.
    context.created->kill_helpers(plan);
    return {};
}

// The open file at fd `fd` of `holder` (a process of the tree), copied into
// `process` by injected pidfd_open() + pidfd_getfd(); nothing when
// `process` cannot see `holder` or the kernel refuses.
std::optional<uint64_t> take_pidfd_from(const RestoreContext& context, const ProcessImages& process, pid_t holder, int fd,
                                        ptrace::Injector& injector)
{
    size_t level = static_cast<size_t>(process.entry.ns_pids_size()) - 1;
    for (const auto& other : context.processes) {
        if (other.entry.pid() != holder || static_cast<size_t>(other.entry.ns_pids_size()) <= level)
            continue;
        auto holder_fd = injector.call("pidfd_open of the holder", SYS_pidfd_open,
                                       static_cast<uint64_t>(other.entry.ns_pids(static_cast<int>(level))), 0);
        if (!holder_fd)
            return std::nullopt;
        auto copy = injector.call("pidfd_getfd", SYS_pidfd_getfd, *holder_fd, static_cast<uint64_t>(fd), 0);
        (void)injector.call("close", SYS_close, *holder_fd);
        if (!copy)
            return std::nullopt;
        return *copy;
    }
    return std::nullopt;
}

// The pids and tids of the processes the restore makes.
std::set<pid_t> tree_ids(const RestoreContext& context)
{
    std::set<pid_t> ids;
    for (const auto& process : context.processes) {
        if (!process.alive())
            continue;
        ids.insert(process.entry.pid());
        for (const auto& thread : process.core.threads())
            ids.insert(thread.tid());
    }
    return ids;
}

// pidfds to processes of the tree: fds::open_files() left a placeholder at
// their numbers, since their targets did not exist yet; now the whole tree
// does. The first process (parents come first) that has a given pidfd opens
// it itself by an injected pidfd_open(); the others take that same open
// file from it with pidfd_getfd(), as fork() had shared it, or open their
// own if they cannot see that process.
Result<void> restore_pidfds(RestoreContext& context, const ProcessImages& process, ptrace::Injector& injector)
{
    std::map<uint32_t, int> opened;   // file id -> the fd number that has it here
    for (const auto& entry : process.fd_table.fds()) {
        const auto& file = context.files.files(static_cast<int>(entry.file_id()) - 1);
        if (file.kind() != image::FILE_KIND_PIDFD || !file.external().empty() || file.pidfd().dead())
            continue;
        uint64_t fd_flags = entry.close_on_exec() ? O_CLOEXEC : 0;
        if (auto found = opened.find(entry.file_id()); found != opened.end()) {
            TRY(injector.call("dup3 pidfd", SYS_dup3, static_cast<uint64_t>(found->second),
                              static_cast<uint64_t>(entry.fd()), fd_flags));
            continue;
        }
        auto holder = context.pidfd_holders.find(entry.file_id());
        std::optional<uint64_t> pidfd;
        if (holder != context.pidfd_holders.end())
            pidfd = take_pidfd_from(context, process, holder->second.first, holder->second.second, injector);
        if (!pidfd) {
            pid_t target = TRY_CTX(fds::live_pidfd_target(file, context.tree, process.entry.pid()), "fd {} (pidfd)",
                                   entry.fd());
            uint64_t flags = (file.flags() & O_NONBLOCK) | (file.pidfd().thread() ? O_EXCL : 0);
            pidfd = TRY_CTX(injector.call("pidfd_open", SYS_pidfd_open, static_cast<uint64_t>(target), flags),
                            "fd {} (pidfd to pid {})", entry.fd(), target);
            context.pidfd_holders.emplace(entry.file_id(), std::pair(process.entry.pid(), entry.fd()));
        }
        TRY(injector.call("dup3 pidfd", SYS_dup3, *pidfd, static_cast<uint64_t>(entry.fd()), fd_flags));
        TRY(injector.call("close", SYS_close, *pidfd));
        opened[entry.file_id()] = entry.fd();
    }
    return {};
}

// Files of /proc/PID/ of a process of the tree (zdtm child_opened_proc):
// fds::open_files() left a placeholder, since the process did not exist
// yet; now the owning process opens the file itself, at the same number
// and offset. Each descriptor gets an open file of its own.
Result<void> restore_proc_files(RestoreContext& context, const ProcessImages& process, ptrace::Injector& injector,
                                const ptrace::ScratchArea& scratch)
{
    auto ids = tree_ids(context);
    for (const auto& entry : process.fd_table.fds()) {
        const auto& file = context.files.files(static_cast<int>(entry.file_id()) - 1);
        if (file.kind() != image::FILE_KIND_REGULAR || !file.external().empty()
            || !fds::proc_path_owner(file.regular().path(), ids))
            continue;
        const std::string& path = file.regular().path();
        uint64_t address = TRY(scratch.put_string(path));
        uint64_t flags = static_cast<uint64_t>(fds::reopen_flags(file.flags()) & ~O_CLOEXEC);
        uint64_t opened = TRY_CTX(injector.call("openat", SYS_openat, static_cast<uint64_t>(int64_t { AT_FDCWD }), address, flags),
                                  "fd {} ({})", entry.fd(), path);
        TRY(injector.call("dup3", SYS_dup3, opened, static_cast<uint64_t>(entry.fd()),
                          entry.close_on_exec() ? O_CLOEXEC : 0));
        TRY(injector.call("close", SYS_close, opened));
        if (file.position() != 0)
            TRY_CTX(injector.call("lseek", SYS_lseek, static_cast<uint64_t>(entry.fd()), file.position(), SEEK_SET),
                    "fd {} ({})", entry.fd(), path);
    }
    return {};
}

Result<void> morph_process(RestoreContext& context, ProcessImages& process)
{
    pid_t pid = process.entry.pid();
    auto& member = context.created->member(pid);
    auto& morphed = context.morphed.emplace_back();
    morphed.pid = pid;
    morphed.memory.emplace(TRY(ptrace::RemoteMemory::open(pid)));
    ptrace::ScratchArea scratch(*morphed.memory, context.trampoline + kTrampolineCodeSize, kScratchSize);
    auto& threads = morphed.threads;
    // Elements point into each other (injectors at tracees): no reallocation.
    threads.reserve(static_cast<size_t>(process.core.threads_size()));
    threads.push_back({ .tracee = &member.tracee, .core = &process.core.threads(0) });
    threads.front().injector.emplace(
        TRY(ptrace::Injector::create(member.tracee, context.trampoline, ptrace::Gadget::SyscallThenTrap)));
    auto& injector = *threads.front().injector;
    // Helpers this process created for process groups are dead now: reap
    // them before it becomes the program (which must not see them).
    for (pid_t helper : context.helpers_by_parent[pid])
        TRY_CTX(injector.call("wait4 helper", SYS_wait4, static_cast<uint64_t>(helper), 0, __WALL, 0), "helper {}", helper);

    mem::AddressSpaceRestore address_space;
    address_space.pid = pid;
    address_space.injector = &injector;
    address_space.memory = &*morphed.memory;
    address_space.scratch = &scratch;
    address_space.trampoline = context.trampoline;
    address_space.trampoline_size = kTrampolineSize;
    address_space.temporary_slot = context.trampoline + kTemporarySlotOffset;
    address_space.page_fd = member.child_page_fd;
    address_space.ancestor_page_fds = member.child_ancestor_page_fds;
    address_space.image = &process.memory;
    address_space.page_map = &process.page_map;
    address_space.shared_objects = &context.shared_objects;
    address_space.unlinked_files = &context.unlinked_files;
    // Private memory the restorers already prepared (copy-on-write sharing
    // with the parent, see mem/cow.h).
    address_space.materialized = &member.materialized;
    if (process.entry.ppid() != 0) {
        for (auto& parent : context.processes)
            if (parent.entry.pid() == process.entry.ppid() && parent.alive()) {
                address_space.parent_materialized = &context.created->member(parent.entry.pid()).materialized;
                address_space.parent_page_map = &parent.page_map;
            }
    }
    address_space.lazy_pages = context.options.lazy_pages;
    auto stats = TRY(mem::restore_address_space(address_space));
    context.memory_stats.bytes += stats.bytes;
    context.memory_stats.preadv_calls += stats.preadv_calls;
    // Pages left on a page server must be the lazy-pages server's to bring.
    if (context.remote)
        TRY(lazy::check_left_out(*context.remote, pid, stats.lazy_vmas));
    // Lazy restore: the userfaultfd is made now, while the process may
    // still create a full one (lazy/lazy_pages.h).
    if (!stats.lazy_vmas.empty())
        context.lazy_processes.push_back(TRY(lazy::create_lazy_process(pid, injector, std::move(stats.lazy_vmas))));
    // From here on only round trips with this process (ptrace/same_cpu.h);
    // the memory above had threads of cryo's own.
    ptrace::SameCpu beside(pid);
    // The restorer's own descriptors go in the same batch as the state.
    std::vector<ptrace::QueuedCall> closes;
    closes.push_back({ .call = { SYS_close, { static_cast<uint64_t>(member.child_page_fd), 0, 0, 0, 0, 0 }, "close page file" } });
    for (int fd : member.child_ancestor_page_fds)
        if (fd >= 0)
            closes.push_back({ .call = { SYS_close, { static_cast<uint64_t>(fd), 0, 0, 0, 0, 0 }, "close ancestor page file" } });
    closes.push_back({ .call = { SYS_close, { static_cast<uint64_t>(member.child_report_fd), 0, 0, 0, 0, 0 }, "close report pipe" } });

    StateRestore state { .pid = pid, .injector = &injector, .scratch = &scratch, .core = &process.core };
    TRY(restore_process_state(state, process.core.threads(0), std::move(closes)));
    // The other threads, created by the leader while it still has every
    // privilege (set_tid needs CAP_CHECKPOINT_RESTORE).
    for (int i = 1; i < process.core.threads_size(); ++i) {
        const auto& thread_core = process.core.threads(i);
        auto& thread = threads.emplace_back(ThreadInRestore { .core = &thread_core });
        thread.owned.emplace(TRY(create_thread(member.tracee, injector, scratch, thread_core)));
        thread.tracee = &*thread.owned;
        thread.injector.emplace(
            TRY(ptrace::Injector::create(*thread.tracee, context.trampoline, ptrace::Gadget::SyscallThenTrap)));
        StateRestore thread_state = state;
        thread_state.injector = &*thread.injector;
        TRY(restore_thread_state(thread_state, thread_core));
    }
    TRY_CTX(restore_itimers(state), "interval timers");
    return {};
}

// Last, once every process and thread of the tree exists: pidfds to them,
// then what takes privileges away (credentials, seccomp filters).
Result<void> finish_process(RestoreContext& context, ProcessImages& process, MorphedProcess& morphed)
{
    auto& threads = morphed.threads;
    auto& injector = *threads.front().injector;
    ptrace::SameCpu beside(morphed.pid);
    TRY_CTX(restore_pidfds(context, process, injector), "pidfds");
    ptrace::ScratchArea scratch(*morphed.memory, context.trampoline + kTrampolineCodeSize, kScratchSize);
    TRY_CTX(restore_proc_files(context, process, injector, scratch), "files of /proc");
    // O_ASYNC by the process itself, so signals name its fd (si_fd).
    TRY_CTX(fds::restore_async(process.fd_table, context.files, context.async_files, injector), "O_ASYNC");
    // File locks once no more fds are closed (a close drops POSIX locks).
    TRY_CTX(fds::restore_locks(process.fd_table, context.files, injector, scratch), "file locks");
    StateRestore state { .pid = morphed.pid, .injector = &injector, .scratch = &scratch, .core = &process.core };
    for (auto& thread : threads) {
        StateRestore thread_state = state;
        thread_state.injector = &*thread.injector;
        TRY_CTX(restore_credentials(thread_state, *thread.core), "thread {}: credentials", thread.core->tid());
    }
    for (auto& thread : threads) {
        StateRestore thread_state = state;
        thread_state.injector = &*thread.injector;
        TRY(restore_seccomp(thread_state, *thread.core));
    }
    return {};
}

Result<void> set_final_registers(ptrace::Tracee& tracee, const image::ThreadCore& thread)
{
    auto registers = ptrace::registers_from_image(thread.registers());
    registers.orig_rax = static_cast<uint64_t>(-1);  // no syscall restart on the way out
    TRY(tracee.set_registers(registers));
    TRY(tracee.set_xstate(thread.xstate()));
    TRY(tracee.set_signal_mask(thread.blocked_signals()));
    return {};
}

// Sends each process that was in a job-control stop when dumped its stop
// signal again. Its threads are still traced and stopped, so the signal
// stays pending until they are detached; it is then taken untraced, on the
// way back to user space, and stops the whole process as before (and the
// signal is consumed: no extra pending signal remains).
Result<void> stop_again(RestoreContext& context)
{
    auto morphed = context.morphed.begin();
    for (const auto& process : context.processes) {
        if (!process.alive())
            continue;
        pid_t pid = (morphed++)->pid;
        if (int signal = process.entry.stop_signal(); signal != 0)
            TRY_CTX(signal_process(pid, signal), "pid {}: stop it again (it was stopped when dumped)", pid);
    }
    return {};
}

// A leader that had exited when dumped (image::ThreadCore.exited) exits
// again once released, by the syscall instruction of the vDSO its
// registers point at: checked here, since another kernel's vDSO may hold
// something else there.
Result<void> check_exit_instruction(const ptrace::RemoteMemory& memory, const image::ThreadCore& leader)
{
    uint64_t address = leader.registers().rip();
    auto code = TRY(memory.read_value<uint16_t>(address));
    if (code != 0x050f)
        return fail("no syscall instruction at {:#x} in the vDSO any more (another kernel?): cannot make the leader, "
                    "which had exited, exit again", address);
    return {};
}

// Once released, a leader that had exited when dumped runs nothing but its
// exit: waited for, so that when cryo returns the process is as it was
// dumped, a zombie leader with live threads (a stopped process's leader
// exits only once the process is continued).
void wait_for_exited_leaders(RestoreContext& context)
{
    auto morphed = context.morphed.begin();
    for (const auto& process : context.processes) {
        if (!process.alive())
            continue;
        const auto& restored = *morphed++;
        if (!restored.threads.front().core->exited() || process.entry.stop_signal() != 0)
            continue;
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (auto stat = proc::read_stat(restored.pid); stat && stat->state != 'Z' && stat->state != 'X';
             stat = proc::read_stat(restored.pid)) {
            if (std::chrono::steady_clock::now() > deadline) {
                spdlog::warn("pid {}: its leader, which had exited when dumped, has not exited again within 10 s",
                             restored.pid);
                break;
            }
            ::usleep(1000);
        }
    }
}

// Points every thread at its saved registers, then lets them all go. Each
// trampoline is unmapped by its leader's last injected call, in a
// syscall-exit stop, so no instruction of cryo's runs in a process after it.
Result<void> release_all(RestoreContext& context)
{
    for (auto& process : context.morphed) {
        auto& threads = process.threads;
        for (size_t i = 1; i < threads.size(); ++i)
            TRY_CTX(set_final_registers(*threads[i].tracee, *threads[i].core), "thread {}", threads[i].core->tid());
        auto& leader = threads.front();
        if (leader.core->exited())
            TRY_CTX(check_exit_instruction(*process.memory, *leader.core), "pid {}", process.pid);
        long unmapped = TRY(leader.injector->call_to_exit_stop(
            SYS_munmap, { context.trampoline, kTrampolineSize, 0, 0, 0, 0 }));
        if (unmapped != 0 && leader.core->seccomp_filters_size() > 0)
            spdlog::warn("pid {}: its seccomp filter refused munmap of the trampoline ({}); the page stays mapped",
                         process.pid, std::strerror(static_cast<int>(-unmapped)));
        else if (unmapped != 0)
            return fail_errno(fmt::format("pid {}: munmap of the trampoline", process.pid), static_cast<int>(-unmapped));
        TRY_CTX(set_final_registers(*leader.tracee, *leader.core), "pid {}", process.pid);
    }
    TRY(stop_again(context));
    for (auto& process : context.morphed)
        for (auto& thread : process.threads)
            TRY(thread.tracee->detach());
    wait_for_exited_leaders(context);
    return {};
}

Result<void> write_pidfile(const std::string& path, pid_t pid)
{
    auto fd = TRY(open_file(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    return write_all(fd.get(), fmt::format("{}\n", pid), path);
}

// Waits for the root; cryo is a child subreaper, so orphans of the tree
// that land on it are reaped along the way.
Result<int> wait_for(pid_t root)
{
    for (;;) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            return fail_errno(fmt::format("waitpid restored pid {}", root));
        }
        if (pid != root)
            continue;
        if (WIFEXITED(status))
            return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
    }
}

using Clock = std::chrono::steady_clock;

double milliseconds_since(Clock::time_point start)
{
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Runs one pass and records how long it took under `name`.
template <typename Pass>
Result<void> timed(image::RestoreStats& stats, const char* name, Pass&& pass)
{
    TRY(fault::step([&] { return fmt::format("phase {}", name); }));
    auto start = Clock::now();
    auto result = pass();
    auto* phase = stats.add_phases();
    phase->set_name(name);
    phase->set_ms(milliseconds_since(start));
    return result;
}

std::string format_restore_stats(const image::RestoreStats& stats)
{
    std::string text = fmt::format("{:<28}{:>12}\n", "phase", "ms");
    for (const auto& phase : stats.phases())
        text += fmt::format("{:<28}{:>12.1f}\n", phase.name(), phase.ms());
    text += fmt::format("{:<28}{:>12.1f}\n", "total", stats.total_ms());
    text += fmt::format("{:<28}{:>12}\n", "processes", stats.processes());
    text += fmt::format("{:<28}{:>12.1f}\n", "page data (MiB)", static_cast<double>(stats.page_bytes()) / (1 << 20));
    text += fmt::format("{:<28}{:>12}\n", "page reads", stats.page_reads());
    if (stats.total_ms() > 0)
        text += fmt::format("{:<28}{:>12.1f}\n", "page throughput (MiB/s)",
                            static_cast<double>(stats.page_bytes()) / (1 << 20) / (stats.total_ms() / 1000));
    return text;
}

// Best effort: the checkpoint may be on read-only storage.
void save_restore_stats(const std::string& directory, const image::RestoreStats& stats)
{
    auto bytes = image::encode_image(image::ImageKind::Stats, stats);
    std::string path = directory + "/" + std::string(image::kRestoreStatsName);
    auto fd = bytes ? open_file(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600) : Result<UniqueFd>();
    if (!bytes || !fd || !write_all(fd->get(), *bytes, path))
        spdlog::debug("the restore statistics were not saved in {}", directory);
}

// After a failed restore, once NewTree killed the tree: processes of it
// that died after their parent (the image's zombies, children whose death
// cryo collected as their tracer, helpers) came to cryo, the sub-reaper, as
// zombies. Reap them (and kill any still alive), so that nothing of the tree
// outlives cryo, not even a zombie. Only pids of the plan are touched.
void reap_leftovers(const RestoreContext& context)
{
    std::set<pid_t> planned;
    for (const auto& process : context.processes)
        planned.insert(process.entry.pid());
    for (const auto& helper : context.helpers)
        planned.insert(helper.pid());
    for (int round = 0; round < 500; ++round) {
        auto children = proc::list_process_children(::getpid());
        bool left = false;
        for (pid_t child : children ? *children : std::vector<pid_t> {}) {
            if (!planned.contains(child))
                continue;
            kill_quietly(child);
            if (::waitpid(child, nullptr, WNOHANG | __WALL) != child)
                left = true;
        }
        if (!left)
            return;
        ::usleep(10'000);
    }
    spdlog::warn("processes of the failed restore are still there");
}

} // namespace

Result<int> run_restore(const RestoreOptions& options)
{
    auto started = Clock::now();
    RestoreContext context { .options = options };
    // Unless the tree is released: kill it (MorphedProcess collects the
    // threads cryo created, NewTree kills and reaps the processes), then
    // reap what came back to cryo.
    ScopeGuard clean_up_on_failure([&] {
        context.morphed.clear();
        context.created.reset();
        reap_leftovers(context);
    });
    image::RestoreStats stats;
    // Orphans of a failed restore come back to cryo, which reaps them.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);

    // From another host: the checkpoint but for its lazy pages.
    if (options.page_server)
        TRY(timed(stats, "fetch from page server", [&]() -> Result<void> {
            if (!options.lazy_pages)
                return fail("--page-server needs --lazy-pages (or restore what `cryo page-server` received)");
            context.remote.emplace(TRY(lazy::fetch_checkpoint(*options.page_server, options.directory)));
            return {};
        }));
    // Refuse a damaged checkpoint before anything is created.
    TRY(timed(stats, "verify", [&] { return open_and_verify(context); }));
    TRY(timed(stats, "read images", [&] { return read_images(context); }));
    // Credentials and privileged steps next, before any file is opened.
    TRY(timed(stats, "check privileges", [&] { return check_privileges(context); }));
    // The page files are verified as they are read into memory.
    TRY(timed(stats, "verify and load pages", [&] { return load_pages(context); }));
    // Files next: a missing file is a clear error while nothing exists yet.
    // Files the processes map must be the ones they mapped.
    TRY(timed(stats, "open files", [&]() -> Result<void> {
        if (options.check_files)
            TRY(check_mapped_files(context));
        fds::OpenOptions open_options { .use_own_terminal = options.shell_job,
                                        .check_files = options.check_files,
                                        .tcp_established = options.tcp_established };
        for (const auto& text : options.inherit_fds) {
            auto [fd, id] = TRY(fds::parse_inherit_fd(text));
            open_options.inherited[id] = fd;
        }
        // Removed working directories before the files: an open file of
        // one is opened from it.
        std::vector<const image::ProcessCore*> cores;
        for (const auto& process : context.processes)
            if (process.alive())
                cores.push_back(&process.core);
        context.deleted_directories.emplace(TRY(DeletedDirectories::create(cores)));
        open_options.shared = context.deleted_directories->held();
        open_options.tree_ids = tree_ids(context);
        context.opened_files = TRY(fds::open_files(context.files, open_options));
        return {};
    }));
    // Each cgroup is found, or made, while nothing exists yet.
    TRY(timed(stats, "find cgroups", [&]() -> Result<void> {
        std::vector<std::pair<pid_t, std::string>> wanted;
        for (const auto& process : context.processes)
            if (process.alive() && !options.skip_cgroups)
                wanted.emplace_back(process.entry.pid(), process.entry.cgroup());
        context.cgroups = TRY(CgroupPlan::prepare(wanted));
        return {};
    }));
    // The UTS and IPC namespaces, filled before any process enters them.
    TRY(timed(stats, "namespaces", [&]() -> Result<void> {
        context.namespaces.emplace(TRY(ns::NamespaceSet::create(context.tree)));
        return {};
    }));
    // Create the tree; until released, any failure kills every process of it
    // (NewTree's destructor).
    TRY(timed(stats, "create the tree", [&] { return plan_and_create(context); }));
    // Into their cgroups before any code of theirs runs (threads come later
    // and inherit it).
    TRY(timed(stats, "join cgroups", [&] { return context.cgroups.apply(); }));
    TRY(timed(stats, "memory and state", [&]() -> Result<void> {
        for (auto& process : context.processes)
            if (process.alive())
                TRY_CTX(morph_process(context, process), "pid {}", process.entry.pid());
        // Every System V attachment is back: segments removed while
        // attached are marked removed again.
        return context.namespaces->remove_destroyed_segments(context.tree);
    }));
    TRY(timed(stats, "pidfds, credentials, seccomp", [&]() -> Result<void> {
        // Owners of open files (F_SETOWN_EX) are processes of the tree: all exist now.
        TRY_CTX(fds::restore_owners(context.files, context.opened_files), "file owners");
        // context.morphed holds the live processes in the same order.
        auto morphed = context.morphed.begin();
        for (auto& process : context.processes)
            if (process.alive())
                TRY_CTX(finish_process(context, process, *morphed++), "pid {}", process.entry.pid());
        return {};
    }));
    // Lazy restore: the memory left out is registered now that no step
    // touches it any more, and the server must answer faults from the
    // first instruction on; started before the release, so that a failure
    // to start it still kills the tree.
    if (!context.lazy_processes.empty())
        TRY(timed(stats, "start lazy-pages server", [&]() -> Result<void> {
            std::vector<int> files;
            std::map<int, std::string> names;   // page file descriptors by their name on the page server
            // (ancestors' as fetched into -D: image/chain.h, lazy/remote.h)
            for (const auto& process : context.processes) {
                if (!process.alive())
                    continue;
                names[process.page_file.get()] = process.page_map.page_file();
                const auto& ancestors = process.ancestor_page_files.files;
                for (size_t index = 0; index < ancestors.size(); ++index)
                    if (ancestors[index])
                        names[ancestors[index].get()] = fmt::format("{}/{}", image::fetched_ancestor_path(index + 1),
                                                                    process.page_map.page_file());
            }
            lazy::PageSource source = options.page_server ? lazy::PageSource(*options.page_server, std::move(names))
                                                          : lazy::PageSource();
            for (auto& [path, file] : context.chunked_files)
                source.check_chunks(file.fd, path, *file.record, std::move(file.verified));
            for (const auto& process : context.processes) {
                files.push_back(process.page_file.get());
                std::vector<int> ancestor_fds;
                for (const auto& file : process.ancestor_page_files.files)
                    ancestor_fds.push_back(file.get());
                files.insert(files.end(), ancestor_fds.begin(), ancestor_fds.end());
                for (auto& lazy : context.lazy_processes)
                    if (lazy.pid == process.entry.pid())
                        TRY(lazy::arm_lazy_process(lazy, process.memory, process.page_map, process.page_file.get(),
                                                   ancestor_fds, source));
            }
            pid_t server = TRY(lazy::spawn_lazy_server(context.lazy_processes, files, source, options.directory,
                                                       options.lazy_pages_command));
            spdlog::info("lazy-pages server pid {} serves {} processes (log: {}/lazy-pages.log){}", server,
                         context.lazy_processes.size(), options.directory,
                         source.remote() ? fmt::format(", after {} fetches from the page server", source.requests()) : "");
            context.lazy_processes.clear();
            context.lazy_server = server;
            return {};
        }));
    TRY(timed(stats, "release", [&] { return release_all(context); }));
    context.created->release();
    context.namespaces->keep_segments();
    clean_up_on_failure.dismiss();
    // Nothing was left to a lazy-pages server: the page server hears from
    // cryo that the tree runs with every page.
    if (options.page_server && context.lazy_server == 0) {
        (void)options.page_server->announce_running();
        (void)options.page_server->finish("");
    }
    if (options.lazy_pages_command >= 0)
        lazy::tell_restored(options.lazy_pages_command, context.lazy_server);
    pid_t root = context.created->root();
    // cryo's copies of the tree's files go now: a foreground restore must
    // not keep a pipe's write end or a pty master open while it waits.
    context.opened_files.clear();

    stats.set_total_ms(milliseconds_since(started));
    stats.set_processes(static_cast<uint32_t>(context.processes.size()));
    stats.set_page_bytes(context.memory_stats.bytes);
    stats.set_page_reads(context.memory_stats.preadv_calls);
    spdlog::info("restored the tree of pid {} ({} processes, {} MiB of pages in {} reads) from {} in {:.1f} ms", root,
                 context.processes.size(), context.memory_stats.bytes >> 20, context.memory_stats.preadv_calls,
                 options.directory, stats.total_ms());
    save_restore_stats(options.directory, stats);
    if (options.display_stats)
        fmt::print("{}", format_restore_stats(stats));
    // The pidfile is written once the tree runs: whoever waits for it may
    // signal the process right away.
    if (!options.pidfile.empty())
        TRY(write_pidfile(options.pidfile, root));
    if (options.detach)
        return 0;
    return wait_for(root);
}

} // namespace cryo::restore
