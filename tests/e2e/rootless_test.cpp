// cryo without root: a user the test creates (and removes, pass or fail)
// runs the victim and cryo, which has only CAP_CHECKPOINT_RESTORE and
// CAP_SYS_PTRACE, as file capabilities on a copy of the binary or as
// ambient capabilities passed down by setpriv. The restored victim must
// pass, hold none of cryo's capabilities, and the images must be the user's
// and private. Hostile images (edited with decode/encode by the user) asking
// for root's uid or gid, other groups, capabilities, a PID namespace, a
// chroot or a file the user cannot open are refused before any process
// exists. Root, for its part, dumps and restores that user's processes.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "harness.h"
#include "steps.h"

namespace cryo::e2e {

namespace {

namespace pb = google::protobuf;

constexpr const char* kCapabilities = "cap_checkpoint_restore,cap_sys_ptrace";

// A user of its own for one test: created with a unique name, deleted when
// the test ends (after the Session, declared later, killed its processes).
class TemporaryUser {
public:
    TemporaryUser()
    {
        static int counter = 0;
        m_name = "cryo-rl-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
        std::string command = "useradd --no-create-home --shell /usr/sbin/nologin --user-group " + m_name + " >/dev/null 2>&1";
        if (std::system(command.c_str()) != 0) {
            ADD_FAILURE() << "useradd " << m_name << " failed";
            return;
        }
        m_created = true;
        if (const passwd* entry = ::getpwnam(m_name.c_str())) {
            m_uid = entry->pw_uid;
            m_gid = entry->pw_gid;
        }
    }
    ~TemporaryUser()
    {
        if (!m_created)
            return;
        std::string command = "userdel " + m_name + " >/dev/null 2>&1 || userdel --force " + m_name + " >/dev/null 2>&1";
        EXPECT_EQ(std::system(command.c_str()), 0) << "userdel " << m_name;
    }
    TemporaryUser(const TemporaryUser&) = delete;
    TemporaryUser& operator=(const TemporaryUser&) = delete;

