#include "base/error.h"

#include <cstring>

namespace cryo {

Error Error::from_errno(std::string what, int code)
{
    return Error(code, std::move(what), true);
}

Error Error::plain(std::string message, int code)
{
    return Error(code, std::move(message), false);
}

std::string Error::message() const
{
    if (!m_with_errno_text)
        return m_text;
    return fmt::format("{}: {}", m_text, std::strerror(m_code));
}

Error& Error::add_context(std::string_view where) &
{
    if (!where.empty())
        m_text = fmt::format("{}: {}", where, m_text);
    return *this;
}

Error&& Error::add_context(std::string_view where) &&
{
    add_context(where);
    return std::move(*this);
}

} // namespace cryo
