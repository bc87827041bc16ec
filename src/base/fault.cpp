// See fault.h.
#include "base/fault.h"

#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace cryo::fault {

namespace {

struct Switches {
    bool list { false };
    unsigned long fail_at { 0 };    // 0: none
    unsigned long stall_at { 0 };   // 0: none
};

unsigned long number_from_env(const char* variable)
{
    const char* text = std::getenv(variable);
    if (!text || !*text)
        return 0;
    unsigned long value = 0;
    auto [end, error] = std::from_chars(text, text + std::strlen(text), value);
    if (error != std::errc() || *end != '\0') {
        auto message = fmt::format("cryo: {}='{}' is not a step number; ignored\n", variable, text);
        (void)!::write(STDERR_FILENO, message.data(), message.size());
        return 0;
    }
    return value;
}

Switches g_switches;
unsigned long g_steps = 0;

// Straight to fd 2, unbuffered: the lines must be there even when cryo is
// killed right after (a stall) and must not wait for the log's set-up.
void say(const std::string& line) { (void)!::write(STDERR_FILENO, line.data(), line.size()); }

void print_count() { say(fmt::format("cryo: fault steps: {}\n", g_steps)); }

bool read_switches()
{
    const char* list = std::getenv("CRYO_FAULT_LIST");
    g_switches.list = list && *list && std::strcmp(list, "0") != 0;
    g_switches.fail_at = number_from_env("CRYO_FAULT_AT");
    g_switches.stall_at = number_from_env("CRYO_FAULT_STALL_AT");
    if (g_switches.list)
        std::atexit(print_count);
    return g_switches.list || g_switches.fail_at || g_switches.stall_at;
}

} // namespace

namespace detail {

bool g_enabled = read_switches();

Result<void> reach(std::string_view name)
{
    unsigned long step = ++g_steps;
    if (g_switches.list)
        say(fmt::format("cryo: step {}: {}\n", step, name));
    if (step == g_switches.stall_at) {
        say(fmt::format("cryo: stalled at step {} ({})\n", step, name));
        for (;;)
            ::pause();
    }
    if (step == g_switches.fail_at)
        return fail(Error::plain(fmt::format("injected fault at step {} ({})", step, name), EIO));
    return {};
}

} // namespace detail

} // namespace cryo::fault
