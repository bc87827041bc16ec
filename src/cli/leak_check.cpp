// See leak_check.h. /proc/self/fd is read with plain calls: the check must
// not depend on the code it checks.
#include "cli/leak_check.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include <fmt/format.h>

namespace cryo::cli {

namespace {

std::map<int, std::string> open_descriptors()
{
    std::map<int, std::string> descriptors;
    DIR* directory = ::opendir("/proc/self/fd");
    if (!directory)
        return descriptors;
    int own = ::dirfd(directory);
    while (const dirent* entry = ::readdir(directory)) {
        if (entry->d_name[0] == '.')
            continue;
        int fd = std::atoi(entry->d_name);
        if (fd == own)
            continue;
        char target[4096];
        auto path = fmt::format("/proc/self/fd/{}", fd);
        ssize_t length = ::readlink(path.c_str(), target, sizeof(target) - 1);
        descriptors[fd] = length > 0 ? std::string(target, static_cast<size_t>(length)) : std::string("?");
    }
    ::closedir(directory);
    return descriptors;
}

} // namespace

std::optional<LeakCheck> LeakCheck::from_environment()
{
    const char* value = ::getenv("CRYO_CHECK_LEAKS");
    if (!value || std::string_view(value) != "1")
        return std::nullopt;
    return LeakCheck(open_descriptors());
}

std::string LeakCheck::leaks() const
{
    std::string report;
    for (const auto& [fd, target] : open_descriptors()) {
        auto before = m_at_start.find(fd);
        if (before == m_at_start.end() || before->second != target)
            report += fmt::format("fd {} ({}) is open at exit and was not at start\n", fd, target);
    }
    return report;
}

} // namespace cryo::cli
