// inotify and fanotify marks: fdinfo fields, mounts, finding the watched
// objects; see fsnotify.h.
#include "fds/fsnotify.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <memory>
#include <optional>
#include <set>

#include <spdlog/spdlog.h>

#include "proc/parse_util.h"

namespace cryo::fds::fsnotify {

using namespace proc::detail;

namespace {

constexpr std::string_view kDeletedSuffix = " (deleted)";

std::optional<uint64_t> parse_hex(std::string_view text)
{
    uint64_t value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
    if (text.empty() || error != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view text)
{
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 3 < text.size()) {
            auto digits = text.substr(i + 1, 3);
            if (std::ranges::all_of(digits, [](char c) { return c >= '0' && c <= '7'; })) {
                out.push_back(static_cast<char>((digits[0] - '0') * 64 + (digits[1] - '0') * 8 + (digits[2] - '0')));
                i += 3;
                continue;
            }
        }
        out.push_back(text[i]);
    }
    return out;
}

std::string type_name(uint32_t type)
{
    switch (type & S_IFMT) {
    case S_IFREG: return "regular file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "symbolic link";
    case S_IFCHR: return "character device";
    case S_IFBLK: return "block device";
    case S_IFIFO: return "FIFO";
    case S_IFSOCK: return "socket";
    default: return fmt::format("file of type {:#o}", type);
    }
}

bool same_object(const struct stat& st, const image::WatchedObject& object)
{
    return st.st_ino == object.inode() && device_of(st.st_dev) == Device { object.dev_major(), object.dev_minor() };
}

// open_by_handle_at(2) of the object's handle on the mounts of its device
// (O_PATH, no access to the object needed; CAP_DAC_READ_SEARCH is).
Result<UniqueFd> open_by_handle(const image::WatchedObject& object, const std::vector<Mount>& all_mounts)
{
    Device device { object.dev_major(), object.dev_minor() };
    auto mounts = mounts_of(all_mounts, device);
    if (mounts.empty())
        return fail("no mount of device {}:{} here", device.major, device.minor);
    const std::string& bytes = object.handle();
    auto storage = std::make_unique<std::byte[]>(sizeof(struct file_handle) + bytes.size());
    auto* handle = reinterpret_cast<struct file_handle*>(storage.get());
    handle->handle_bytes = static_cast<unsigned>(bytes.size());
    handle->handle_type = object.handle_type();
    std::memcpy(handle->f_handle, bytes.data(), bytes.size());
    std::string errors;
    for (const auto& mount : mounts) {
        // Not O_PATH: open_by_handle_at() refuses an O_PATH mount_fd (EBADF).
        int mount_fd = ::open(mount.mount_point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (mount_fd < 0) {
            errors += fmt::format("{}open {}: {}", errors.empty() ? "" : "; ", mount.mount_point, std::strerror(errno));
            continue;
        }
        UniqueFd mount_owned(mount_fd);
        int fd = ::open_by_handle_at(mount_fd, handle, O_PATH | O_CLOEXEC);
        if (fd < 0) {
            int error = errno;
            errors += fmt::format("{}open_by_handle_at on {}: {}", errors.empty() ? "" : "; ", mount.mount_point,
                                  std::strerror(error));
            if (error == ESTALE)   // the filesystem says: no such object any more
                break;
            continue;
        }
        UniqueFd owned(fd);
        struct stat st {};
        if (::fstat(fd, &st) < 0)
            return fail_errno("fstat of the object opened by handle");
        if (!same_object(st, object))
            return fail("its file handle opens inode {} on device {}:{}", st.st_ino, major(st.st_dev), minor(st.st_dev));
        return owned;
    }
    return fail("{}", errors);
}

// Where cryo looks for an object its handle did not open: the process's
// working directory and the directories of its open files, each with its
// entries, and their parents.
std::optional<std::string> search_near_process(pid_t pid, const image::WatchedObject& object)
{
    constexpr size_t kMostDirectories = 256;
    constexpr size_t kMostEntries = 4096;
    std::vector<std::string> directories;
    std::set<std::string> seen;
    auto add = [&](std::string path) {
        while (path.size() > 1 && path.back() == '/')
            path.pop_back();
        if (path.empty() || path.front() != '/' || directories.size() >= kMostDirectories)
            return;
        if (seen.insert(path).second)
            directories.push_back(path);
    };
    auto parent = [](const std::string& path) {
        size_t slash = path.rfind('/');
        return slash == 0 || slash == std::string::npos ? std::string("/") : path.substr(0, slash);
    };
    if (auto cwd = read_link(fmt::format("/proc/{}/cwd", pid)); cwd && !cwd->ends_with(" (deleted)")) {
        add(*cwd);
        add(parent(*cwd));
    }
    if (DIR* fds = ::opendir(fmt::format("/proc/{}/fd", pid).c_str())) {
        while (auto* entry = ::readdir(fds)) {
            if (entry->d_name[0] == '.')
                continue;
            auto link = read_link(fmt::format("/proc/{}/fd/{}", pid, entry->d_name));
            if (!link || !link->starts_with('/') || link->ends_with(" (deleted)"))
                continue;
            struct stat st {};
            if (::stat(link->c_str(), &st) == 0 && S_ISDIR(st.st_mode))
                add(*link);
            add(parent(*link));
        }
        ::closedir(fds);
    }
    add("/");

    auto matches = [&](const std::string& path) {
        struct stat st {};
        return ::lstat(path.c_str(), &st) == 0 && same_object(st, object);
    };
    for (const auto& directory : directories) {
        if (matches(directory))
            return directory;
        DIR* dir = ::opendir(directory.c_str());
        if (!dir)
            continue;
        size_t count = 0;
        std::optional<std::string> found;
        while (auto* entry = ::readdir(dir)) {
            if (++count > kMostEntries)
                break;
            if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0)
                continue;
            // d_ino is not always st_ino (overlayfs): stat every entry.
            struct stat st {};
            if (::fstatat(::dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !same_object(st, object))
                continue;
            found = directory == "/" ? "/" + std::string(entry->d_name) : directory + "/" + entry->d_name;
            break;
        }
        ::closedir(dir);
        if (found)
            return found;
    }
    return std::nullopt;
}

// A deleted file open in the process that is the object (when its handle
// does not open): the path it had, and the object gets its file type.
std::optional<std::string> deleted_open_file(pid_t pid, image::WatchedObject& object)
{
    DIR* fds = ::opendir(fmt::format("/proc/{}/fd", pid).c_str());
    if (!fds)
        return std::nullopt;
    std::optional<std::string> found;
    while (auto* entry = ::readdir(fds)) {
        if (entry->d_name[0] == '.')
            continue;
        std::string fd_path = fmt::format("/proc/{}/fd/{}", pid, entry->d_name);
        auto link = read_link(fd_path);
        struct stat st {};
        if (!link || !link->ends_with(kDeletedSuffix) || ::stat(fd_path.c_str(), &st) != 0 || !same_object(st, object))
            continue;
        object.set_file_type(st.st_mode & S_IFMT);
        found = link->substr(0, link->size() - kDeletedSuffix.size());
        break;
    }
    ::closedir(fds);
    return found;
}

} // namespace

std::string deleted_error(const image::WatchedObject& object)
{
    return fmt::format("the watched {} '{}' (inode {} on device {}:{}) was deleted; it lives on only because "
                       "something still holds it (open, mapped, a working directory)",
                       type_name(object.file_type()), object.path(), object.inode(), object.dev_major(),
                       object.dev_minor());
}

Result<Fields> parse_fields(std::string_view key, std::string_view value)
{
    // Put the line back together and drop its first word.
    std::string line = fmt::format("{}:{}", key, value);
    std::string_view rest = line;
    size_t space = rest.find(' ');
    if (space == std::string_view::npos)
        return fail("fdinfo line '{}' has no fields", line);
    rest.remove_prefix(space + 1);
    Fields fields;
    for (auto field : split_fields(rest)) {
        size_t colon = field.find(':');
        if (colon == std::string_view::npos || colon == 0)
            return fail("fdinfo line '{}': field '{}' is not key:value", line, field);
        fields.emplace(std::string(field.substr(0, colon)), std::string(field.substr(colon + 1)));
    }
    return fields;
}

Result<uint64_t> hex_field(const Fields& fields, std::string_view key)
{
    auto found = fields.find(key);
    if (found == fields.end())
        return fail("fdinfo mark line has no '{}'", key);
    auto value = parse_hex(found->second);
    if (!value)
        return fail("fdinfo mark field '{}' is not a hex number: '{}'", key, found->second);
    return *value;
}

Device kernel_device(uint64_t sdev)
{
    return { static_cast<uint32_t>(sdev >> 20), static_cast<uint32_t>(sdev & 0xfffff) };
}

Device device_of(dev_t dev) { return { major(dev), minor(dev) }; }

Result<std::vector<Mount>> read_mounts(const std::string& path)
{
    auto text = TRY(read_text_file(path));
    std::vector<Mount> mounts;
    for (auto line : split_lines(text)) {
        auto fields = split_fields(line);
        if (fields.size() < 7)
            continue;
        Mount mount;
        auto id = parse_number<int>(fields[0]);
        size_t colon = fields[2].find(':');
        if (!id || colon == std::string_view::npos)
            return fail("{}: malformed line '{}'", path, line.substr(0, 200));
        auto major_number = parse_number<uint32_t>(fields[2].substr(0, colon));
        auto minor_number = parse_number<uint32_t>(fields[2].substr(colon + 1));
        if (!major_number || !minor_number)
            return fail("{}: malformed device in '{}'", path, line.substr(0, 200));
        mount.id = *id;
        mount.device = { *major_number, *minor_number };
        mount.root = unescape(fields[3]);
        mount.mount_point = unescape(fields[4]);
        auto separator = std::ranges::find(fields, std::string_view("-"));
        if (separator != fields.end() && separator + 1 != fields.end())
            mount.fs_type = std::string(*(separator + 1));
        mounts.push_back(std::move(mount));
    }
    return mounts;
}

std::vector<Mount> mounts_of(const std::vector<Mount>& mounts, Device device)
{
    std::vector<Mount> found;
    for (const auto& mount : mounts)
        if (mount.device == device)
            found.push_back(mount);
    std::ranges::stable_partition(found, [](const Mount& mount) { return mount.root == "/"; });
    return found;
}

std::string describe(const image::WatchedObject& object)
{
    auto where = fmt::format("inode {} on device {}:{}", object.inode(), object.dev_major(), object.dev_minor());
    if (object.path().empty())
        return where;
    return fmt::format("'{}' ({})", object.path(), where);
}

std::string proc_fd_path(int fd) { return fmt::format("/proc/self/fd/{}", fd); }

Result<void> locate_object(const FdFacts& facts, const Fields& fields, image::WatchedObject& object)
{
    object.set_inode(TRY(hex_field(fields, "ino")));
    Device device = kernel_device(TRY(hex_field(fields, "sdev")));
    object.set_dev_major(device.major);
    object.set_dev_minor(device.minor);
    if (fields.contains("f_handle")) {
        uint64_t size = TRY(hex_field(fields, "fhandle-bytes"));
        object.set_handle_type(static_cast<int32_t>(TRY(hex_field(fields, "fhandle-type"))));
        const std::string& hex = fields.find("f_handle")->second;
        if (hex.size() != 2 * size)
            return fail("fdinfo f_handle '{}' does not hold {} bytes", hex, size);
        std::string bytes;
        for (size_t i = 0; i < hex.size(); i += 2) {
            auto byte = parse_hex(std::string_view(hex).substr(i, 2));
            if (!byte)
                return fail("fdinfo f_handle '{}' is not hex", hex);
            bytes.push_back(static_cast<char>(*byte));
        }
        object.set_handle(std::move(bytes));
    }

    std::string handle_error = "the kernel gave no file handle for it";
    if (!object.handle().empty()) {
        auto mounts = TRY(read_mounts());
        auto opened = open_by_handle(object, mounts);
        if (opened) {
            struct stat st {};
            if (::fstat(opened->get(), &st) < 0)
                return fail_errno("fstat of the watched object");
            object.set_file_type(st.st_mode & S_IFMT);
            auto link = TRY(read_link(proc_fd_path(opened->get())));
            if (st.st_nlink == 0 || link.ends_with(kDeletedSuffix)) {
                if (link.ends_with(kDeletedSuffix))
                    link.resize(link.size() - kDeletedSuffix.size());
                object.set_path(link);
                object.set_deleted(true);
                return {};
            }
            struct stat by_path {};
            if (link.starts_with('/') && ::lstat(link.c_str(), &by_path) == 0 && same_object(by_path, object)) {
                object.set_path(link);
                return {};
            }
            // Opened, but its name is not reachable from here (a
            // disconnected dentry, a bind mount of a subtree): look nearby.
            if (auto path = search_near_process(facts.pid, object)) {
                object.set_path(*path);
                return {};
            }
            spdlog::warn("pid {}: fd {}: watched {} has no path cryo can see; only its file handle is kept, "
                         "which works on this machine only",
                         facts.pid, facts.fd, describe(object));
            return {};
        }
        handle_error = opened.error().message();
    }
    if (auto path = deleted_open_file(facts.pid, object)) {
        object.set_path(*path);
        object.set_deleted(true);
        return {};
    }
    if (auto path = search_near_process(facts.pid, object)) {
        struct stat st {};
        if (::lstat(path->c_str(), &st) == 0)
            object.set_file_type(st.st_mode & S_IFMT);
        object.set_path(*path);
        return {};
    }
    return fail("cannot find the watched object, {}: its file handle does not open ({}) and it is not in the "
                "working directory of pid {} or beside its open files (deleted, or on a filesystem that cannot "
                "open file handles)",
                describe(object), handle_error, facts.pid);
}

Result<UniqueFd> reopen_object(const image::WatchedObject& object)
{
    std::string handle_error = "no file handle was recorded";
    if (!object.handle().empty()) {
        auto mounts = TRY(read_mounts());
        auto opened = open_by_handle(object, mounts);
        if (opened) {
            struct stat st {};
            if (::fstat(opened->get(), &st) == 0 && st.st_nlink > 0)
                return std::move(*opened);
            handle_error = "its file handle opens a deleted file";
        } else {
            handle_error = opened.error().message();
        }
    }
    if (object.path().empty())
        return fail("the watched object, {}, is gone: its file handle does not open ({}) and no path is known for it",
                    describe(object), handle_error);
    int flags = O_PATH | O_CLOEXEC | ((object.file_type() & S_IFMT) == S_IFLNK ? O_NOFOLLOW : 0);
    int fd = ::open(object.path().c_str(), flags);
    if (fd < 0)
        return fail("the watched object, {}, is gone: its file handle does not open ({}) and open of its path "
                    "fails: {}",
                    describe(object), handle_error, std::strerror(errno));
    UniqueFd owned(fd);
    struct stat st {};
    if (::fstat(fd, &st) < 0)
        return fail_errno(fmt::format("fstat {}", object.path()));
    if (object.file_type() != 0 && (st.st_mode & S_IFMT) != (object.file_type() & S_IFMT))
        return fail("the watched object, {}, was a {} and '{}' is now a {}", describe(object),
                    type_name(object.file_type()), object.path(), type_name(st.st_mode));
    spdlog::debug("watched {} found by its path ({})", describe(object), handle_error);
    return owned;
}

} // namespace cryo::fds::fsnotify
