// Runs a function when the scope ends unless dismissed: for one-off rollback
// steps where a dedicated RAII type would be overkill.
#pragma once

#include <utility>

namespace cryo {

template <typename Function>
class ScopeGuard {
public:
    explicit ScopeGuard(Function function) : m_function(std::move(function)) { }
    ScopeGuard(const ScopeGuard&) = delete;
    ScopeGuard& operator=(const ScopeGuard&) = delete;
    ~ScopeGuard()
    {
        if (m_armed)
            m_function();
    }
    void dismiss() { m_armed = false; }

private:
    Function m_function;
    bool m_armed { true };
};

} // namespace cryo
