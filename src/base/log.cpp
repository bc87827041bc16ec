#include "base/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace cryo {

namespace {
bool g_logging_to_file = false;
}

Result<void> setup_logging(int verbosity, const std::string& log_file)
{
    std::shared_ptr<spdlog::logger> logger;
    try {
        if (log_file.empty())
            logger = spdlog::stderr_logger_st("cryo");
        else
            logger = spdlog::basic_logger_st("cryo", log_file, true);
    } catch (const spdlog::spdlog_ex& error) {
        return fail("cannot open log file {}: {}", log_file, error.what());
    }
    spdlog::level::level_enum level = spdlog::level::warn;
    if (verbosity == 1)
        level = spdlog::level::info;
    else if (verbosity == 2)
        level = spdlog::level::debug;
    else if (verbosity >= 3)
        level = spdlog::level::trace;
    logger->set_level(level);
    logger->flush_on(spdlog::level::trace);
    logger->set_pattern(log_file.empty() ? "%^%l%$: %v" : "%H:%M:%S.%f %P %l: %v");
    spdlog::set_default_logger(logger);
    g_logging_to_file = !log_file.empty();
    return {};
}

void log_error_to_file(const std::string& message)
{
    if (g_logging_to_file)
        spdlog::error("{}", message);
}

} // namespace cryo
