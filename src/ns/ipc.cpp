// System V IPC objects and sysctls of an IPC namespace; see ipc.h.
#include "ns/ipc.h"

#include <fcntl.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>
#include <set>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "base/fd.h"
#include "base/scope_guard.h"

// Older headers lack the commands that skip the permission check (4.17).
#ifndef SHM_STAT_ANY
#define SHM_STAT_ANY 15
#endif
#ifndef SEM_STAT_ANY
#define SEM_STAT_ANY 20
#endif
#ifndef MSG_STAT_ANY
#define MSG_STAT_ANY 13
#endif
#ifndef MSG_COPY
#define MSG_COPY 040000
#endif

namespace cryo::ns {

namespace {

union SemArgument {
    int value;
    semid_ds* status;
    unsigned short* values;
    seminfo* info;
};

// Written in this order after the objects are made; the *_next_id files
// (restore itself uses them to make each object with its id, and the
// kernel resets one to -1 when it is used) after those, and
// shm_rmid_forced last of all (see ipc.h).
constexpr std::array<std::string_view, 17> kSysctls { {
    "kernel/shmmax", "kernel/shmall", "kernel/shmmni", "kernel/msgmax", "kernel/msgmnb", "kernel/msgmni",
    "kernel/auto_msgmni", "kernel/sem", "fs/mqueue/queues_max", "fs/mqueue/msg_max", "fs/mqueue/msgsize_max",
    "fs/mqueue/msg_default", "fs/mqueue/msgsize_default", "kernel/shm_next_id", "kernel/sem_next_id",
    "kernel/msg_next_id", "kernel/shm_rmid_forced",
} };

constexpr uint64_t kMaxContent = 1ull << 30;   // all segments of one namespace together

std::string sysctl_path(std::string_view name) { return fmt::format("/proc/sys/{}", name); }

Result<void> write_sysctl(std::string_view name, std::string_view value)
{
    auto file = TRY(open_file(sysctl_path(name), O_WRONLY | O_CLOEXEC));
    return write_all(file.get(), value, sysctl_path(name));
}

void save_permissions(const ipc_perm& perm, int id, image::IpcPermissions& out)
{
    out.set_key(perm.__key);
    out.set_id(id);
    out.set_uid(perm.uid);
    out.set_gid(perm.gid);
    out.set_mode(perm.mode & 0777);
}

void apply_permissions(const image::IpcPermissions& saved, ipc_perm& perm)
{
    perm.uid = saved.uid();
    perm.gid = saved.gid();
    perm.mode = static_cast<unsigned short>(saved.mode() & 0777);
}

// One segment, its bytes read through a read-only attachment; `total`
// counts the bytes of all segments read so far.
Result<void> read_segment(int id, const shmid_ds& status, image::SysvSharedMemory& segment, uint64_t& total)
{
    save_permissions(status.shm_perm, id, *segment.mutable_permissions());
    segment.set_size(status.shm_segsz);
    segment.set_removed((status.shm_perm.mode & SHM_DEST) != 0);
    void* mapped = ::shmat(id, nullptr, SHM_RDONLY);
    if (mapped == reinterpret_cast<void*>(-1))
        return fail_errno(fmt::format("shared memory segment id {} (key {:#x}): shmat", id,
                                      static_cast<uint32_t>(status.shm_perm.__key)));
    ScopeGuard detach([&] { ::shmdt(mapped); });
    // Only up to the last page that is not zero.
    const auto* bytes = static_cast<const char*>(mapped);
    size_t used = status.shm_segsz;
    while (used > 0) {
        size_t page_start = (used - 1) & ~size_t { 4095 };
        if (std::any_of(bytes + page_start, bytes + used, [](char byte) { return byte != 0; }))
            break;
        used = page_start;
    }
    total += used;
    if (total > kMaxContent)
        return fail("shared memory segment id {}: the segments hold more than {} bytes, more than a checkpoint stores",
                    id, kMaxContent);
    segment.set_content(bytes, used);
    return {};
}

Result<void> read_shared_memory(image::IpcNamespace& out)
{
    shm_info info {};
    int last = ::shmctl(0, SHM_INFO, reinterpret_cast<shmid_ds*>(&info));
    if (last < 0)
        return fail_errno("shmctl(SHM_INFO)");
    uint64_t total = 0;
    for (int index = 0; index <= last; ++index) {
        shmid_ds status {};
        int id = ::shmctl(index, SHM_STAT_ANY, &status);
        if (id < 0)
            continue;   // a free slot
        TRY(read_segment(id, status, *out.add_shared_memory(), total));
    }
    return {};
}

Result<void> read_semaphores(image::IpcNamespace& out)
{
    seminfo info {};
    int last = ::semctl(0, 0, SEM_INFO, SemArgument { .info = &info });
    if (last < 0)
        return fail_errno("semctl(SEM_INFO)");
    for (int index = 0; index <= last; ++index) {
        semid_ds status {};
        int id = ::semctl(index, 0, SEM_STAT_ANY, SemArgument { .status = &status });
        if (id < 0)
            continue;
        auto& set = *out.add_semaphores();
        save_permissions(status.sem_perm, id, *set.mutable_permissions());
        std::vector<unsigned short> values(status.sem_nsems);
        if (::semctl(id, 0, GETALL, SemArgument { .values = values.data() }) < 0)
            return fail_errno(fmt::format("semaphore set id {}: semctl(GETALL)", id));
        for (unsigned short value : values)
            set.add_values(value);
    }
    return {};
}

Result<void> read_message_queues(image::IpcNamespace& out)
{
    msginfo info {};
    int last = ::msgctl(0, MSG_INFO, reinterpret_cast<msqid_ds*>(&info));
    if (last < 0)
        return fail_errno("msgctl(MSG_INFO)");
    for (int index = 0; index <= last; ++index) {
        msqid_ds status {};
        int id = ::msgctl(index, MSG_STAT_ANY, &status);
        if (id < 0)
            continue;
        auto& queue = *out.add_message_queues();
        save_permissions(status.msg_perm, id, *queue.mutable_permissions());
        queue.set_max_bytes(status.msg_qbytes);
        // No message is longer than all of them together.
        std::vector<char> buffer(sizeof(long) + status.__msg_cbytes + 1);
        for (msgqnum_t at = 0; at < status.msg_qnum; ++at) {
            ssize_t size = ::msgrcv(id, buffer.data(), buffer.size() - sizeof(long), static_cast<long>(at),
                                    IPC_NOWAIT | MSG_COPY);
            if (size < 0 && errno == ENOSYS)
                return fail("message queue id {}: msgrcv(MSG_COPY) is not supported by this kernel (it needs "
                            "CONFIG_CHECKPOINT_RESTORE): the messages cannot be read without taking them", id);
            if (size < 0)
                return fail_errno(fmt::format("message queue id {}: msgrcv(MSG_COPY) of message {}", id, at));
            auto& message = *queue.add_messages();
            long type = 0;
            std::memcpy(&type, buffer.data(), sizeof(type));
            message.set_type(type);
            message.set_text(buffer.data() + sizeof(long), static_cast<size_t>(size));
        }
    }
    return {};
}

// Creates one object with the id it had: the kernel takes the next id from
// the namespace's NAME_next_id file (and resets it to -1).
template <typename Create>
Result<void> create_with_id(std::string_view what, std::string_view next_id, const image::IpcPermissions& saved,
                            Create&& create)
{
    TRY_CTX(write_sysctl(next_id, fmt::format("{}", saved.id())), "{} id {}", what, saved.id());
    int got = create();
    if (got < 0)
        return fail_errno(fmt::format("{} id {} (key {:#x}): create", what, saved.id(), static_cast<uint32_t>(saved.key())));
    if (got != saved.id())
        return fail("{} id {} (key {:#x}): the kernel gave id {}", what, saved.id(), static_cast<uint32_t>(saved.key()), got);
    return {};
}

int create_flags(const image::IpcPermissions& saved)
{
    return IPC_CREAT | IPC_EXCL | static_cast<int>(saved.mode() & 0777);
}

Result<void> fill_shared_memory(const image::SysvSharedMemory& saved)
{
    const auto& perm = saved.permissions();
    TRY(create_with_id("shared memory segment", "kernel/shm_next_id", perm,
                       [&] { return ::shmget(perm.key(), saved.size(), create_flags(perm) | 0600); }));
    if (!saved.content().empty()) {
        void* mapped = ::shmat(perm.id(), nullptr, 0);
        if (mapped == reinterpret_cast<void*>(-1))
            return fail_errno(fmt::format("shared memory segment id {}: shmat", perm.id()));
        std::memcpy(mapped, saved.content().data(), saved.content().size());
        ::shmdt(mapped);
    }
    shmid_ds status {};
    if (::shmctl(perm.id(), IPC_STAT, &status) < 0)
        return fail_errno(fmt::format("shared memory segment id {}: IPC_STAT", perm.id()));
    apply_permissions(perm, status.shm_perm);
    if (::shmctl(perm.id(), IPC_SET, &status) < 0)
        return fail_errno(fmt::format("shared memory segment id {}: IPC_SET", perm.id()));
    return {};
}

Result<void> fill_semaphores(const image::SysvSemaphoreSet& saved)
{
    const auto& perm = saved.permissions();
    int count = saved.values_size();
    TRY(create_with_id("semaphore set", "kernel/sem_next_id", perm,
                       [&] { return ::semget(perm.key(), count, create_flags(perm) | 0600); }));
    std::vector<unsigned short> values(saved.values().begin(), saved.values().end());
    if (::semctl(perm.id(), 0, SETALL, SemArgument { .values = values.data() }) < 0)
        return fail_errno(fmt::format("semaphore set id {}: semctl(SETALL)", perm.id()));
    semid_ds status {};
    if (::semctl(perm.id(), 0, IPC_STAT, SemArgument { .status = &status }) < 0)
        return fail_errno(fmt::format("semaphore set id {}: IPC_STAT", perm.id()));
    apply_permissions(perm, status.sem_perm);
    if (::semctl(perm.id(), 0, IPC_SET, SemArgument { .status = &status }) < 0)
        return fail_errno(fmt::format("semaphore set id {}: IPC_SET", perm.id()));
    return {};
}

Result<void> fill_message_queue(const image::SysvMessageQueue& saved)
{
    const auto& perm = saved.permissions();
    TRY(create_with_id("message queue", "kernel/msg_next_id", perm,
                       [&] { return ::msgget(perm.key(), create_flags(perm) | 0600); }));
    // Room for every message first; the saved limit after them.
    uint64_t total = 0;
    for (const auto& message : saved.messages())
        total += message.text().size();
    msqid_ds status {};
    if (::msgctl(perm.id(), IPC_STAT, &status) < 0)
        return fail_errno(fmt::format("message queue id {}: IPC_STAT", perm.id()));
    status.msg_qbytes = std::max<uint64_t>(total, saved.max_bytes());
    if (::msgctl(perm.id(), IPC_SET, &status) < 0)
        return fail_errno(fmt::format("message queue id {}: IPC_SET msg_qbytes {}", perm.id(), status.msg_qbytes));
    for (const auto& message : saved.messages()) {
        std::vector<char> buffer(sizeof(long) + message.text().size());
        long type = message.type();
        std::memcpy(buffer.data(), &type, sizeof(type));
        std::memcpy(buffer.data() + sizeof(long), message.text().data(), message.text().size());
        if (::msgsnd(perm.id(), buffer.data(), message.text().size(), IPC_NOWAIT) < 0)
            return fail_errno(fmt::format("message queue id {}: msgsnd of a message of type {} ({} bytes)", perm.id(),
                                          type, message.text().size()));
    }
    apply_permissions(perm, status.msg_perm);
    status.msg_qbytes = saved.max_bytes();
    if (::msgctl(perm.id(), IPC_SET, &status) < 0)
        return fail_errno(fmt::format("message queue id {}: IPC_SET", perm.id()));
    return {};
}

// msgmax and msgmnb bound what msgsnd and IPC_SET accept: raised for the
// time the queues are filled, the saved values are written at the end.
Result<void> make_room_for_messages(const image::IpcNamespace& saved)
{
    uint64_t longest = 0, queue_bytes = 0;
    for (const auto& queue : saved.message_queues()) {
        uint64_t total = 0;
        for (const auto& message : queue.messages()) {
            longest = std::max<uint64_t>(longest, message.text().size());
            total += message.text().size();
        }
        queue_bytes = std::max({ queue_bytes, total, queue.max_bytes() });
    }
    auto raise = [](std::string_view name, uint64_t wanted) -> Result<void> {
        auto text = TRY(read_text_file(sysctl_path(name)));
        if (std::strtoull(text.c_str(), nullptr, 10) < wanted)
            TRY(write_sysctl(name, fmt::format("{}", wanted)));
        return {};
    };
    TRY(raise("kernel/msgmax", longest));
    TRY(raise("kernel/msgmnb", queue_bytes));
    return {};
}

} // namespace

Result<void> read_shared_memory_segments(const std::set<int>& ids, google::protobuf::RepeatedPtrField<image::SysvSharedMemory>& out)
{
    uint64_t total = 0;
    for (int id : ids) {
        shmid_ds status {};
        if (::shmctl(id, IPC_STAT, &status) < 0)
            return fail_errno(fmt::format("System V shared memory segment id {}: IPC_STAT", id));
        TRY(read_segment(id, status, *out.Add(), total));
    }
    return {};
}

Result<bool> restore_host_segment(const image::SysvSharedMemory& saved)
{
    const auto& perm = saved.permissions();
    shmid_ds status {};
    if (::shmctl(perm.id(), IPC_STAT, &status) < 0) {
        if (errno != EINVAL && errno != EIDRM)
            return fail_errno(fmt::format("System V shared memory segment id {}: IPC_STAT", perm.id()));
        TRY_CTX(fill_shared_memory(saved), "cryo's IPC namespace");
        return true;
    }
    // Still there (same machine): attached again as it is now.
    if (!saved.removed() && status.shm_perm.__key == perm.key() && status.shm_segsz == saved.size())
        return false;
    return fail("System V shared memory segment id {} (key {:#x}, {} bytes) cannot be made again: id {} is taken by a "
                "segment with key {:#x} and {} bytes",
                perm.id(), static_cast<uint32_t>(perm.key()), saved.size(), perm.id(),
                static_cast<uint32_t>(status.shm_perm.__key), status.shm_segsz);
}

Result<void> remove_segment(int id)
{
    if (::shmctl(id, IPC_RMID, nullptr) < 0)
        return fail_errno(fmt::format("System V shared memory segment id {}: IPC_RMID", id));
    return {};
}

SemaphoreValues read_semaphore_values()
{
    SemaphoreValues values;
    seminfo info {};
    int last = ::semctl(0, 0, SEM_INFO, SemArgument { .info = &info });
    for (int index = 0; index <= last; ++index) {
        semid_ds status {};
        int id = ::semctl(index, 0, SEM_STAT_ANY, SemArgument { .status = &status });
        if (id < 0)
            continue;
        std::vector<unsigned short> set(status.sem_nsems);
        if (::semctl(id, 0, GETALL, SemArgument { .values = set.data() }) == 0)
            values[id] = std::move(set);
    }
    return values;
}

void warn_changed_semaphores(const SemaphoreValues& before)
{
    auto after = read_semaphore_values();
    for (const auto& [id, values] : before) {
        auto now = after.find(id);
        if (now != after.end() && now->second != values)
            spdlog::warn("semaphore set id {}: its values changed from {} to {} when the dumped tree was killed (the "
                         "kernel applied its SEM_UNDO adjustments, or another process changed them): a restore on this "
                         "machine finds the new values",
                         id, fmt::join(values, " "), fmt::join(now->second, " "));
    }
}

bool is_ipc_sysctl(std::string_view name)
{
    return std::ranges::find(kSysctls, name) != kSysctls.end();
}

Result<image::IpcNamespace> read_ipc_namespace()
{
    image::IpcNamespace saved;
    for (auto name : kSysctls) {
        auto text = read_text_file(sysctl_path(name));
        if (!text)
            continue;   // not in this kernel (fs/mqueue without POSIX queues)
        std::string value = *text;
        while (!value.empty() && value.back() == '\n')
            value.pop_back();
        auto& sysctl = *saved.add_sysctls();
        sysctl.set_name(std::string(name));
        sysctl.set_value(value);
    }
    TRY(read_shared_memory(saved));
    TRY(read_semaphores(saved));
    TRY(read_message_queues(saved));
    return saved;
}

Result<void> fill_ipc_namespace(const image::IpcNamespace& saved)
{
    TRY(make_room_for_messages(saved));
    for (const auto& segment : saved.shared_memory())
        TRY(fill_shared_memory(segment));
    for (const auto& set : saved.semaphores())
        TRY(fill_semaphores(set));
    for (const auto& queue : saved.message_queues())
        TRY(fill_message_queue(queue));
    for (const auto& sysctl : saved.sysctls())
        // A *_next_id of -1 ("none chosen") is what the kernel left after
        // the last object was made, and cannot be written.
        if (sysctl.name() != "kernel/shm_rmid_forced" && !(sysctl.name().ends_with("_next_id") && sysctl.value() == "-1"))
            TRY_CTX(write_sysctl(sysctl.name(), sysctl.value()), "sysctl {} = {}", sysctl.name(), sysctl.value());
    return {};
}

Result<void> write_shm_rmid_forced(const image::IpcNamespace& saved)
{
    for (const auto& sysctl : saved.sysctls())
        if (sysctl.name() == "kernel/shm_rmid_forced")
            TRY_CTX(write_sysctl(sysctl.name(), sysctl.value()), "sysctl {} = {}", sysctl.name(), sysctl.value());
    return {};
}

} // namespace cryo::ns
