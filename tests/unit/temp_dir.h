// A temporary directory for one test, removed with everything in it when the
// test ends, whether it passed, failed an ASSERT (which returns early) or
// threw. Tests that write images use it so a failing run leaves nothing in
// /tmp.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include <gtest/gtest.h>

namespace cryo::test {

class TempDir {
public:
    TempDir()
    {
        std::string pattern = (std::filesystem::temp_directory_path() / "cryo-unit-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr)
            ADD_FAILURE() << "mkdtemp " << pattern << " failed";
        else
            m_path = pattern;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir()
    {
        if (m_path.empty())
            return;
        std::error_code error;
        std::filesystem::remove_all(m_path, error);
    }

    const std::string& path() const { return m_path; }
    std::string operator/(std::string_view name) const { return m_path + "/" + std::string(name); }

private:
    std::string m_path;
};

} // namespace cryo::test