    bool ready() const { return m_created && m_uid != 0; }
    uid_t uid() const { return m_uid; }
    gid_t gid() const { return m_gid; }
    // setpriv switching to this user with no supplementary group.
    std::vector<std::string> as_user() const
    {
        return { "/usr/bin/setpriv", "--reuid=" + std::to_string(m_uid), "--regid=" + std::to_string(m_gid),
                 "--clear-groups", "--" };
    }

private:
    std::string m_name;
    bool m_created { false };
    uid_t m_uid { 0 };
    gid_t m_gid { 0 };
};

enum class Grant { FileCapabilities, AmbientCapabilities };

// Keeps the discovered test names readable (ctest shows the parameter).
void PrintTo(Grant grant, std::ostream* out)
{
    *out << (grant == Grant::FileCapabilities ? "setcap" : "ambient");
}

// Makes `session` run victims and cryo as `user`, cryo with the two
// capabilities granted the `grant` way; the session's directory becomes the
// user's.
void run_as(Session& session, const TemporaryUser& user, Grant grant)
{
    ASSERT_EQ(::chown(session.dir().path().c_str(), user.uid(), user.gid()), 0);
    // The victims append to their log, which the harness opens too.
    std::ofstream(session.log_path()).close();
    ASSERT_EQ(::chown(session.log_path().c_str(), user.uid(), user.gid()), 0);
    Launcher launcher { user.as_user(), user.as_user() };
    if (grant == Grant::FileCapabilities) {
        launcher.cryo_binary = session.dir().file("cryo");
        std::filesystem::copy_file(CRYO_BINARY, launcher.cryo_binary);
        std::string command = std::string("setcap ") + kCapabilities + "+ep " + launcher.cryo_binary;
        ASSERT_EQ(std::system(command.c_str()), 0) << command << " failed (libcap2-bin installed?)";
    } else {
        std::string caps = "+checkpoint_restore,+sys_ptrace";
        launcher.cryo_prefix.insert(launcher.cryo_prefix.end() - 1, { "--inh-caps=" + caps, "--ambient-caps=" + caps });
    }
    session.set_launcher(std::move(launcher));
}

// A user and a session running as it; the user goes last, once the
// session killed its processes.
struct UserSession {
    TemporaryUser user;
    Session session;
    pid_t victim { 0 };
};

// Makes `setup.session` run as its user (cryo granted the `grant` way) and
// starts `victim` as that user.
void start_as_user(UserSession& setup, Grant grant, const std::string& victim)
{
    ASSERT_TRUE(setup.user.ready());
    ASSERT_NO_FATAL_FAILURE(run_as(setup.session, setup.user, grant));
    setup.victim = start_and_wait_ready(setup.session, victim);
}

// "Key:" line of /proc/PID/status, without the key.
std::string status_field(pid_t pid, const std::string& key)
{
    std::smatch match;
    std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
    if (!std::regex_search(status, match, std::regex("\n" + key + ":\\s*([^\n]*)")))
        return "";
    return match[1].str();
}

// The four ids /proc/PID/status lists (real, effective, saved, filesystem).
std::string fmt_ids(unsigned id)
{
    std::string one = std::to_string(id);
    return one + "\t" + one + "\t" + one + "\t" + one;
}

void expect_owned_and_private(const std::string& images, uid_t uid)
{
    struct stat st {};
    ASSERT_EQ(::stat(images.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, uid) << images;
    EXPECT_EQ(st.st_mode & 0777, 0700u) << images;
    for (const auto& entry : std::filesystem::directory_iterator(images)) {
        ASSERT_EQ(::lstat(entry.path().c_str(), &st), 0);
        EXPECT_EQ(st.st_uid, uid) << entry.path();
        EXPECT_EQ(st.st_mode & 07777, 0600u) << entry.path();
    }
}

class Rootless : public testing::TestWithParam<std::tuple<Grant, std::string>> { };

std::string case_name(const testing::TestParamInfo<std::tuple<Grant, std::string>>& info)
{
    return (std::get<0>(info.param) == Grant::FileCapabilities ? "setcap_" : "ambient_") + std::get<1>(info.param);
}

} // namespace

// Dump and restore as the user: the victim passes, runs as the user with no
// capability at all (none of cryo's leaked into it), and every image is the
// user's and 0600 in a 0700 directory, even a file someone else left there.
TEST_P(Rootless, DumpAndRestoreAsTheUser)
{
    auto [grant, victim] = GetParam();
    UserSession setup;
    ASSERT_NO_FATAL_FAILURE(start_as_user(setup, grant, victim));
    auto& [user, session, pid] = setup;
    ASSERT_EQ(status_field(pid, "Uid"), fmt_ids(user.uid()));

    std::string images = session.dir().file("images");
    ASSERT_EQ(::mkdir(images.c_str(), 0700), 0);
    ASSERT_EQ(::chown(images.c_str(), user.uid(), user.gid()), 0);
    std::ofstream(images + "/tree.img") << "left by root";
    ASSERT_EQ(::chmod((images + "/tree.img").c_str(), 0644), 0);
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    expect_owned_and_private(images, user.uid());

    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    EXPECT_EQ(status_field(pid, "Uid"), fmt_ids(user.uid()));
    EXPECT_EQ(status_field(pid, "Gid"), fmt_ids(user.gid()));
    for (const char* set : { "CapInh", "CapPrm", "CapEff", "CapAmb" })
        EXPECT_EQ(status_field(pid, set), "0000000000000000") << set << " of the restored process " << pid;
    release_and_expect_pass(session, pid);
}

// Every victim whose own checks work without root (fds_mapped, fds_secret
// read their own /proc/self/map_files, which needs CAP_CHECKPOINT_RESTORE)
// and that does not need a setup of its own test.
INSTANTIATE_TEST_SUITE_P(FileCapabilities, Rootless,
                         testing::Combine(testing::Values(Grant::FileCapabilities),
                                          testing::Values("counter", "counter_static", "threads", "tree", "orphan", "pipes",
                                                          "files", "unix", "epoll", "signals", "sigsuspend", "memory",
                                                          "memfd", "fds_memfd", "fds_pidfd", "fpu", "secret", "syscalls",
                                                          "fd_table_shared", "sessions")),
                         case_name);
INSTANTIATE_TEST_SUITE_P(AmbientCapabilities, Rootless,
                         testing::Combine(testing::Values(Grant::AmbientCapabilities),
                                          testing::Values("counter", "threads", "tree", "pipes")),
                         case_name);

// What cannot work without root is refused with the capability named, and
// the victim runs on untouched.
namespace {

// `cryo dump` of `pid` fails with `reason` in its output and leaves no
// checkpoint.
void expect_dump_refused(Session& session, pid_t pid, std::string_view reason)
{
    auto result = session.cryo({ "dump", "-t", std::to_string(pid), "-D", session.dir().file("images") });
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find(reason), std::string::npos) << result.output;
    EXPECT_FALSE(file_exists(session.dir().file("images/manifest.img")));
}

} // namespace

TEST(RootlessRefused, SeccompFiltersNeedRootToBeRead)
{
    UserSession setup;
    ASSERT_NO_FATAL_FAILURE(start_as_user(setup, Grant::FileCapabilities, "seccomp"));
    auto& [user, session, pid] = setup;
    expect_dump_refused(session, pid, "has seccomp filters; reading them needs CAP_SYS_ADMIN (run cryo as root)");
    release_and_expect_pass(session, pid);
}

// Without CAP_SYS_ADMIN seccomp cannot be suspended, and the first call
// cryo injects would kill a thread in strict mode: refused before any is.
TEST(RootlessRefused, SeccompStrictModeNeedsRoot)
{
    UserSession setup;
    ASSERT_NO_FATAL_FAILURE(start_as_user(setup, Grant::FileCapabilities, "seccomp_strict"));
    auto& [user, session, pid] = setup;
    expect_dump_refused(session, pid,
                        "runs in seccomp strict mode: the calls cryo injects would kill it unless seccomp is "
                        "suspended while it is traced, which needs CAP_SYS_ADMIN (run cryo as root)");
    release_and_expect_pass(session, pid);
}

// Root dumps and restores the processes of another user (as zdtm runs its
// tests): what only the process may read without CAP_SYS_RESOURCE (its
// resource limits) is asked of it, so root without that capability (a
// container's) dumps it too; the dumpable flag and parent-death signals,
// which the kernel resets when the restore gives the process its uid back,
// are set again ("process_state" checks a child's parent-death signal;
// /proc/PID belongs to the user only while the process is dumpable).
class OtherUser : public testing::TestWithParam<std::string> { };

TEST_P(OtherUser, RootDumpsAndRestoresAnotherUsersTree)
{
    TemporaryUser user;
    Session session;
    ASSERT_TRUE(user.ready());
    ASSERT_EQ(::chown(session.dir().path().c_str(), user.uid(), user.gid()), 0);
    std::ofstream(session.log_path()).close();
    ASSERT_EQ(::chown(session.log_path().c_str(), user.uid(), user.gid()), 0);
    session.set_launcher({ user.as_user(), {} });
    pid_t pid = start_and_wait_ready(session, GetParam());
    ASSERT_EQ(status_field(pid, "Uid"), fmt_ids(user.uid()));
    struct stat before {};
    ASSERT_EQ(::stat(("/proc/" + std::to_string(pid)).c_str(), &before), 0);
    ASSERT_NO_FATAL_FAILURE(dump_and_restore(session, pid, session.dir().file("images")));
    EXPECT_EQ(status_field(pid, "Uid"), fmt_ids(user.uid()));
    struct stat after {};
    ASSERT_EQ(::stat(("/proc/" + std::to_string(pid)).c_str(), &after), 0);
    EXPECT_EQ(after.st_uid, before.st_uid) << "owner of /proc/" << pid << " (dumpable flag)";
    release_and_expect_pass(session, pid);
}

INSTANTIATE_TEST_SUITE_P(Victims, OtherUser, testing::Values("tree", "process_state"));

// A process of another user (root's, here) is not dumped, although cryo's
// CAP_SYS_PTRACE would let it trace it.
TEST(RootlessRefused, OtherUsersProcessesAreNotDumped)
{
    UserSession setup;
    ASSERT_NO_FATAL_FAILURE(start_as_user(setup, Grant::FileCapabilities, "counter"));
    auto& [user, session, pid] = setup;
    session.set_launcher({ {}, user.as_user(), session.dir().file("cryo") });
    pid_t roots = session.start_victim("counter");
    ASSERT_TRUE(session.wait_for_log("READY", 2)) << session.diagnostics();
    expect_dump_refused(session, roots,
                        "runs as uid 0/0/0/0 gid 0/0/0/0: without root cryo dumps only processes of the user running it");
    release_and_expect_pass(session, roots);
    release_and_expect_pass(session, pid);
}

namespace {

pb::Value parse(const std::string& json)
{
    pb::Value value;
    auto status = pb::util::JsonStringToMessage(json, &value);
    EXPECT_TRUE(status.ok()) << status.ToString();
    return value;
}

// The fields of the "message" of image `name` in a decode document.
pb::Map<std::string, pb::Value>* image_message(pb::Value& document, const std::string& name)
{
    auto& images = *(*document.mutable_struct_value()->mutable_fields())["images"].mutable_list_value();
    for (auto& image : *images.mutable_values()) {
        auto& fields = *image.mutable_struct_value()->mutable_fields();
        if (fields["name"].string_value() == name)
            return fields["message"].mutable_struct_value()->mutable_fields();
    }
    ADD_FAILURE() << name << " is not in the document";
    static pb::Map<std::string, pb::Value> nothing;
    return &nothing;
}

pb::Map<std::string, pb::Value>& object(pb::Map<std::string, pb::Value>& fields, const std::string& key)
{
    return *fields[key].mutable_struct_value()->mutable_fields();
}

void set_numbers(pb::Value& list, std::vector<double> numbers)
{
    list.mutable_list_value()->clear_values();
    for (double number : numbers)
        list.mutable_list_value()->add_values()->set_number_value(number);
}

struct HostileEdit {
    std::string name;
    std::function<void(pb::Value& document, pid_t pid, const Session& session)> edit;
    std::string expected;   // in cryo's error
};

pb::Map<std::string, pb::Value>& credentials(pb::Value& document, pid_t pid)
{
    return object(*image_message(document, "core-" + std::to_string(pid) + ".img"), "credentials");
}

std::vector<HostileEdit> hostile_edits()
{
    return {
        { "uid 0", [](pb::Value& document, pid_t pid, const Session&) { set_numbers(credentials(document, pid)["uids"], { 0, 0, 0, 0 }); },
          "credentials: the image asks for real uid 0, but cryo runs as uid" },
        { "saved uid 0", [](pb::Value& document, pid_t pid, const Session&) {
              auto& uids = *credentials(document, pid)["uids"].mutable_list_value();
              uids.mutable_values(2)->set_number_value(0);
          },
          "the image asks for saved uid 0" },
        { "gid 0", [](pb::Value& document, pid_t pid, const Session&) { set_numbers(credentials(document, pid)["gids"], { 0, 0, 0, 0 }); },
          "the image asks for real gid 0" },
        { "no credentials", [](pb::Value& document, pid_t pid, const Session&) { credentials(document, pid).clear(); },
          "the image lists 0 uids instead of 4" },
        { "group 0", [](pb::Value& document, pid_t pid, const Session&) { set_numbers(credentials(document, pid)["groups"], { 0 }); },
          "the image asks for supplementary group 0" },
        { "capabilities", [](pb::Value& document, pid_t pid, const Session&) {
              auto& saved = credentials(document, pid);
              saved["cap_permitted"].set_string_value(std::to_string(1ull << 21));   // CAP_SYS_ADMIN
              saved["cap_effective"].set_string_value(std::to_string(1ull << 21));
          },
          "the image asks for permitted capabilities the user running cryo does not have (CAP_SYS_ADMIN)" },
        { "cryo's capabilities", [](pb::Value& document, pid_t pid, const Session&) {
              auto& saved = credentials(document, pid);
              std::string both = std::to_string((1ull << 40) | (1ull << 19));   // CAP_CHECKPOINT_RESTORE, CAP_SYS_PTRACE
              saved["cap_permitted"].set_string_value(both);
              saved["cap_inheritable"].set_string_value(both);
              saved["cap_ambient"].set_string_value(both);
          },
          "capabilities the user running cryo does not have (CAP_SYS_PTRACE, CAP_CHECKPOINT_RESTORE)" },
        { "bounding set", [](pb::Value& document, pid_t pid, const Session&) { credentials(document, pid)["cap_bounding"].set_string_value("0"); },
          "dropping from it needs CAP_SETPCAP" },
        { "securebits", [](pb::Value& document, pid_t pid, const Session&) { credentials(document, pid)["securebits"].set_number_value(1); },
          "setting them needs CAP_SETPCAP" },
        { "seccomp without no_new_privs", [](pb::Value& document, pid_t pid, const Session&) {
              auto& core = *image_message(document, "core-" + std::to_string(pid) + ".img");
              auto& thread = *core["threads"].mutable_list_value()->mutable_values(0)->mutable_struct_value()->mutable_fields();
              thread["seccomp_filters"].mutable_list_value()->add_values()->set_string_value("BgAAAAAA/38=");   // RET ALLOW
              credentials(document, pid)["no_new_privs"].set_bool_value(false);
          },
          "seccomp filters in a process without no_new_privs need CAP_SYS_ADMIN" },
        { "PID namespace", [](pb::Value& document, pid_t pid, const Session&) {
              auto& tree = *image_message(document, "tree.img");
              auto& first = *tree["processes"].mutable_list_value()->mutable_values(0)->mutable_struct_value()->mutable_fields();
              set_numbers(first["ns_pids"], { static_cast<double>(pid), 1 });
          },
          "it lives in a PID namespace of its own; creating one needs CAP_SYS_ADMIN" },
        { "chroot", [](pb::Value& document, pid_t pid, const Session&) {
              (*image_message(document, "core-" + std::to_string(pid) + ".img"))["root"].set_string_value("/tmp");
          },
          "chroot needs CAP_SYS_CHROOT" },
        { "a file the user cannot open", [](pb::Value& document, pid_t, const Session& session) {
              auto& files = *(*image_message(document, "files.img"))["files"].mutable_list_value();
              for (auto& file : *files.mutable_values()) {
                  auto& fields = *file.mutable_struct_value()->mutable_fields();
                  if (!fields.contains("regular"))
                      continue;
                  auto& regular = object(fields, "regular");
                  if (regular["path"].string_value() == session.log_path())
                      regular["path"].set_string_value("/etc/shadow");
              }
          },
          "/etc/shadow: Permission denied" },
    };
}

// `from` copied to `to`, everything owned by `user` as the dump left it.
void copy_as(const std::string& from, const std::string& to, const TemporaryUser& user)
{
    std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
    ASSERT_EQ(::chown(to.c_str(), user.uid(), user.gid()), 0);
    for (const auto& entry : std::filesystem::directory_iterator(to))
        ASSERT_EQ(::lchown(entry.path().c_str(), user.uid(), user.gid()), 0);
}

} // namespace

// Each edit, made by the user with decode/encode on a copy of the
// checkpoint, is refused by a restore as the user with the reason named,
// and no process is started; the untouched checkpoint still restores.
TEST(RootlessHostile, ImagesAskingForMoreThanTheUserHasAreRefused)
{
    UserSession setup;
    ASSERT_NO_FATAL_FAILURE(start_as_user(setup, Grant::FileCapabilities, "counter"));
    auto& [user, session, pid] = setup;
    std::string images = session.dir().file("images");
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, images));
    std::string json = session.dir().file("images.json");
    auto decoded = session.cryo({ "decode", "-D", images, "-o", json });
    ASSERT_EQ(decoded.exit_code, 0) << decoded.output;

    int index = 0;
    for (const auto& hostile : hostile_edits()) {
        SCOPED_TRACE(hostile.name);
        pb::Value document = parse(read_file(json));
        hostile.edit(document, pid, session);
        std::string edited_json;
        ASSERT_TRUE(pb::util::MessageToJsonString(document, &edited_json).ok());
        std::string edited = session.dir().file("edited-" + std::to_string(++index));
        ASSERT_NO_FATAL_FAILURE(copy_as(images, edited, user));
        std::ofstream(edited + ".json") << edited_json;
        auto encoded = session.cryo({ "encode", "-i", edited + ".json", "-D", edited });
        ASSERT_EQ(encoded.exit_code, 0) << encoded.output;

        auto restored = session.cryo({ "restore", "-D", edited, "-d" });
        EXPECT_EQ(restored.exit_code, 1) << restored.output;
        EXPECT_NE(restored.output.find(hostile.expected), std::string::npos) << restored.output;
        EXPECT_FALSE(process_exists(pid)) << "a refused restore started pid " << pid;
    }
    ASSERT_NO_FATAL_FAILURE(restore_detached(session, pid, images));
    release_and_expect_pass(session, pid);
}

