// See manifest.h.
#include "dump/manifest.h"

#include <sys/utsname.h>
#include <time.h>

#include "check/cpu.h"

namespace cryo::dump {

image::Manifest describe_checkpoint(pid_t root_pid)
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
    manifest.set_root_pid(root_pid);
    *manifest.mutable_cpu() = check::current_cpu_features();
    return manifest;
}

} // namespace cryo::dump
