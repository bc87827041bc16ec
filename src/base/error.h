// Errors are values. A failing function returns Result<T>, which is either its
// value or an Error; callers pass the error up with TRY and, on the way, each
// layer prepends where it was ("pid 412: fd 7: read /proc/412/fdinfo/7: ...").
// Only the command line prints errors, once, at the top.
#pragma once

#include <cerrno>
#include <expected>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace cryo {

class Error {
public:
    // A failed system call: `what` names the call and its object, the
    // errno text is appended when printed.
    static Error from_errno(std::string what, int code = errno);
    // A failure that is not a system call (bad input, unsupported state).
    static Error plain(std::string message, int code = EINVAL);

    template <typename... Args>
    static Error make(fmt::format_string<Args...> format, Args&&... args)
    {
        return plain(fmt::format(format, std::forward<Args>(args)...));
    }

    int code() const { return m_code; }
    // The whole message with every context prefix and the errno text.
    std::string message() const;

    // Prepends "where: " to the message.
    Error& add_context(std::string_view where) &;
    Error&& add_context(std::string_view where) &&;

private:
    Error(int code, std::string text, bool with_errno_text)
        : m_code(code)
        , m_text(std::move(text))
        , m_with_errno_text(with_errno_text)
    {
    }

    int m_code;
    std::string m_text;
    bool m_with_errno_text;
};

template <typename T = void>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(Error error) { return std::unexpected<Error>(std::move(error)); }

template <typename... Args>
std::unexpected<Error> fail(fmt::format_string<Args...> format, Args&&... args)
{
    return fail(Error::make(format, std::forward<Args>(args)...));
}

inline std::unexpected<Error> fail_errno(std::string what, int code = errno)
{
    return fail(Error::from_errno(std::move(what), code));
}

namespace detail {
template <typename T>
T release_value(std::expected<T, Error>&& result) { return std::move(*result); }
inline void release_value(std::expected<void, Error>&&) { }
}

// Adds context to the error of a Result and passes values through.
template <typename T, typename... Args>
Result<T> with_context(Result<T>&& result, fmt::format_string<Args...> format, Args&&... args)
{
    if (!result)
        result.error().add_context(fmt::format(format, std::forward<Args>(args)...));
    return std::move(result);
}

} // namespace cryo

// Evaluates a Result expression; on error returns it from the enclosing
// function, otherwise yields the value (or nothing, for Result<void>).
#define TRY(expression)                                                        \
    ({                                                                         \
        auto _try_result = (expression);                                       \
        if (!_try_result) [[unlikely]]                                         \
            return std::unexpected(std::move(_try_result.error()));            \
        ::cryo::detail::release_value(std::move(_try_result));                 \
    })

// As TRY, prepending a formatted context to the error.
#define TRY_CTX(expression, ...)                                               \
    ({                                                                         \
        auto _try_result = (expression);                                       \
        if (!_try_result) [[unlikely]]                                         \
            return std::unexpected(std::move(                                  \
                _try_result.error().add_context(fmt::format(__VA_ARGS__))));   \
        ::cryo::detail::release_value(std::move(_try_result));                 \
    })
