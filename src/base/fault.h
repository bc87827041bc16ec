// Fault injection for tests: a hidden switch that makes one step of a dump
// or a restore fail (or hang), so that tests can walk the failure over every
// step and check that nothing is lost.
//
// A step is every system call injected into a traced thread, every named
// phase of `cryo dump` and `cryo restore`, and every image file created,
// finished or read. Steps are numbered from 1 in the order a run reaches
// them; the same command on the same tree (or checkpoint) reaches them in
// the same order. The switches are environment variables, read once:
//
//   CRYO_FAULT_LIST=1        print "cryo: step K: NAME" to stderr for each
//                            step and "cryo: fault steps: N" at exit
//   CRYO_FAULT_AT=K          step K fails with the error
//                            "injected fault at step K (NAME)"
//   CRYO_FAULT_STALL_AT=K    at step K print "cryo: stalled at step K (NAME)"
//                            to stderr and wait forever (to be killed)
//
// Without them a step costs one test of a flag.
#pragma once

#include <concepts>
#include <string>
#include <string_view>

#include "base/error.h"

namespace cryo::fault {

namespace detail {
extern bool g_enabled;
Result<void> reach(std::string_view name);
}

// True when any switch is set.
inline bool enabled() { return detail::g_enabled; }

// One step named `name` ("phase freeze", "write core-12.img", ...).
inline Result<void> step(std::string_view name)
{
    if (!detail::g_enabled) [[likely]]
        return {};
    return detail::reach(name);
}

// As step(), with the name made by `describe()` only when it is needed.
template <typename Describe>
    requires std::invocable<Describe>
inline Result<void> step(Describe&& describe)
{
    if (!detail::g_enabled) [[likely]]
        return {};
    return detail::reach(std::string(describe()));
}

} // namespace cryo::fault
