// `cryo show`: everything is read through the same checked reader as a
// restore (manifest, checksums, headers) into one Report (proto/report.proto),
// which is printed either as JSON (a stable document for scripts) or as
// text: the checkpoint's facts, the tree drawn with its parents, sessions
// and groups, and per process its command line, credentials, threads,
// memory map (protection, backing, stored bytes) and descriptors with their
// open files and which other fds share them; then the dump's statistics.
#include "inspect/show.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <google/protobuf/util/json_util.h>

#include <ctime>
#include <functional>
#include <map>
#include <set>

#include "core.pb.h"
#include "fds.pb.h"
#include "base/syscalls.h"
#include "image/chain.h"
#include "fds/inet_socket.h"
#include "image/reader.h"
#include "mm.pb.h"
#include "ns/namespaces.h"
#include "report.pb.h"
#include "stats.pb.h"
#include "tree.pb.h"

namespace cryo::inspect {

namespace {

std::string protection(uint32_t prot)
{
    return fmt::format("{}{}{}", prot & PROT_READ ? 'r' : '-', prot & PROT_WRITE ? 'w' : '-', prot & PROT_EXEC ? 'x' : '-');
}

std::string describe_file(const image::OpenFile& file)
{
    if (!file.external().empty())
        return fmt::format("external {} (restore needs --inherit-fd fd[N]:{})", file.external(), file.external());
    switch (file.kind()) {
    case image::FILE_KIND_REGULAR:
        return fmt::format("file {} (pos {}, flags {:o})", file.regular().path(), file.position(), file.flags());
    case image::FILE_KIND_DIRECTORY:
        return fmt::format("directory {}", file.regular().path());
    case image::FILE_KIND_CHAR_DEVICE:
        return fmt::format("device {} ({}:{})", file.char_device().path(), file.char_device().rdev_major(),
                           file.char_device().rdev_minor());
    case image::FILE_KIND_PIPE:
        return fmt::format("{} pipe:[{}]{}", file.pipe().write_end() ? "write end of" : "read end of",
                           file.pipe().pipe_id(), file.pipe().fifo_path().empty() ? "" : " FIFO " + file.pipe().fifo_path());
    case image::FILE_KIND_GHOST:
        return fmt::format("deleted file {} ({} bytes, pos {}, flags {:o})", file.ghost().path(), file.ghost().size(),
                           file.position(), file.flags());
    case image::FILE_KIND_EVENTFD:
        return fmt::format("eventfd (count {}{})", file.eventfd().count(), file.eventfd().semaphore() ? ", semaphore" : "");
    case image::FILE_KIND_UNIX_SOCKET: {
        std::vector<uint32_t> in_flight;
        for (const auto& message : file.unix_socket().queued_fds())
            in_flight.insert(in_flight.end(), message.file_ids().begin(), message.file_ids().end());
        std::string carrying =
            in_flight.empty() ? "" : fmt::format(", carrying file ids {} in flight", fmt::join(in_flight, ", "));
        return fmt::format("unix socket:[{}] peer {} ({} queued messages{})", file.unix_socket().inode(),
                           file.unix_socket().peer_inode(), file.unix_socket().queued_size(), carrying);
    }
    case image::FILE_KIND_EPOLL:
        return fmt::format("epoll ({} registrations)", file.epoll().targets_size());
    case image::FILE_KIND_PTY:
        if (!file.pty().master())
            return fmt::format("pty slave /dev/pts/{}", file.pty().index());
        return fmt::format("pty master of /dev/pts/{} ({}x{}{}{}{})", file.pty().index(), file.pty().window_size().rows(),
                           file.pty().window_size().cols(), file.pty().packet_mode() ? ", packet mode" : "",
                           file.pty().locked() ? ", locked" : "",
                           file.pty().session() ? fmt::format(", terminal of session {}", file.pty().session()) : "");
    case image::FILE_KIND_PIDFD:
        if (file.pidfd().dead())
            return fmt::format("pidfd of a process that had died (wait status {:#x})", file.pidfd().exit_status());
        return fmt::format("pidfd of {} {}", file.pidfd().thread() ? "thread" : "pid", file.pidfd().pid());
    case image::FILE_KIND_MEMFD:
        return fmt::format("memfd:{} (pos {}, flags {:o})", file.memfd().name(), file.position(), file.flags());
    case image::FILE_KIND_SECRET_MEMORY:
        return fmt::format("memfd_secret ({} bytes)", file.secret_memory().size());
    case image::FILE_KIND_INET_SOCKET:
        return fds::describe_inet_socket(file.inet_socket());
    default:
        return fmt::format("{} (flags {:o})", image::FileKind_Name(file.kind()), file.flags());
    }
}


std::string when(uint64_t unix_ns)
{
    time_t seconds = static_cast<time_t>(unix_ns / 1'000'000'000);
    char text[64] = "";
    std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&seconds));
    return text;
}

// Reads the images of one process into `process`.
Result<void> fill_process(const image::ImageReader& reader, const image::ProcessEntry& entry, const ShowOptions& options,
                          const std::map<uint32_t, const image::OpenFile*>& files,
                          const std::map<uint32_t, std::vector<std::string>>& holders, report::Process& process)
{
    pid_t pid = entry.pid();
    process.set_pid(pid);
    process.set_ppid(entry.ppid());
    process.set_pgid(entry.pgid());
    process.set_sid(entry.sid());
    process.set_comm(entry.comm());
    for (int ns_pid : entry.ns_pids())
        process.add_ns_pids(ns_pid);
    if (entry.state() == image::PROCESS_STATE_ZOMBIE) {
        process.set_state("zombie");
        process.set_exit_status(entry.exit_status());
        return {};
    }
    process.set_state("alive");
    auto core = TRY(reader.read<image::ProcessCore>(image::core_name(pid), image::ImageKind::Core));
    auto memory = TRY(reader.read<image::MemoryImage>(image::memory_name(pid), image::ImageKind::Memory));
    auto fds = TRY(reader.read<image::FdTable>(image::fdtable_name(pid), image::ImageKind::FdTable));
    *process.mutable_cmdline() = core.cmdline();
    if (options.environment)
        *process.mutable_environ() = core.environ();
    for (const auto& thread : core.threads()) {
        auto* out = process.add_threads();
        out->set_tid(thread.tid());
        out->set_comm(thread.comm());
    }
    *process.mutable_uids() = core.credentials().uids();
    *process.mutable_gids() = core.credentials().gids();
    process.set_cwd(core.cwd());
    process.set_root(core.root());
    process.set_exe(memory.fields().exe_path());
    for (const auto& vma : memory.vmas()) {
        auto* mapping = process.add_mappings();
        mapping->set_start(vma.start());
        mapping->set_end(vma.end());
        mapping->set_protection(protection(vma.prot()) + (vma.shared() ? "s" : "p"));
        mapping->set_kind(image::VmaKind_Name(vma.kind()));
        mapping->set_path(vma.path());
        mapping->set_offset(vma.pgoff());
        mapping->set_size(vma.end() - vma.start());
        mapping->set_stored_bytes(vma.stored_bytes());
        process.set_mapped_bytes(process.mapped_bytes() + vma.end() - vma.start());
        process.set_stored_bytes(process.stored_bytes() + vma.stored_bytes());
    }
    for (const auto& fd : fds.fds()) {
        auto* descriptor = process.add_descriptors();
        descriptor->set_fd(fd.fd());
        descriptor->set_file_id(fd.file_id());
        descriptor->set_close_on_exec(fd.close_on_exec());
        auto found = files.find(fd.file_id());
        if (found == files.end()) {
            descriptor->set_description("? (not in files.img)");
            continue;
        }
        const auto& file = *found->second;
        descriptor->set_kind(image::FileKind_Name(file.kind()));
        descriptor->set_description(describe_file(file));
        descriptor->set_position(file.position());
        descriptor->set_flags(fmt::format("{:o}", file.flags()));
        descriptor->set_external(file.external());
        std::string self = fmt::format("{}:{}", pid, fd.fd());
        for (const auto& holder : holders.at(fd.file_id()))
            if (holder != self)
                descriptor->add_shared_with(holder);
    }
    return {};
}

// Bytes of the page files (pages-*.img) of a checkpoint: their size, and
// the disk they use (st_blocks: what `cryo dedup` frees).
std::pair<uint64_t, uint64_t> page_file_bytes(const image::ImageReader& reader)
{
    uint64_t size = 0, disk = 0;
    for (const auto& file : reader.manifest().files()) {
        if (!file.name().starts_with("pages-"))
            continue;
        size += file.size();
        struct stat st;
        if (::fstatat(reader.directory_fd(), file.name().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
            disk += static_cast<uint64_t>(st.st_blocks) * 512;
    }
    return { size, disk };
}

// Where the memory of an incremental checkpoint is: how much of it each
// process's page map has here and in ancestors, and each ancestor (the
// whole chain verified as a restore verifies it; a chain that cannot be
// used is reported, not fatal). Returns the bytes in ancestors per pid.
Result<std::map<int, uint64_t>> add_memory_chain(const image::ImageReader& reader, report::Checkpoint& checkpoint)
{
    const auto& manifest = reader.manifest();
    checkpoint.set_deduped_by(manifest.deduped_by());
    std::map<int, uint64_t> in_ancestors;
    std::vector<uint64_t> per_ancestor;
    auto tree = TRY(reader.read<image::ProcessTree>(std::string(image::kTreeName), image::ImageKind::Tree));
    for (const auto& entry : tree.processes()) {
        if (!reader.has_file(image::pagemap_name(entry.pid())))
            continue;
        auto map = TRY(reader.read<image::PageMap>(image::pagemap_name(entry.pid()), image::ImageKind::PageMap));
        for (const auto& run : map.runs()) {
            uint64_t bytes = run.page_count() * kPageSize;
            if (run.ancestor() == 0) {
                checkpoint.set_pages_here_bytes(checkpoint.pages_here_bytes() + bytes);
                continue;
            }
            checkpoint.set_pages_in_ancestors_bytes(checkpoint.pages_in_ancestors_bytes() + bytes);
            in_ancestors[entry.pid()] += bytes;
            if (per_ancestor.size() < run.ancestor())
                per_ancestor.resize(std::min<size_t>(run.ancestor(), image::kMaxChainDepth));
            if (run.ancestor() <= per_ancestor.size())
                per_ancestor[run.ancestor() - 1] += bytes;
        }
    }
    if (manifest.parent().empty())
        return in_ancestors;
    auto chain = image::ParentChain::open(reader.directory(), manifest);
    if (!chain) {
        checkpoint.set_chain_error(chain.error().message());
        return in_ancestors;
    }
    for (size_t n = 1; n <= chain->depth(); ++n) {
        const auto& ancestor = chain->ancestor(n);
        auto* out = checkpoint.add_ancestors();
        out->set_directory(ancestor.directory());
        out->set_pre_dump(ancestor.manifest().pre_dump());
        out->set_deduped_by(ancestor.manifest().deduped_by());
        out->set_referenced_bytes(n <= per_ancestor.size() ? per_ancestor[n - 1] : 0);
        auto [size, disk] = page_file_bytes(ancestor);
        out->set_page_file_bytes(size);
        out->set_page_file_disk_bytes(disk);
    }
    return in_ancestors;
}

Result<report::Report> build_report(const ShowOptions& options)
{
    report::Report report;
    auto reader = TRY(image::ImageReader::open(options.directory, options.key ? &*options.key : nullptr));
    TRY(reader.verify());
    const auto& manifest = reader.manifest();
    auto* checkpoint = report.mutable_checkpoint();
    checkpoint->set_directory(options.directory);
    checkpoint->set_format_version(manifest.format_version());
    checkpoint->set_tool_version(manifest.tool_version());
    checkpoint->set_hostname(manifest.hostname());
    checkpoint->set_kernel_release(manifest.kernel_release());
    checkpoint->set_created_unix_ns(manifest.created_unix_ns());
    checkpoint->set_created(when(manifest.created_unix_ns()));
    checkpoint->set_file_count(static_cast<uint32_t>(manifest.files_size()));
    for (const auto& file : manifest.files())
        checkpoint->set_total_bytes(checkpoint->total_bytes() + file.size());
    checkpoint->set_checksums_verified(true);
    checkpoint->set_root_pid(manifest.root_pid());
    checkpoint->set_parent(manifest.parent());
    checkpoint->set_pre_dump(manifest.pre_dump());
    auto in_ancestors = TRY(add_memory_chain(reader, *checkpoint));
    // A pre-dump holds memory only: no processes to describe.
    if (manifest.pre_dump())
        return report;

    auto tree = TRY(reader.read<image::ProcessTree>(std::string(image::kTreeName), image::ImageKind::Tree));
    // A pid listed twice would make the drawn tree loop (restore refuses
    // it as well).
    std::set<int> pids;
    for (const auto& entry : tree.processes())
        if (!pids.insert(entry.pid()).second)
            return fail("{}/{}: pid {} is listed twice", options.directory, image::kTreeName, entry.pid());
    for (const auto& saved : tree.namespaces())
        report.add_namespaces(ns::describe_namespace(saved, tree));
    auto files = TRY(reader.read<image::FileTable>(std::string(image::kFileTableName), image::ImageKind::FileTable));
    std::map<uint32_t, const image::OpenFile*> files_by_id;
    for (const auto& file : files.files())
        files_by_id[file.id()] = &file;
    // Every "pid:fd" of each open file, for "shared with".
    std::map<uint32_t, std::vector<std::string>> holders;
    for (const auto& entry : tree.processes()) {
        if (entry.state() == image::PROCESS_STATE_ZOMBIE)
            continue;
        auto fds = TRY(reader.read<image::FdTable>(image::fdtable_name(entry.pid()), image::ImageKind::FdTable));
        for (const auto& fd : fds.fds())
            holders[fd.file_id()].push_back(fmt::format("{}:{}", entry.pid(), fd.fd()));
    }
    bool found = options.pid == 0;
    for (const auto& entry : tree.processes()) {
        if (options.pid != 0 && entry.pid() != options.pid)
            continue;
        found = true;
        TRY(fill_process(reader, entry, options, files_by_id, holders, *report.add_processes()));
    }
    if (!found)
        return fail("{}: no process {} in this checkpoint", options.directory, options.pid);
    for (auto& process : *report.mutable_processes())
        if (auto bytes = in_ancestors.find(process.pid()); bytes != in_ancestors.end())
            process.set_stored_in_ancestors_bytes(bytes->second);
    if (reader.has_file(std::string(image::kDumpStatsName)))
        *report.mutable_dump_stats()
            = TRY(reader.read<image::DumpStats>(std::string(image::kDumpStatsName), image::ImageKind::Stats));
    // Not under the manifest (written by a restore): read but not trusted
    // beyond its own header checksum.
    std::string restore_stats = options.directory + "/" + std::string(image::kRestoreStatsName);
    if (auto bytes = read_text_file(restore_stats); bytes) {
        image::RestoreStats stats;
        if (image::decode_image(*bytes, image::ImageKind::Stats, stats))
            *report.mutable_restore_stats() = std::move(stats);
    }
    return report;
}

std::string size_text(uint64_t bytes)
{
    if (bytes >= (1ull << 30))
        return fmt::format("{:.1f}G", static_cast<double>(bytes) / (1ull << 30));
    if (bytes >= (1ull << 20))
        return fmt::format("{:.1f}M", static_cast<double>(bytes) / (1ull << 20));
    if (bytes >= 1024)
        return fmt::format("{:.0f}K", static_cast<double>(bytes) / 1024);
    return fmt::format("{}", bytes);
}

std::string joined(const google::protobuf::RepeatedPtrField<std::string>& words)
{
    std::string text;
    for (const auto& word : words)
        text += (text.empty() ? "" : " ") + word;
    return text;
}

void print_tree(const report::Report& report)
{
    std::map<int, std::vector<const report::Process*>> children;
    std::set<int> listed;
    for (const auto& process : report.processes())
        listed.insert(process.pid());
    for (const auto& process : report.processes())
        children[listed.contains(process.ppid()) ? process.ppid() : 0].push_back(&process);
    fmt::print("tree:\n");
    // Depth first, with a stack of its own: a hostile tree.img may chain a
    // million zombies. Pids are unique (build_report), so no cycle is
    // reachable from a root. Past kMaxIndent levels the indentation stops
    // growing, so the output stays linear in the number of processes.
    constexpr size_t kMaxIndent = 32;
    struct Pending {
        const report::Process* process;
        std::string prefix;
        size_t depth;
        bool last;
        bool top;
    };
    std::vector<Pending> stack;
    const auto& roots = children[0];
    for (size_t i = roots.size(); i-- > 0;)
        stack.push_back({ roots[i], "", 0, true, true });
    while (!stack.empty()) {
        Pending pending = std::move(stack.back());
        stack.pop_back();
        const auto& process = *pending.process;
        std::string branch = pending.top ? "" : (pending.last ? "└─ " : "├─ ");
        std::string command = process.cmdline_size() ? joined(process.cmdline()) : process.comm();
        if (command.size() > 60)
            command = command.substr(0, 57) + "...";
        fmt::print("  {}{}{} {}  [{}] pgid {} sid {}{}{}\n", pending.prefix, branch, process.pid(), command, process.comm(),
                   process.pgid(), process.sid(),
                   process.threads_size() > 1 ? fmt::format("  {} threads", process.threads_size()) : "",
                   process.state() == "zombie" ? fmt::format("  (zombie, status {:#x})", process.exit_status()) : "");
        std::string prefix = pending.top || pending.depth >= kMaxIndent ? pending.prefix
                                                                           : pending.prefix + (pending.last ? "   " : "│  ");
        const auto& mine = children[process.pid()];
        for (size_t i = mine.size(); i-- > 0;)
            stack.push_back({ mine[i], prefix, pending.depth + 1, i + 1 == mine.size(), false });
    }
}

void print_process(const report::Process& process, const ShowOptions& options)
{
    fmt::print("\nprocess {} ({}){}\n", process.pid(), process.comm(), process.state() == "zombie" ? ", zombie" : "");
    if (process.state() == "zombie")
        return;
    bool all = !options.files && !options.memory;
    if (all || options.environment) {
        fmt::print("  command: {}\n  exe {}  cwd {}{}\n", joined(process.cmdline()), process.exe(), process.cwd(),
                   process.root().empty() || process.root() == "/" ? "" : "  root " + process.root());
        fmt::print("  uid {}  gid {}  threads:", fmt::join(process.uids(), "/"), fmt::join(process.gids(), "/"));
        for (const auto& thread : process.threads())
            fmt::print(" {} ({})", thread.tid(), thread.comm());
        fmt::print("\n");
    }
    if (options.environment) {
        fmt::print("  environment:\n");
        for (const auto& variable : process.environ())
            fmt::print("    {}\n", variable);
    }
    if (all || options.memory) {
        fmt::print("  memory: {} mappings, {} mapped, {} stored{}\n", process.mappings_size(),
                   size_text(process.mapped_bytes()), size_text(process.stored_bytes()),
                   process.stored_in_ancestors_bytes() == 0
                       ? ""
                       : fmt::format(" ({} here, {} in ancestors)",
                                     size_text(process.stored_bytes() - std::min(process.stored_bytes(),
                                                                                  process.stored_in_ancestors_bytes())),
                                     size_text(process.stored_in_ancestors_bytes())));
        fmt::print("    {:<25} {:<4} {:>8} {:>8}  {}\n", "range", "prot", "size", "stored", "backing");
        for (const auto& mapping : process.mappings())
            fmt::print("    {:012x}-{:012x} {:<4} {:>8} {:>8}  {}\n", mapping.start(), mapping.end(), mapping.protection(),
                       size_text(mapping.size()), size_text(mapping.stored_bytes()), mapping.path());
    }
    if (all || options.files) {
        fmt::print("  descriptors:\n");
        for (const auto& fd : process.descriptors())
            fmt::print("    {:>4}{} {}{}\n", fd.fd(), fd.close_on_exec() ? "*" : " ", fd.description(),
                       fd.shared_with_size() ? fmt::format("  (shared with {})", fmt::join(fd.shared_with(), ", ")) : "");
    }
}

// Where an incremental checkpoint's pages are, and a deduplicated one's state.
void print_chain(const report::Checkpoint& checkpoint)
{
    if (!checkpoint.deduped_by().empty())
        fmt::print("deduplicated for {} (cryo dedup): pages that checkpoint stores itself were punched out here; "
                   "not restorable itself\n", checkpoint.deduped_by());
    if (checkpoint.parent().empty() && !checkpoint.pre_dump())
        return;
    fmt::print("memory: {} stored here, {} in ancestors\n", size_text(checkpoint.pages_here_bytes()),
               size_text(checkpoint.pages_in_ancestors_bytes()));
    if (!checkpoint.chain_error().empty())
        fmt::print("chain: NOT usable: {}\n", checkpoint.chain_error());
    for (int i = 0; i < checkpoint.ancestors_size(); ++i) {
        const auto& ancestor = checkpoint.ancestors(i);
        fmt::print("  ancestor {} {}{}{}: {} of this checkpoint's pages; page files {} ({} on disk)\n", i + 1,
                   ancestor.directory(), ancestor.pre_dump() ? " (pre-dump)" : "",
                   ancestor.deduped_by().empty() ? "" : " (deduplicated)", size_text(ancestor.referenced_bytes()),
                   size_text(ancestor.page_file_bytes()), size_text(ancestor.page_file_disk_bytes()));
    }
}

void print_stats(const report::Report& report)
{
    if (report.has_dump_stats()) {
        const auto& stats = report.dump_stats();
        fmt::print("\ndump statistics: frozen {:.1f} ms, total {:.1f} ms; {} pages scanned, {} stored, {} skipped\n",
                   stats.frozen_ms(), stats.total_ms(), stats.pages_scanned(), stats.pages_stored(), stats.pages_skipped());
        for (const auto& phase : stats.phases())
            fmt::print("  {:<28}{:>10.1f} ms\n", phase.name(), phase.ms());
    }
    if (report.has_restore_stats()) {
        const auto& stats = report.restore_stats();
        fmt::print("\nlast restore: total {:.1f} ms, {} of pages in {} reads\n", stats.total_ms(),
                   size_text(stats.page_bytes()), stats.page_reads());
        for (const auto& phase : stats.phases())
            fmt::print("  {:<28}{:>10.1f} ms\n", phase.name(), phase.ms());
    }
}

} // namespace

Result<void> run_show(const ShowOptions& options)
{
    auto report = TRY(build_report(options));
    if (options.format == "json") {
        std::string json;
        google::protobuf::util::JsonPrintOptions print;
        print.add_whitespace = true;
        print.always_print_primitive_fields = true;
        print.preserve_proto_field_names = true;
        auto status = google::protobuf::util::MessageToJsonString(report, &json, print);
        if (!status.ok())
            return fail("JSON output: {}", status.ToString());
        fmt::print("{}", json);
        return {};
    }
    if (options.format != "text")
        return fail("--format {}: expected text or json", options.format);

    bool sections = options.tree || options.files || options.memory || options.stats || options.environment;
    const auto& checkpoint = report.checkpoint();
    fmt::print("checkpoint {}: format {}, cryo {}, host {}, kernel {}, taken {}\n", checkpoint.directory(),
               checkpoint.format_version(), checkpoint.tool_version(), checkpoint.hostname(), checkpoint.kernel_release(),
               checkpoint.created());
    fmt::print("{} files, {:.1f} MiB, checksums verified\n", checkpoint.file_count(),
               static_cast<double>(checkpoint.total_bytes()) / (1 << 20));
    if (checkpoint.pre_dump())
        fmt::print("a pre-dump (memory only): the parent of a later dump, not restorable itself\n");
    if (!checkpoint.parent().empty())
        fmt::print("incremental: pages not written since are in the parent checkpoint {}\n", checkpoint.parent());
    print_chain(checkpoint);
    fmt::print("\n");
    if (checkpoint.pre_dump())
        return {};
    if (!sections || options.tree) {
        print_tree(report);
        if (report.namespaces_size() > 0)
            fmt::print("namespaces:\n  {}\n", fmt::join(report.namespaces(), "\n  "));
    }
    if (!sections || options.files || options.memory || options.environment)
        for (const auto& process : report.processes())
            print_process(process, options);
    if (!sections || options.stats)
        print_stats(report);
    return {};
}

} // namespace cryo::inspect
