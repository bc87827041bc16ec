/* memfd and deleted ("ghost") files: a 1 MiB memfd with data only in its
 * first and last page, sealed against growing and shrinking, shared with a
 * child (one open file: the parent's lseek moves the child's offset); a
 * deleted file with data, an offset, an old modification time (zdtm
 * file_attr) and (as root) another owner, open a
 * second time through a hard link deleted too (one file after restore,
 * zdtm unlink_fstat02); a 2 GiB sparse deleted file with 8 KiB of data,
 * which must stay sparse; a file open through a name deleted since while
 * another name of it stays in the directory (the same inode after restore,
 * with its data and offset: zdtm unlink_fstat03). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "victim.h"

#define PAGE 4096

static int deleted_link(int fd)
{
    char path[64], target[4200];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t length = readlink(path, target, sizeof(target) - 1);
    if (length <= 0)
        return 0;
    target[length] = 0;
    return strstr(target, "(deleted)") != NULL;
}

int main(int argc, char **argv)
{
    victim_init(argc, argv);
    int memfd = memfd_create("cryo-test", MFD_ALLOW_SEALING);
    if (memfd < 0 || ftruncate(memfd, 1 << 20))
        return 2;
    char page[PAGE];
    memset(page, 'M', PAGE);
    if (pwrite(memfd, page, PAGE, 0) != PAGE || pwrite(memfd, page, PAGE, (1 << 20) - PAGE) != PAGE)
        return 2;
    fcntl(memfd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK);

    char ghost_path[4200], sparse_path[4200];
    snprintf(ghost_path, sizeof(ghost_path), "%s.ghost", argv[1]);
    snprintf(sparse_path, sizeof(sparse_path), "%s.sparse", argv[1]);
    int ghost = open(ghost_path, O_RDWR | O_CREAT | O_TRUNC, 0640);
    memset(page, 'G', PAGE);
    if (ghost < 0 || write(ghost, page, PAGE) != PAGE)
        return 2;
    lseek(ghost, 1234, SEEK_SET);
    struct timespec old_times[2] = { { 1000, 0 }, { 123456, 789 } };
    if (futimens(ghost, old_times))
        return 2;
    uid_t owner = getuid() == 0 ? 4321 : getuid();
    gid_t group = getuid() == 0 ? 8765 : getgid();
    if (fchown(ghost, owner, group))
        return 2;
    char link_path[4300];
    snprintf(link_path, sizeof(link_path), "%s.link", ghost_path);
    if (link(ghost_path, link_path))
        return 2;
    int linked = open(link_path, O_RDONLY);
    if (linked < 0)
        return 2;
    unlink(ghost_path);
    unlink(link_path);
    int sparse = open(sparse_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    memset(page, 'S', PAGE);
    if (sparse < 0 || ftruncate(sparse, 2ll << 30) || pwrite(sparse, page, PAGE, 1ll << 30) != PAGE
        || pwrite(sparse, page, PAGE, (1ll << 30) + PAGE) != PAGE)
        return 2;
    unlink(sparse_path);
    char renamed_path[4200], kept_path[4300];
    snprintf(renamed_path, sizeof(renamed_path), "%s.renamed", argv[1]);
    snprintf(kept_path, sizeof(kept_path), "%s.kept", renamed_path);
    unlink(kept_path);
    int renamed = open(renamed_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    struct stat renamed_before;
    if (renamed < 0 || write(renamed, "kept-data", 9) != 9 || link(renamed_path, kept_path) || unlink(renamed_path)
        || fstat(renamed, &renamed_before))
        return 2;

    pid_t child = fork();
    if (child == 0) {
        victim_wait();
        victim_check(lseek(memfd, 0, SEEK_CUR) == 4242, "the child's memfd offset is not shared (%ld)", (long)lseek(memfd, 0, SEEK_CUR));
        char byte = 0;
        victim_check(pread(memfd, &byte, 1, (1 << 20) - 1) == 1 && byte == 'M', "the child's memfd content");
        _exit(victim_failures() ? 1 : 0);
    }
    victim_ready();
    victim_wait();

    struct stat st;
    victim_check(fstat(memfd, &st) == 0 && st.st_size == (1 << 20), "memfd size %ld", (long)st.st_size);
    char byte = 0;
    victim_check(pread(memfd, &byte, 1, 0) == 1 && byte == 'M', "memfd first page");
    victim_check(pread(memfd, &byte, 1, 4 * PAGE) == 1 && byte == 0, "memfd hole");
    victim_check(fcntl(memfd, F_GET_SEALS) == (F_SEAL_GROW | F_SEAL_SHRINK), "memfd seals %#x", fcntl(memfd, F_GET_SEALS));
    victim_check(ftruncate(memfd, 2 << 20) < 0, "the memfd could grow");
    lseek(memfd, 4242, SEEK_SET);
    kill(child, SIGUSR1);

    victim_check(lseek(ghost, 0, SEEK_CUR) == 1234 && read(ghost, &byte, 1) == 1 && byte == 'G', "ghost file offset/content");
    victim_check(fstat(ghost, &st) == 0 && st.st_size == PAGE && (st.st_mode & 0777) == 0640 && st.st_nlink == 0,
                 "ghost file size %ld mode %o links %ld", (long)st.st_size, st.st_mode & 0777, (long)st.st_nlink);
    victim_check(st.st_mtim.tv_sec == 123456 && st.st_mtim.tv_nsec == 789, "ghost file mtime %ld.%09ld",
                 (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct stat through_link;
    victim_check(fstat(linked, &through_link) == 0 && through_link.st_ino == st.st_ino && through_link.st_dev == st.st_dev,
                 "the deleted file and its deleted hard link are two files now");
    victim_check(st.st_uid == owner && st.st_gid == group, "ghost file owner %d:%d, not %d:%d", (int)st.st_uid,
                 (int)st.st_gid, (int)owner, (int)group);
    victim_check(deleted_link(ghost) && deleted_link(sparse), "the files are not deleted any more");
    victim_check(fstat(sparse, &st) == 0 && st.st_size == (2ll << 30) && st.st_blocks * 512 < (1 << 20),
                 "sparse ghost: size %lld, %lld bytes allocated", (long long)st.st_size, (long long)st.st_blocks * 512);
    victim_check(pread(sparse, &byte, 1, (1ll << 30) + PAGE + 5) == 1 && byte == 'S', "sparse ghost data");
    victim_check(write(ghost, "x", 1) == 1, "the ghost file is not writable");
    struct stat renamed_after;
    victim_check(fstat(renamed, &renamed_after) == 0 && renamed_after.st_ino == renamed_before.st_ino
                     && renamed_after.st_dev == renamed_before.st_dev && renamed_after.st_nlink == 1,
                 "the file whose other name stays is another file now (%lu links)", (unsigned long)renamed_after.st_nlink);
    victim_check(lseek(renamed, 0, SEEK_CUR) == 9 && pread(renamed, page, 9, 0) == 9 && memcmp(page, "kept-data", 9) == 0,
                 "the file whose other name stays: offset or data");
    unlink(kept_path);
    int status = 0;
    victim_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    return victim_finish();
}
