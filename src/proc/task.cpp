// Listing threads, children and descriptors under /proc; see task.h.
//
// These directories change under our feet while the tree is still running
// (threads exit, descriptors close), so the listings are snapshots: callers
// that need a stable answer list again once the tree is frozen. Entries that
// are not numbers ("." and "..") are skipped; results come back sorted.
#include "proc/task.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>

#include "base/fd.h"
#include "proc/parse_util.h"

namespace cryo::proc {

using namespace detail;

namespace {

struct DirCloser {
    void operator()(DIR* dir) const { ::closedir(dir); }
};

// The numeric entries of a /proc directory, ascending.
template <typename T>
Result<std::vector<T>> numeric_entries(const std::string& path)
{
    std::unique_ptr<DIR, DirCloser> dir(::opendir(path.c_str()));
    if (!dir)
        return fail_errno(fmt::format("open {}", path));
    std::vector<T> numbers;
    for (;;) {
        // readdir() returns null both at the end and on error; only errno
        // tells them apart (a process that exits mid-listing gives ENOENT).
        errno = 0;
        dirent* entry = ::readdir(dir.get());
        if (!entry) {
            if (errno != 0)
                return fail_errno(fmt::format("read {}", path));
            break;
        }
        if (auto number = parse_number<T>(entry->d_name))
            numbers.push_back(*number);
    }
    std::ranges::sort(numbers);
    return numbers;
}

} // namespace

Result<std::vector<pid_t>> list_threads(pid_t pid)
{
    return numeric_entries<pid_t>(fmt::format("/proc/{}/task", pid));
}

Result<std::vector<pid_t>> list_children(pid_t pid, pid_t tid)
{
    auto path = fmt::format("/proc/{}/task/{}/children", pid, tid);
    auto text = TRY(read_text_file(path));
    std::vector<pid_t> children;
    for (auto field : split_fields(trim(text))) {
        auto child = parse_number<pid_t>(field);
        if (!child)
            return fail("{}: malformed pid '{}'", path, field);
        children.push_back(*child);
    }
    return children;
}

Result<std::vector<pid_t>> list_process_children(pid_t pid)
{
    std::vector<pid_t> all;
    for (pid_t tid : TRY(list_threads(pid))) {
        auto children = list_children(pid, tid);
        if (!children) {
            if (children.error().code() == ENOENT || children.error().code() == ESRCH)
                continue;   // the thread exited meanwhile
            return std::unexpected(std::move(children.error()));
        }
        all.insert(all.end(), children->begin(), children->end());
    }
    std::ranges::sort(all);
    all.erase(std::unique(all.begin(), all.end()), all.end());
    return all;
}

Result<std::vector<int>> list_fds(pid_t pid)
{
    return numeric_entries<int>(fmt::format("/proc/{}/fd", pid));
}

Result<std::vector<int>> list_own_fds()
{
    return numeric_entries<int>("/proc/self/fd");
}

bool process_exists(pid_t pid)
{
    struct stat st {};
    return pid > 0 && ::stat(fmt::format("/proc/{}", pid).c_str(), &st) == 0;
}

} // namespace cryo::proc
