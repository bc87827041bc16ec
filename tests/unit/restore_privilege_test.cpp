// The checks of restore/privilege.h on made-up callers and images: what a
// user without root may be given back, and what needs a capability.
#include <linux/capability.h>

#include <gtest/gtest.h>

#include "restore/privilege.h"

namespace cryo::restore {
namespace {

constexpr uint32_t kUser = 1000;
constexpr uint64_t kAllCapabilities = (1ull << 41) - 1;

proc::Caller user_with_file_capabilities()
{
    proc::Caller caller;
    for (int i = 0; i < 3; ++i) {
        caller.uids[i] = kUser;
        caller.gids[i] = kUser;
    }
    caller.groups = { 27, kUser };
    caller.cap_effective = caller.cap_permitted = (1ull << CAP_CHECKPOINT_RESTORE) | (1ull << CAP_SYS_PTRACE);
    caller.cap_bounding = kAllCapabilities;
    return caller;
}

struct Sample {
    image::ProcessEntry entry;
    image::ProcessCore core;
};

// A process of the user, as a dump of it records it.
Sample users_process()
{
    Sample sample;
    sample.entry.set_pid(4242);
    sample.core.set_pid(4242);
    sample.core.add_threads()->set_tid(4242);
    auto& credentials = *sample.core.mutable_credentials();
    for (int i = 0; i < 4; ++i) {
        credentials.add_uids(kUser);
        credentials.add_gids(kUser);
    }
    credentials.add_groups(kUser);
    credentials.add_groups(27);
    credentials.set_cap_bounding(kAllCapabilities);
    return sample;
}

std::string refusal(const proc::Caller& caller, const Sample& sample)
{
    auto result = check_process_privileges(caller, sample.entry, &sample.core);
    return result ? "" : result.error().message();
}

TEST(RestorePrivilege, TheUsersOwnProcessIsAccepted)
{
    EXPECT_EQ(refusal(user_with_file_capabilities(), users_process()), "");
}

TEST(RestorePrivilege, IdsGroupsAndCapabilitiesBeyondTheUsersAreRefused)
{
    auto caller = user_with_file_capabilities();
    auto with = [](auto edit) {
        Sample sample = users_process();
        edit(*sample.core.mutable_credentials());
        return sample;
    };
    EXPECT_NE(refusal(caller, with([](auto& c) { c.set_uids(3, 0); })).find("pid 4242: credentials: the image asks for filesystem uid 0"),
              std::string::npos);
    EXPECT_NE(refusal(caller, with([](auto& c) { c.set_gids(1, 5); })).find("effective gid 5"), std::string::npos);
    EXPECT_NE(refusal(caller, with([](auto& c) { c.clear_gids(); })).find("lists 0 gids instead of 4"), std::string::npos);
    EXPECT_NE(refusal(caller, with([](auto& c) { c.add_groups(0); })).find("supplementary group 0"), std::string::npos);
    EXPECT_NE(refusal(caller, with([](auto& c) { c.clear_groups(); })).find("needs CAP_SETGID"), std::string::npos);
    // cryo's own capabilities are not the user's.
    EXPECT_NE(refusal(caller, with([](auto& c) { c.set_cap_effective(1ull << CAP_SYS_PTRACE); }))
                  .find("effective capabilities the user running cryo does not have (CAP_SYS_PTRACE)"),
              std::string::npos);
    EXPECT_NE(refusal(caller, with([](auto& c) { c.set_cap_inheritable(1ull << CAP_NET_RAW); })).find("inheritable"),
              std::string::npos);
    EXPECT_NE(refusal(caller, with([](auto& c) { c.set_cap_bounding(kAllCapabilities & ~(1ull << CAP_NET_RAW)); }))
                  .find("bounding set lacks CAP_NET_RAW; dropping from it needs CAP_SETPCAP"),
              std::string::npos);
    // Passed down as ambient capabilities, they are the user's.
    caller.cap_ambient = 1ull << CAP_SYS_PTRACE;
    caller.cap_inheritable = 1ull << CAP_SYS_PTRACE;
    EXPECT_EQ(refusal(caller, with([](auto& c) {
                  c.set_cap_permitted(1ull << CAP_SYS_PTRACE);
                  c.set_cap_ambient(1ull << CAP_SYS_PTRACE);
                  c.set_cap_inheritable(1ull << CAP_SYS_PTRACE);
              })),
              "");
}

TEST(RestorePrivilege, RootIsGivenTheImageButStepsStillNeedTheirCapability)
{
    proc::Caller root;
    root.root = true;
    root.cap_effective = kAllCapabilities;
    Sample sample = users_process();
    sample.core.mutable_credentials()->set_uids(0, 0);
    sample.core.mutable_credentials()->set_cap_effective(kAllCapabilities);
    EXPECT_EQ(refusal(root, sample), "");

    auto caller = user_with_file_capabilities();
    Sample nested = users_process();
    nested.entry.add_ns_pids(4242);
    nested.entry.add_ns_pids(1);
    EXPECT_NE(refusal(caller, nested).find("PID namespace of its own; creating one needs CAP_SYS_ADMIN"), std::string::npos);
    // A zombie has no core: only its namespace matters.
    auto zombie = check_process_privileges(caller, nested.entry, nullptr);
    ASSERT_FALSE(zombie);
    Sample in_uts = users_process();
    in_uts.entry.set_uts_ns(4026532178);
    EXPECT_NE(refusal(caller, in_uts).find("UTS or IPC namespace of its own; creating one needs CAP_SYS_ADMIN"),
              std::string::npos);
    Sample chrooted = users_process();
    chrooted.core.set_root("/srv");
    EXPECT_NE(refusal(caller, chrooted).find("its root directory is /srv; chroot needs CAP_SYS_CHROOT"), std::string::npos);
    Sample filtered = users_process();
    filtered.core.mutable_threads(0)->add_seccomp_filters(std::string(8, '\0'));
    EXPECT_NE(refusal(caller, filtered).find("thread 4242: seccomp filters in a process without no_new_privs"),
              std::string::npos);
    filtered.core.mutable_credentials()->set_no_new_privs(true);
    EXPECT_EQ(refusal(caller, filtered), "");
    Sample strict = users_process();
    strict.core.mutable_threads(0)->set_seccomp_strict(true);
    EXPECT_NE(refusal(caller, strict).find("thread 4242: it runs in seccomp strict mode; restoring it needs "
                                           "CAP_SYS_ADMIN"),
              std::string::npos);
}

} // namespace
} // namespace cryo::restore
