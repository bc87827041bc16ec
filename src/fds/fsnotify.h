// What inotify and fanotify (src/fds/inotify.cpp, fanotify.cpp) share: the
// "key:hex" fields of their fdinfo lines, the mounts of this machine, and
// finding the object of a watch or mark, at dump time (to record a path for
// it) and again on restore (by file handle, else by that path).
//
// fdinfo names a watched object by inode, device and file handle (the
// name_to_handle_at(2) form), never by path. Dump opens the handle with
// open_by_handle_at(2) on a mount of that device (from
// /proc/self/mountinfo, a mount of the filesystem's root first) and reads
// the path of the result in /proc/self/fd; a handle that cannot be opened
// (a filesystem without handle decoding: procfs, overlayfs without
// nfs_export, ...) is looked for by inode among the entries of the process's
// working directory and of the directories of its open files. An object
// that is found nowhere stops the dump with an error naming the inode,
// device and watch. An object that was deleted (still alive because
// something holds it) is marked so, with the name it had: inotify watches
// it again through the deleted file made again for an open file of the tree
// (see inotify.cpp); fanotify refuses it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "fds/file_kind.h"

namespace cryo::fds::fsnotify {

// The fields of one mark line of fdinfo, e.g. "inotify wd:5 ino:e24f
// sdev:f mask:2 ..." (as fdinfo.cpp splits it: key "inotify wd", value "5
// ino:e24f ..."): {"wd": "5", "ino": "e24f", ...}. The first word of the
// key ("inotify", "fanotify") is dropped.
using Fields = std::map<std::string, std::string, std::less<>>;
Result<Fields> parse_fields(std::string_view key, std::string_view value);
// A field in hex, as the kernel prints them all; an error names the key.
Result<uint64_t> hex_field(const Fields& fields, std::string_view key);

// A device number as the kernel keeps it (s_dev: major << 20 | minor), as
// fdinfo shows "sdev".
struct Device {
    uint32_t major { 0 };
    uint32_t minor { 0 };
};
Device kernel_device(uint64_t sdev);
Device device_of(dev_t dev);
inline bool operator==(const Device& a, const Device& b) { return a.major == b.major && a.minor == b.minor; }

// One line of /proc/self/mountinfo.
struct Mount {
    int id { 0 };
    Device device;
    std::string root;          // the path inside the filesystem mounted here
    std::string mount_point;
    std::string fs_type;
};
Result<std::vector<Mount>> read_mounts(const std::string& path = "/proc/self/mountinfo");
// The mounts of `device`, those of the filesystem's root ("/") first.
std::vector<Mount> mounts_of(const std::vector<Mount>& mounts, Device device);

// Dump: fills `object` from the "ino", "sdev" and "fhandle-*" / "f_handle"
// fields of a mark line and finds the object and its path (see the top).
Result<void> locate_object(const FdFacts& facts, const Fields& fields, image::WatchedObject& object);

// Why a deleted object (WatchedObject.deleted) is a problem: "the watched
// regular file '/a/b' (inode 12 on device 8:1) was deleted; ...".
std::string deleted_error(const image::WatchedObject& object);

// Restore: an O_PATH descriptor of the object, by its file handle (on a
// mount of its device, if it is still the same inode and not deleted), else
// by its path (an object of another type there is an error). The error
// names the path, inode and device.
Result<UniqueFd> reopen_object(const image::WatchedObject& object);

// "'/a/b' (inode 123 on device 254:0)", or without the path when there is
// none.
std::string describe(const image::WatchedObject& object);
// "/proc/self/fd/N": a path that names what `fd` is open on, for the system
// calls that only take a path (inotify_add_watch).
std::string proc_fd_path(int fd);

} // namespace cryo::fds::fsnotify
