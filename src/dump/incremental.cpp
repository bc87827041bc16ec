// See incremental.h.
#include "dump/incremental.h"

#include <fcntl.h>

#include <spdlog/spdlog.h>

#include "base/scope_guard.h"
#include "base/syscalls.h"
#include "dump/collect_core.h"
#include "mem/tracker.h"
#include "tree.pb.h"

namespace cryo::dump {

namespace {

// How many checkpoints are above `directory` (its manifests only: the
// restore verifies every file of the chain).
Result<size_t> chain_depth(const std::string& directory)
{
    size_t depth = 0;
    std::string current = directory;
    for (;;) {
        auto reader = TRY(image::ImageReader::open(current));
        if (reader.manifest().parent().empty())
            return depth;
        if (++depth >= image::kMaxChainDepth)
            return fail("{}: the chain of parent checkpoints is {} long already; start a new chain with a full dump",
                        directory, image::kMaxChainDepth);
        current = image::resolve_parent(current, reader.manifest().parent());
    }
}

Result<mem::ProcessTracking> create_tracking(FrozenProcess& process)
{
    pid_t pid = process.pid();
    auto memory = TRY(ptrace::RemoteMemory::open(pid));
    uint64_t gadget = TRY_CTX(find_syscall_gadget(pid, memory), "pid {}", pid);
    auto injector = TRY(ptrace::Injector::create(process.leader(), gadget, ptrace::Gadget::SyscallOnly));
    ScopeGuard put_back([&] { (void)injector.restore_thread(); });
    auto tracking = TRY(mem::ProcessTracking::create(pid, process.pidfd(), injector));
    put_back.dismiss();
    TRY_CTX(injector.restore_thread(), "pid {}", pid);
    return tracking;
}

} // namespace

Result<image::ParentCheckpoint> load_parent(const std::string& directory, const std::string& parent)
{
    auto path = image::resolve_parent(directory, parent);
    auto depth = TRY_CTX(chain_depth(path), "--prev-images-dir {}", parent);
    auto reader = TRY_CTX(image::ImageReader::open(path), "--prev-images-dir {}", parent);
    TRY_CTX(image::refuse_deduped(path, reader.manifest(), "parent of a new dump"), "--prev-images-dir");
    image::ParentCheckpoint loaded;
    loaded.set_manifest_xxh3(TRY(image::manifest_checksum(path)));
    loaded.set_directory(path);
    auto tree = TRY_CTX(reader.read<image::ProcessTree>(std::string(image::kTreeName), image::ImageKind::Tree),
                        "parent checkpoint {}", path);
    for (const auto& process : tree.processes()) {
        if (!reader.has_file(image::pagemap_name(process.pid())))
            continue;
        (*loaded.mutable_page_maps())[process.pid()]
            = TRY_CTX(reader.read<image::PageMap>(image::pagemap_name(process.pid()), image::ImageKind::PageMap),
                      "parent checkpoint {}", path);
    }
    *loaded.mutable_manifest() = reader.manifest();
    spdlog::debug("parent checkpoint {} ({} above it)", path, depth);
    return loaded;
}

Result<IncrementalDump> IncrementalDump::prepare(const IncrementalOptions& options)
{
    IncrementalDump dump(options);
    if (options.parent.empty())
        return dump;
    auto parent = options.remote_parent ? *options.remote_parent : TRY(load_parent(options.directory, options.parent));
    dump.m_parent_manifest_xxh3 = parent.manifest_xxh3();
    // The tracker is taken over only now that the parent is known good.
    if (parent.manifest().tracker().socket().empty())
        spdlog::warn("{} was made without tracking writes (a dump without --track-mem): memory is stored in full",
                     parent.directory());
    for (auto& taken : TRY(mem::take_over_tracker(parent.manifest().tracker())))
        dump.m_taken_over[taken.pid] = std::move(taken.uffd);
    dump.m_parent.emplace(std::move(parent));
    return dump;
}

Result<void> IncrementalDump::arm(FrozenTree& tree)
{
    for (auto& process : tree.processes()) {
        pid_t pid = process.pid();
        auto taken = m_taken_over.extract(pid);
        bool adopted = !taken.empty();
        if (!adopted && !m_options.track)
            continue;
        // A process that uses userfaultfd itself is left alone.
        if (auto reason = TRY(mem::uses_userfaultfd(pid, adopted))) {
            spdlog::warn("{}: its memory is not tracked, every dump stores it in full", *reason);
            continue;
        }
        if (adopted)
            m_tracking.emplace(pid, mem::ProcessTracking::adopt(pid, std::move(taken.mapped())));
        else
            m_tracking.emplace(pid, TRY_CTX(create_tracking(process), "dirty-page tracking"));
        if (m_options.track) {
            int copy = ::fcntl(process.pidfd(), F_DUPFD_CLOEXEC, 0);
            if (copy < 0)
                return fail_errno(fmt::format("dup pidfd of pid {}", pid));
            m_pidfds[pid] = UniqueFd(copy);
        }
    }
    // Processes of the parent that are gone: their userfaultfds close here.
    m_taken_over.clear();
    return {};
}

Result<mem::PagePlan> IncrementalDump::plan(pid_t pid, std::vector<image::Vma>& vmas, uint64_t base_offset,
                                            image::PageMap& map)
{
    const image::PageMap* parent_map = nullptr;
    if (m_parent && m_parent->page_maps().contains(pid))
        parent_map = &m_parent->page_maps().at(pid);
    mem::IncrementalSource source;
    if (auto found = m_tracking.find(pid); found != m_tracking.end())
        source.tracking = &found->second;
    source.parent_map = parent_map;
    source.arm_untracked = m_options.track;
    auto plan = TRY(mem::plan_pages(pid, vmas, source, base_offset, map));
    m_parent_bytes += plan.parent_bytes;
    spdlog::debug("pid {}: {} KiB stored, {} KiB in the parent chain, {} KiB of mappings tracked", pid,
                  plan.stored_bytes >> 10, plan.parent_bytes >> 10, plan.tracked_bytes >> 10);
    return plan;
}

Result<void> IncrementalDump::finish(image::Manifest& manifest, std::chrono::seconds tracker_timeout)
{
    manifest.set_parent(m_options.parent);
    manifest.set_parent_manifest_xxh3(m_parent_manifest_xxh3);
    manifest.set_pre_dump(m_options.pre_dump);
    if (!m_options.track || m_tracking.empty())
        return {};
    std::vector<mem::TrackedFd> tracked;
    for (auto& [pid, tracking] : m_tracking) {
        int copy = ::fcntl(tracking.fd(), F_DUPFD_CLOEXEC, 0);
        if (copy < 0)
            return fail_errno(fmt::format("dup userfaultfd of pid {}", pid));
        tracked.push_back({ .pid = pid, .uffd = UniqueFd(copy), .pidfd = std::move(m_pidfds.at(pid)) });
    }
    *manifest.mutable_tracker() = TRY(mem::spawn_tracker(tracked, tracker_timeout));
    m_spawned.set(manifest.tracker());
    return {};
}

IncrementalDump::SpawnedTracker::~SpawnedTracker()
{
    if (m_record)
        (void)mem::take_over_tracker(*m_record);
}

} // namespace cryo::dump