// An image directory someone else could write is refused before the tree
// is touched: the victim runs on. The user's own group may write it.
TEST(RootlessHostile, ImageDirectoryOthersCanWriteIsRefused)
{
    UserSession setup;
    ASSERT_NO_FATAL_FAILURE(start_as_user(setup, Grant::FileCapabilities, "counter"));
    auto& [user, session, pid] = setup;
    std::string shared = session.dir().file("shared");
    ASSERT_EQ(::mkdir(shared.c_str(), 0700), 0);
    ASSERT_EQ(::chown(shared.c_str(), user.uid(), user.gid()), 0);
    ASSERT_EQ(::chmod(shared.c_str(), 0777), 0);
    auto result = session.cryo({ "dump", "-t", std::to_string(pid), "-D", shared });
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("is writable by other users (mode 777)"), std::string::npos) << result.output;

    std::string foreign = session.dir().file("foreign");
    ASSERT_EQ(::mkdir(foreign.c_str(), 0777), 0);
    ASSERT_EQ(::chmod(foreign.c_str(), 0755), 0);
    result = session.cryo({ "dump", "-t", std::to_string(pid), "-D", foreign });
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_NE(result.output.find("is owned by uid 0, not by the user running cryo"), std::string::npos) << result.output;
    EXPECT_TRUE(std::filesystem::is_empty(shared));

    // Writable by the user's own group only (umask 002): accepted.
    std::string own_group = session.dir().file("own-group");
    ASSERT_EQ(::mkdir(own_group.c_str(), 0700), 0);
    ASSERT_EQ(::chown(own_group.c_str(), user.uid(), user.gid()), 0);
    ASSERT_EQ(::chmod(own_group.c_str(), 0770), 0);
    ASSERT_NO_FATAL_FAILURE(dump(session, pid, own_group, true));
    release_and_expect_pass(session, pid);
}

} // namespace cryo::e2e
