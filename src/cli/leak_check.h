// A developer switch: with CRYO_CHECK_LEAKS=1 in the environment, cryo lists
// its open descriptors when main() starts and again when the command is done
// (logging shut down), and fails loudly if a descriptor is open at the end
// that was not open at the start. Each cryo command is one short process, so
// a leaked descriptor costs nothing in production, but it shows a missing
// close on some path (and it would be inherited by the restored tree if it
// were open at the wrong time); the stress loop (tests/e2e/stress_test.cpp)
// runs every dump and restore with it.
#pragma once

#include <map>
#include <optional>
#include <string>

namespace cryo::cli {

class LeakCheck {
public:
    // The descriptors open now, if CRYO_CHECK_LEAKS=1; else nothing.
    static std::optional<LeakCheck> from_environment();
    // Descriptors open now that were not open (or were another file) at the
    // start, one "fd N (TARGET)" per line; empty if none.
    std::string leaks() const;

private:
    explicit LeakCheck(std::map<int, std::string> at_start)
        : m_at_start(std::move(at_start))
    {
    }
    std::map<int, std::string> m_at_start;   // fd -> readlink of /proc/self/fd/N
};

} // namespace cryo::cli
