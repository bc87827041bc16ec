// End-to-end tests of cgroup v2 membership (victim cgroup, zdtm cgroupNN):
// a victim the test put in a fresh cgroup comes back in it, also when the
// cgroup was removed between dump and restore (the restore makes it again).
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "steps.h"

namespace cryo::e2e {

namespace {

// Where the unified hierarchy's root is mounted here, "" if nowhere.
std::string cgroup2_mount()
{
    std::ifstream mountinfo("/proc/self/mountinfo");
    for (std::string line; std::getline(mountinfo, line);) {
        std::istringstream fields(line);
        std::string id, parent, device, root, mount_point, field;
        fields >> id >> parent >> device >> root >> mount_point;
        while (fields >> field && field != "-") { }
        std::string type;
        fields >> type;
        if (type == "cgroup2" && root == "/")
            return mount_point;
    }
    return {};
}

// Removes a cgroup directory, waiting (at most 10 s) for the processes that
// are still leaving it.
bool remove_cgroup(const std::string& directory)
{
    for (int attempt = 0; attempt < 1000; ++attempt) {
        if (::rmdir(directory.c_str()) == 0 || errno == ENOENT)
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

// A fresh cgroup under the root, removed at the end even when a test fails.
class TestCgroup {
public:
    explicit TestCgroup(const std::string& mount)
        : m_path("/cryo-e2e-" + std::to_string(::getpid()) + "-" + std::to_string(s_next++))
        , m_directory(mount + m_path)
    {
        m_made = ::mkdir(m_directory.c_str(), 0755) == 0;
    }
    ~TestCgroup() { remove_cgroup(m_directory); }
    TestCgroup(const TestCgroup&) = delete;
    TestCgroup& operator=(const TestCgroup&) = delete;

    bool made() const { return m_made; }
    const std::string& path() const { return m_path; }
    const std::string& directory() const { return m_directory; }
    void add(pid_t pid) const { write_file(m_directory + "/cgroup.procs", std::to_string(pid)); }

private:
    static inline int s_next = 0;
    std::string m_path;        // in the hierarchy, "/cryo-e2e-..."
    std::string m_directory;   // MOUNT/cryo-e2e-...
    bool m_made { false };
};

// Starts the victim in `cgroup` and dumps it; after restore the victim
// expects to be in `expected` (by default `cgroup`).
pid_t start_in_cgroup_and_dump(Session& session, const TestCgroup& cgroup, const std::string& images,
                               const std::string& expected = {})
{
    pid_t pid = start_and_wait_ready(session, "cgroup", { expected.empty() ? cgroup.path() : expected });
    cgroup.add(pid);
    EXPECT_NE(read_file("/proc/" + std::to_string(pid) + "/cgroup").find("0::" + cgroup.path() + "\n"),
              std::string::npos);
    dump(session, pid, images);
    return pid;
}

// Every test gets a fresh cgroup; skipped without a cgroup v2 hierarchy.
class Cgroup : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string mount = cgroup2_mount();
        if (mount.empty())
            GTEST_SKIP() << "no cgroup v2 hierarchy mounted";
        cgroup.emplace(mount);
        ASSERT_TRUE(cgroup->made()) << cgroup->directory();
    }

    std::optional<TestCgroup> cgroup;
};

} // namespace

TEST_F(Cgroup, RestoredIntoItsCgroup)
{
    Session session;
    std::string images = session.dir().file("images");
    pid_t pid = start_in_cgroup_and_dump(session, *cgroup, images);
    ASSERT_FALSE(HasFatalFailure());
    restore_and_expect_pass(session, pid, images);
}

TEST_F(Cgroup, MissingCgroupIsCreated)
{
    Session session;
    std::string images = session.dir().file("images");
    pid_t pid = start_in_cgroup_and_dump(session, *cgroup, images);
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_TRUE(remove_cgroup(cgroup->directory()));
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    EXPECT_NE(read_file(images + "-restore.log").find("created the missing cgroup " + cgroup->path()), std::string::npos);
    release_and_expect_pass(session, pid);
}

// With --skip-cgroups the restored victim is in cryo's cgroup (the test's).
TEST_F(Cgroup, SkipCgroupsLeavesTheTreeInCryosCgroup)
{
    std::string own = read_file("/proc/self/cgroup");
    auto start = own.find("0::");
    ASSERT_NE(start, std::string::npos);
    own = own.substr(start + 3, own.find('\n', start) - start - 3);
    Session session;
    std::string images = session.dir().file("images");
    pid_t pid = start_in_cgroup_and_dump(session, *cgroup, images, own);
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images, { "--skip-cgroups" }));
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e
