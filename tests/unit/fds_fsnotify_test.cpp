// Tests for the inotify/fanotify helpers (src/fds/fsnotify.h): the fields of
// fdinfo mark lines (samples captured on the development machine), kernel
// device numbers, mountinfo parsing, and finding a watched object by file
// handle on a live file.
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "fds/fsnotify.h"
#include "proc/fdinfo.h"
#include "temp_dir.h"

namespace cryo::fds::fsnotify {
namespace {

using test::TempDir;

TEST(FdsFsnotify, InotifyLineFields)
{
    auto info = proc::parse_fdinfo("pos:\t0\nflags:\t04000\nmnt_id:\t17\nino:\t18\n"
                                   "inotify wd:2d ino:a723c8 sdev:fe00000 mask:4000002 ignored_mask:0 "
                                   "fhandle-bytes:8 fhandle-type:1 f_handle:c823a7007dc53979\n");
    ASSERT_TRUE(info) << info.error().message();
    const auto& [key, value] = info->lines.back();
    auto fields = parse_fields(key, value);
    ASSERT_TRUE(fields) << fields.error().message();
    EXPECT_EQ(hex_field(*fields, "wd").value(), 45u);
    EXPECT_EQ(hex_field(*fields, "ino").value(), 0xa723c8u);
    EXPECT_EQ(hex_field(*fields, "mask").value(), 0x4000002u);
    EXPECT_EQ(fields->at("f_handle"), "c823a7007dc53979");
    Device device = kernel_device(hex_field(*fields, "sdev").value());
    EXPECT_EQ(device.major, 254u);
    EXPECT_EQ(device.minor, 0u);
    EXPECT_FALSE(hex_field(*fields, "missing"));
}

TEST(FdsFsnotify, FanotifyLineFields)
{
    auto flags = parse_fields("fanotify flags", "3 event-flags:8000");
    ASSERT_TRUE(flags) << flags.error().message();
    EXPECT_EQ(hex_field(*flags, "flags").value(), 3u);
    EXPECT_EQ(hex_field(*flags, "event-flags").value(), 0x8000u);
    auto mount = parse_fields("fanotify mnt_id", "1e mflags:0 mask:20 ignored_mask:0");
    ASSERT_TRUE(mount) << mount.error().message();
    EXPECT_EQ(hex_field(*mount, "mnt_id").value(), 30u);
    EXPECT_FALSE(mount->contains("ino"));
    auto bad = parse_fields("fanotify sdev", "1b mflags");
    EXPECT_FALSE(bad);
    auto not_hex = parse_fields("inotify wd", "zz ino:1");
    ASSERT_TRUE(not_hex);
    EXPECT_FALSE(hex_field(*not_hex, "wd"));
}

TEST(FdsFsnotify, MountinfoWithEscapesAndOptionalFields)
{
    TempDir temp;
    std::string path = temp / "mountinfo";
    std::ofstream(path) << "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
                           "30 24 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw\n"
                           "41 27 254:0 /srv/a\\040b /mnt/with\\040space rw - ext4 /dev/vda rw\n";
    auto mounts = read_mounts(path);
    ASSERT_TRUE(mounts) << mounts.error().message();
    ASSERT_EQ(mounts->size(), 3u);
    EXPECT_EQ((*mounts)[0].id, 27);
    EXPECT_EQ((*mounts)[0].fs_type, "ext4");
    EXPECT_EQ((*mounts)[2].root, "/srv/a b");
    EXPECT_EQ((*mounts)[2].mount_point, "/mnt/with space");
    auto of_vda = mounts_of(*mounts, Device { 254, 0 });
    ASSERT_EQ(of_vda.size(), 2u);
    EXPECT_EQ(of_vda[0].mount_point, "/");
    EXPECT_EQ(mounts_of(*mounts, Device { 0, 27 }).size(), 1u);
}

// A live watch: its fdinfo line leads back to the file, by handle, and the
// object opens again by handle and, once replaced, by path.
TEST(FdsFsnotify, LocateAndReopenLiveWatch)
{
    TempDir temp;
    std::string file = temp / "watched";
    std::ofstream(file) << "x";
    int inotify = ::inotify_init1(IN_CLOEXEC);
    ASSERT_GE(inotify, 0);
    UniqueFd owned(inotify);
    ASSERT_GT(::inotify_add_watch(inotify, file.c_str(), IN_MODIFY), 0);
    auto info = proc::read_fdinfo(::getpid(), inotify);
    ASSERT_TRUE(info) << info.error().message();
    const auto& [key, value] = info->lines.back();
    auto fields = parse_fields(key, value);
    ASSERT_TRUE(fields) << fields.error().message();

    FdFacts facts;
    facts.pid = ::getpid();
    facts.fd = inotify;
    image::WatchedObject object;
    auto located = locate_object(facts, *fields, object);
    ASSERT_TRUE(located) << located.error().message();
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(object.inode(), st.st_ino);
    EXPECT_EQ(object.dev_major(), major(st.st_dev));
    EXPECT_EQ(object.path(), file);
    EXPECT_EQ(object.file_type(), static_cast<uint32_t>(S_IFREG));

    auto again = reopen_object(object);
    ASSERT_TRUE(again) << again.error().message();
    struct stat reopened {};
    ASSERT_EQ(::fstat(again->get(), &reopened), 0);
    EXPECT_EQ(reopened.st_ino, st.st_ino);

    // Replaced by a directory: the handle no longer opens, the path has
    // another type.
    owned.reset();
    ASSERT_EQ(::unlink(file.c_str()), 0);
    ASSERT_EQ(::mkdir(file.c_str(), 0700), 0);
    auto replaced = reopen_object(object);
    ASSERT_FALSE(replaced);
    EXPECT_NE(replaced.error().message().find("was a regular file and '" + file + "' is now a directory"),
              std::string::npos)
        << replaced.error().message();
}

} // namespace
} // namespace cryo::fds::fsnotify
