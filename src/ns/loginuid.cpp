// The audit login uid; see loginuid.h.
#include "ns/loginuid.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/fd.h"

namespace cryo::ns {

Result<void> record_loginuids(image::ProcessTree& tree)
{
    for (auto& entry : *tree.mutable_processes()) {
        if (entry.state() != image::PROCESS_STATE_ALIVE)
            continue;
        auto text = read_text_file(fmt::format("/proc/{}/loginuid", entry.pid()));
        if (!text && text.error().code() == ENOENT)
            continue;   // no audit in this kernel
        if (!text)
            return fail("pid {}: {}", entry.pid(), text.error().message());
        entry.set_loginuid(static_cast<uint32_t>(std::strtoul(text->c_str(), nullptr, 10)));
        entry.set_has_loginuid(true);
    }
    return {};
}

void restore_loginuid(const image::ProcessEntry& entry)
{
    if (!entry.has_loginuid() || ::geteuid() != 0)
        return;
    auto own = read_text_file("/proc/self/loginuid");
    if (!own || static_cast<uint32_t>(std::strtoul(own->c_str(), nullptr, 10)) == entry.loginuid())
        return;
    auto file = open_file("/proc/self/loginuid", O_WRONLY | O_CLOEXEC);
    auto written = file ? write_all(file->get(), fmt::format("{}", entry.loginuid()), "/proc/self/loginuid")
                        : Result<void>(std::unexpected(file.error()));
    if (!written)
        spdlog::warn("pid {}: login uid {} not restored, it keeps cryo's: {}", entry.pid(), entry.loginuid(),
                     written.error().message());
}

} // namespace cryo::ns
