// Pseudo-terminal pairs whose master is open inside the dumped tree (a
// terminal emulator, script, sshd, tmux).
//
// Opening /dev/ptmx creates a pair: the master, and the slave /dev/pts/N,
// where N is the lowest index free in the devpts instance. The kernel has
// no way to ask for an index, and programs know theirs (ptsname, utmp,
// $SSH_TTY), so restore opens /dev/ptmx until it is handed N, keeping the
// lower indexes it is given meanwhile and closing them afterwards; an N
// already in use is an error. The state of the pair is read from cryo's
// copy of the master (ioctls on a master act on the pair): the index
// (TIOCGPTN), the slave's termios (TCGETS2), the window size, the lock,
// packet mode, whether the slave side was closed, and the session whose
// controlling terminal the slave is with its foreground group (TIOCGSID,
// TIOCGPGRP on the master need no controlling terminal). Exclusive mode
// belongs to the slave tty and is read from a slave's open file.
//
// On restore the first open file of a pair (master or slave, whichever
// comes first) creates it from the master's record and keeps the master in
// OpenContext::shared; the master's own open file is that master, and each
// slave open file is a new TIOCGPTPEER open with the dumped flags. The
// session leader takes the terminal back in its restorer (TIOCSCTTY right
// after setsid, before it creates its children, which inherit it), and a
// process of the foreground group gives the group back (TIOCSPGRP) once it
// joined it (src/restore/restorer.cpp).
//
// Bytes queued in the pair and not read yet are kept both ways: what the
// slave wrote (the master's input queue) and what the master wrote (the
// slave's input queue). They cannot be read without consuming them, so the
// dump reads them through cryo's copy of the master and a slave cryo opens
// (TIOCGPTPEER), with canonical mode off on the slave for that time (a
// partial line is not readable otherwise), and writes them back when the
// tree runs on (--leave-running, a failed dump). Putting bytes back, here
// and at restore, runs them through the line discipline again: the master's
// input is written to the slave with output processing (OPOST) off, the
// slave's input to the master with the slave's canonical mode as it was
// (line ends stay line ends, a partial line stays partial) but no echo, no
// signals, no input translation, and every control character set to a byte
// the data does not contain; the termios is set back afterwards.
// What cannot be kept: the queues of a pair in packet mode (a read returns
// status bytes, and termios changes queue status changes). The dump says
// how many bytes are lost.
#include "fds/pty.h"

#include <asm/termbits.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <optional>
#include <set>
#include <vector>

#include "proc/fdinfo.h"
#include "proc/stat.h"
#include "proc/status.h"
#include "proc/task.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

namespace cryo::fds {

namespace {

constexpr unsigned kSlaveMajorFirst = 136;   // UNIX98_PTY_SLAVE_MAJOR
constexpr unsigned kSlaveMajorCount = 8;     // UNIX98_PTY_MAJOR_COUNT
constexpr unsigned kPtmxMajor = 5;
constexpr unsigned kPtmxMinor = 2;
constexpr unsigned kTtyMajor = 5;            // /dev/tty, the caller's controlling terminal
constexpr unsigned kTtyMinor = 0;

bool traced_by_cryo(pid_t pid)
{
    auto status = proc::read_status(pid);
    return status && status->tracer_pid == ::getpid();
}

// The processes of the tree being dumped that `member` belongs to: cryo
// froze every one of them (they are traced by it) and nothing else.
std::vector<pid_t> frozen_tree_of(pid_t member)
{
    pid_t top = member;
    for (int depth = 0; depth < 4096; ++depth) {
        auto status = proc::read_status(top);
        if (!status || status->ppid <= 1 || !traced_by_cryo(status->ppid))
            break;
        top = status->ppid;
    }
    std::vector<pid_t> tree;
    std::deque<pid_t> pending { top };
    while (!pending.empty()) {
        pid_t pid = pending.front();
        pending.pop_front();
        if (!traced_by_cryo(pid))
            continue;   // a zombie: it holds no files
        tree.push_back(pid);
        if (auto children = proc::list_process_children(pid))
            pending.insert(pending.end(), children->begin(), children->end());
    }
    return tree;
}

// Indexes of the pty masters open in the processes (fdinfo shows
// "tty-index" for a master only).
std::set<uint32_t> master_indexes(const std::vector<pid_t>& processes)
{
    std::set<uint32_t> indexes;
    for (pid_t pid : processes) {
        auto fds = proc::list_fds(pid);
        if (!fds)
            continue;
        for (int fd : *fds) {
            auto link = read_link(fmt::format("/proc/{}/fd/{}", pid, fd));
            if (!link || !link->ends_with("ptmx"))
                continue;
            auto info = proc::read_fdinfo(pid, fd);
            if (!info)
                continue;
            if (auto index = info->unsigned_number("tty-index"))
                indexes.insert(static_cast<uint32_t>(*index));
        }
    }
    return indexes;
}

// True when a process of the tree of `member` is in process group `group`.
bool group_in_tree(pid_t group, pid_t member)
{
    for (pid_t pid : frozen_tree_of(member))
        if (auto stat = proc::read_stat(pid); stat && stat->pgrp == group)
            return true;
    return false;
}

template <typename T>
Result<T> query(int fd, unsigned long request, const char* name)
{
    T value {};
    if (::ioctl(fd, request, &value) < 0)
        return fail_errno(fmt::format("ioctl({})", name));
    return value;
}

void save_termios(const struct termios2& termios, image::Termios& saved)
{
    saved.set_iflag(termios.c_iflag);
    saved.set_oflag(termios.c_oflag);
    saved.set_cflag(termios.c_cflag);
    saved.set_lflag(termios.c_lflag);
    saved.set_line(termios.c_line);
    saved.set_cc(std::string(reinterpret_cast<const char*>(termios.c_cc), sizeof(termios.c_cc)));
    saved.set_ispeed(termios.c_ispeed);
    saved.set_ospeed(termios.c_ospeed);
}

Result<struct termios2> load_termios(const image::Termios& saved)
{
    struct termios2 termios {};
    if (saved.cc().size() != sizeof(termios.c_cc))
        return fail("termios: {} control characters, expected {}", saved.cc().size(), sizeof(termios.c_cc));
    termios.c_iflag = saved.iflag();
    termios.c_oflag = saved.oflag();
    termios.c_cflag = saved.cflag();
    termios.c_lflag = saved.lflag();
    termios.c_line = static_cast<cc_t>(saved.line());
    std::memcpy(termios.c_cc, saved.cc().data(), sizeof(termios.c_cc));
    termios.c_ispeed = saved.ispeed();
    termios.c_ospeed = saved.ospeed();
    return termios;
}

// Bytes waiting to be read on this end of a pair in packet mode; they are
// not kept.
void warn_about_lost_bytes(int fd, uint32_t index, const char* end)
{
    int waiting = 0;
    if (::ioctl(fd, FIONREAD, &waiting) == 0 && waiting > 0)
        spdlog::warn("pseudo-terminal {}: {} bytes waiting to be read on the {} are not kept", index, waiting, end);
}

Result<void> set_termios(int master, const struct termios2& termios)
{
    if (::ioctl(master, TCSETS2, &termios) < 0)
        return fail_errno("ioctl(TCSETS2)");
    return {};
}

// Reads every byte queued on `fd` without blocking (its open file may be
// the tree's, whose flags are not cryo's to change). poll() first makes the
// line discipline take what the kernel still holds in its flip buffers.
Result<std::string> read_queued(int fd, const char* end)
{
    std::string data;
    for (;;) {
        pollfd poll_fd { .fd = fd, .events = POLLIN, .revents = 0 };
        if (::poll(&poll_fd, 1, 0) < 0)
            return fail_errno("poll");
        int waiting = 0;
        if (::ioctl(fd, FIONREAD, &waiting) < 0)
            return fail_errno(fmt::format("ioctl(FIONREAD) on the {}", end));
        if (waiting <= 0)
            return data;
        size_t had = data.size();
        data.resize(had + static_cast<size_t>(waiting));
        ssize_t got = ::read(fd, data.data() + had, static_cast<size_t>(waiting));
        if (got < 0)
            return fail_errno(fmt::format("read the bytes queued on the {}", end));
        data.resize(had + static_cast<size_t>(got));
    }
}

// Waits (up to a second) until the line discipline of `fd` shows `count`
// bytes readable: written bytes reach it asynchronously.
void wait_readable(int fd, size_t count)
{
    for (int tries = 0; tries < 1000; ++tries) {
        int waiting = 0;
        if (::ioctl(fd, FIONREAD, &waiting) < 0 || static_cast<size_t>(waiting) >= count)
            return;
        ::usleep(1000);
    }
}

// The slave's termios while bytes are written into its input queue: the
// canonical mode kept, nothing else interpreted (see the top of the file).
Result<struct termios2> quiet_input_termios(struct termios2 termios, const std::string& data)
{
    std::array<bool, 256> used {};
    for (char byte : data)
        used[static_cast<unsigned char>(byte)] = true;
    auto unused = std::ranges::find(used, false);
    if (unused == used.end())
        return fail("the queued bytes use every byte value, so no control character can be set aside");
    auto spare = static_cast<cc_t>(unused - used.begin());
    termios.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHOE | ECHOK | ECHONL | ECHOCTL | ECHOKE | ISIG | IEXTEN);
    termios.c_iflag &= ~static_cast<tcflag_t>(ICRNL | INLCR | IGNCR | ISTRIP | IUCLC | PARMRK);
    for (int control : { VINTR, VQUIT, VERASE, VKILL, VEOF, VSTART, VSTOP, VSUSP, VEOL, VREPRINT, VDISCARD, VWERASE,
                         VLNEXT, VEOL2 })
        termios.c_cc[control] = spare;
    return termios;
}

// Takes the bytes queued in the pair of `master` into `pty` (whose termios
// and lock are recorded already).
Result<void> take_queued_bytes(int master, image::Pty& pty)
{
    auto termios = TRY(load_termios(pty.termios()));
    auto slave = TRY(open_pty_slave(master, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, pty));
    struct termios2 reading = termios;
    reading.c_lflag &= ~static_cast<tcflag_t>(ICANON);
    TRY(set_termios(master, reading));
    auto slave_input = read_queued(slave.get(), "slave");
    if (slave_input)
        pty.set_slave_input(*slave_input);
    TRY(set_termios(master, termios));
    TRY(std::move(slave_input));
    pty.set_master_input(TRY(read_queued(master, "master")));
    return {};
}

// Writes the saved queues of `pty` back into the pair of `master`, whose
// termios is the dumped one.
Result<void> put_back_queued_bytes(int master, const image::Pty& pty)
{
    if (pty.master_input().empty() && pty.slave_input().empty())
        return {};
    auto termios = TRY(load_termios(pty.termios()));
    auto slave = TRY(open_pty_slave(master, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, pty));
    if (!pty.master_input().empty()) {
        struct termios2 raw_output = termios;
        raw_output.c_oflag &= ~static_cast<tcflag_t>(OPOST);
        TRY(set_termios(master, raw_output));
        auto written = write_all(slave.get(), pty.master_input(), "the slave");
        TRY(set_termios(master, termios));
        TRY(std::move(written));
        wait_readable(master, pty.master_input().size());
    }
    if (!pty.slave_input().empty()) {
        TRY(set_termios(master, TRY(quiet_input_termios(termios, pty.slave_input()))));
        auto written = write_all(master, pty.slave_input(), "the master");
        // Canonical mode shows only whole lines as readable.
        const std::string& data = pty.slave_input();
        size_t whole = (termios.c_lflag & ICANON) ? data.rfind('\n') + 1 : data.size();
        if (written)
            wait_readable(slave.get(), whole);
        TRY(set_termios(master, termios));
        TRY(std::move(written));
    }
    return {};
}

Result<void> dump_master(const FdFacts& facts, image::Pty& pty, PtyQueues* queues)
{
    int fd = facts.local_fd;
    uint32_t index = TRY(query<unsigned>(fd, TIOCGPTN, "TIOCGPTN"));
    pty.set_index(index);
    pty.set_master(true);
    pty.set_ptmx_path(facts.link);
    save_termios(TRY(query<struct termios2>(fd, TCGETS2, "TCGETS2")), *pty.mutable_termios());
    auto size = TRY(query<struct winsize>(fd, TIOCGWINSZ, "TIOCGWINSZ"));
    auto* window = pty.mutable_window_size();
    window->set_rows(size.ws_row);
    window->set_cols(size.ws_col);
    window->set_xpixel(size.ws_xpixel);
    window->set_ypixel(size.ws_ypixel);
    pty.set_locked(TRY(query<int>(fd, TIOCGPTLCK, "TIOCGPTLCK")) != 0);
    pty.set_packet_mode(TRY(query<int>(fd, TIOCGPKT, "TIOCGPKT")) != 0);
    pollfd poll_fd { .fd = fd, .events = 0, .revents = 0 };
    if (::poll(&poll_fd, 1, 0) < 0)
        return fail_errno("poll");
    pty.set_slave_closed((poll_fd.revents & POLLHUP) != 0);

    pid_t session = 0;
    if (::ioctl(fd, TIOCGSID, &session) < 0) {
        if (errno != ENOTTY)
            return fail_errno("ioctl(TIOCGSID)");
        session = 0;   // nobody's controlling terminal
    }
    if (session > 0) {
        // Only a session of the tree can take its terminal back.
        if (!traced_by_cryo(session))
            return fail("not supported yet: pseudo-terminal /dev/pts/{} is the controlling terminal of session {}, "
                        "whose leader is not in the dumped tree", index, session);
        pty.set_session(session);
        pid_t foreground = TRY(query<pid_t>(fd, TIOCGPGRP, "TIOCGPGRP"));
        pty.set_foreground_group(foreground);
        if (foreground > 0 && !group_in_tree(foreground, facts.pid))
            spdlog::warn("pseudo-terminal /dev/pts/{}: no process of the tree is in its foreground group {}; "
                         "the session leader's group will be in the foreground", index, foreground);
    }
    if (pty.packet_mode()) {
        warn_about_lost_bytes(fd, index, "master");
        if (auto slave = open_pty_slave(fd, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, pty))
            warn_about_lost_bytes(slave->get(), index, "slave");
        return {};
    }
    auto taken = take_queued_bytes(fd, pty);
    // What was read goes back if the tree runs on, even when the rest failed.
    if (queues)
        queues->keep(fd, pty);
    TRY_CTX(std::move(taken), "pseudo-terminal /dev/pts/{}: bytes queued", index);
    return {};
}

// The slave a file is: /dev/pts/N itself, or /dev/tty (5:0) opened while
// the slave was the process's controlling terminal, which is an open file
// of that slave (TIOCGDEV names it).
std::optional<dev_t> slave_device(const FdFacts& facts)
{
    if (is_pty_slave(facts.stat))
        return facts.stat.st_rdev;
    if (!S_ISCHR(facts.stat.st_mode) || major(facts.stat.st_rdev) != kTtyMajor || minor(facts.stat.st_rdev) != kTtyMinor)
        return std::nullopt;
    unsigned device = 0;
    if (::ioctl(facts.local_fd, TIOCGDEV, &device) < 0)
        return std::nullopt;
    // The kernel's new_encode_dev(), which major() and minor() decode.
    auto real = static_cast<dev_t>(device);
    struct stat real_stat {};
    real_stat.st_mode = S_IFCHR;
    real_stat.st_rdev = real;
    if (!is_pty_slave(real_stat))
        return std::nullopt;
    return real;
}

Result<void> dump_slave(const FdFacts& facts, image::Pty& pty)
{
    auto device = slave_device(facts);
    if (!device)
        return fail("{} is not a pseudo-terminal slave", facts.link);
    uint32_t index = pty_slave_index(*device);
    pty.set_index(index);
    pty.set_master(false);
    pty.set_rdev_major(major(*device));
    pty.set_rdev_minor(minor(*device));
    // A hung-up slave answers no ioctl: nothing more to ask it.
    if (orphan_pty_slave(facts)) {
        pty.set_master_closed(true);
        return {};
    }
    pty.set_exclusive(TRY(query<int>(facts.local_fd, TIOCGEXCL, "TIOCGEXCL")) != 0);
    return {};
}

// Opens /dev/ptmx until the kernel hands out `index` (it gives the lowest
// free one); the lower ones it gives meanwhile are held and closed at the end.
Result<UniqueFd> open_master_with_index(const std::string& path, int flags, uint32_t index)
{
    std::vector<UniqueFd> lower;
    for (;;) {
        auto master = TRY_CTX(open_file(path, flags), "looking for /dev/pts/{}", index);
        unsigned got = TRY(query<unsigned>(master.get(), TIOCGPTN, "TIOCGPTN"));
        if (got == index)
            return master;
        if (got > index)
            return fail("pseudo-terminal /dev/pts/{} is in use: {} handed out /dev/pts/{} instead "
                        "(is the original still running, or did another terminal take it?)", index, path, got);
        lower.push_back(std::move(master));
    }
}

// Creates the pair of a master's record, in the state it was dumped in.
Result<UniqueFd> create_pair(const image::OpenFile& file)
{
    const auto& pty = file.pty();
    auto master = TRY(open_master_with_index(pty.ptmx_path(), reopen_flags(file.flags()) | O_NOCTTY, pty.index()));
    int fd = master.get();
    // Line settings before packet mode: changing them with packet mode on
    // would queue a status change for the master's reader.
    auto termios = TRY(load_termios(pty.termios()));
    if (::ioctl(fd, TCSETS2, &termios) < 0)
        return fail_errno("ioctl(TCSETS2)");
    struct winsize size {};
    size.ws_row = static_cast<unsigned short>(pty.window_size().rows());
    size.ws_col = static_cast<unsigned short>(pty.window_size().cols());
    size.ws_xpixel = static_cast<unsigned short>(pty.window_size().xpixel());
    size.ws_ypixel = static_cast<unsigned short>(pty.window_size().ypixel());
    if (::ioctl(fd, TIOCSWINSZ, &size) < 0)
        return fail_errno("ioctl(TIOCSWINSZ)");
    // The lock as dumped, so that a slave can be opened (a new pair is
    // locked), then the queued bytes, before packet mode too.
    int lock = pty.locked() ? 1 : 0;
    if (::ioctl(fd, TIOCSPTLCK, &lock) < 0)
        return fail_errno("ioctl(TIOCSPTLCK)");
    TRY_CTX(put_back_queued_bytes(fd, pty), "bytes queued");
    int packet = pty.packet_mode() ? 1 : 0;
    if (::ioctl(fd, TIOCPKT, &packet) < 0)
        return fail_errno("ioctl(TIOCPKT)");
    // A slave opened and closed again leaves the master seeing a hang-up.
    if (pty.slave_closed())
        TRY(open_pty_slave(fd, O_RDWR | O_NOCTTY | O_CLOEXEC, pty));
    return master;
}

// The master of the restored pair of the master's record `master_file`,
// created on first use and kept in the context.
Result<int> pair_master(const image::OpenFile& master_file, OpenContext& context)
{
    uint32_t index = master_file.pty().index();
    std::string key = fmt::format("pty:{}", index);
    auto shared = context.shared.find(key);
    if (shared == context.shared.end())
        shared = context.shared.emplace(key, TRY_CTX(create_pair(master_file), "/dev/pts/{}", index)).first;
    return shared->second.get();
}

const image::OpenFile* find_master(const image::FileTable& table, uint32_t index)
{
    for (const auto& file : table.files())
        if (file.kind() == image::FILE_KIND_PTY && file.pty().master() && file.pty().index() == index)
            return &file;
    return nullptr;
}

class PtyKind final : public FileKind {
public:
    std::string_view name() const override { return "pseudo-terminal"; }

    bool recognises(const FdFacts& facts) const override
    {
        return is_pty_master(facts.stat) || pty_slave_with_master_in_tree(facts) || orphan_pty_slave(facts);
    }

    Result<void> dump(const FdFacts& facts, image::OpenFile& file, image::FileTable&) const override
    {
        if (is_pty_master(facts.stat))
            return dump_master(facts, *file.mutable_pty(), facts.pty_queues);
        return dump_slave(facts, *file.mutable_pty());
    }

    Result<UniqueFd> open(const image::OpenFile& file, OpenContext& context) const override
    {
        const auto& pty = file.pty();
        if (!pty.master() && pty.master_closed())
            return open_orphan_slave(file, context);
        const image::OpenFile* master_file = context.table ? find_master(*context.table, pty.index()) : nullptr;
        if (!master_file)
            return fail("the master of /dev/pts/{} is not in the image", pty.index());
        int master = TRY(pair_master(*master_file, context));
        if (pty.master()) {
            // The master is one open file: the pair's own.
            int copy = ::fcntl(master, F_DUPFD_CLOEXEC, 0);
            if (copy < 0)
                return fail_errno("fcntl(F_DUPFD_CLOEXEC) of a pty master");
            return UniqueFd(copy);
        }
        auto slave = TRY_CTX(open_pty_slave(master, reopen_flags(file.flags()) | O_NOCTTY, master_file->pty()),
                             "/dev/pts/{}", pty.index());
        if (pty.exclusive() && ::ioctl(slave.get(), TIOCEXCL) < 0)
            return fail_errno(fmt::format("/dev/pts/{}: ioctl(TIOCEXCL)", pty.index()));
        return slave;
    }

    // Once every file is open, the masters of the orphans' new pairs are
    // closed: their slaves hang up, as the originals had.
    Result<void> finish(OpenContext& context) const override
    {
        std::erase_if(context.shared, [](const auto& entry) { return entry.first.starts_with(kOrphanKey); });
        return {};
    }

    image::FileKind image_kind() const override { return image::FILE_KIND_PTY; }

private:
    static constexpr std::string_view kOrphanKey = "pty-orphan:";

    // A slave whose master was closed: a slave of a new pair (one per
    // original index, so that its open files stay one tty), taken after
    // every pair of the checkpoint so as not to take an index one needs.
    static Result<UniqueFd> open_orphan_slave(const image::OpenFile& file, OpenContext& context)
    {
        const auto& pty = file.pty();
        std::string key = fmt::format("{}{}", kOrphanKey, pty.index());
        auto shared = context.shared.find(key);
        if (shared == context.shared.end()) {
            for (int i = 0; context.table && i < context.table->files_size(); ++i) {
                const auto& other = context.table->files(i);
                if (other.kind() == image::FILE_KIND_PTY && other.pty().master())
                    TRY(pair_master(other, context));
            }
            auto master = TRY_CTX(open_file("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC),
                                  "a new pair for the slave of /dev/pts/{} whose master was closed", pty.index());
            int unlock = 0;
            if (::ioctl(master.get(), TIOCSPTLCK, &unlock) < 0)
                return fail_errno("ioctl(TIOCSPTLCK)");
            shared = context.shared.emplace(key, std::move(master)).first;
        }
        return TRY_CTX(open_pty_slave(shared->second.get(), reopen_flags(file.flags()) | O_NOCTTY, image::Pty {}),
                       "the slave of /dev/pts/{} whose master was closed", pty.index());
    }
};

} // namespace

bool orphan_pty_slave(const FdFacts& facts)
{
    return is_pty_slave(facts.stat) && facts.link.ends_with(" (deleted)");
}

bool is_pty_master(const struct stat& st)
{
    return S_ISCHR(st.st_mode) && major(st.st_rdev) == kPtmxMajor && minor(st.st_rdev) == kPtmxMinor;
}

bool is_pty_slave(const struct stat& st)
{
    return S_ISCHR(st.st_mode) && major(st.st_rdev) >= kSlaveMajorFirst
        && major(st.st_rdev) < kSlaveMajorFirst + kSlaveMajorCount;
}

uint32_t pty_slave_index(dev_t rdev)
{
    return (major(rdev) - kSlaveMajorFirst) * 256 + minor(rdev);
}

bool pty_slave_with_master_in_tree(const FdFacts& facts)
{
    auto device = slave_device(facts);
    if (!device)
        return false;
    return master_indexes(frozen_tree_of(facts.pid)).contains(pty_slave_index(*device));
}

Result<UniqueFd> open_pty_slave(int master, int flags, const image::Pty& pair)
{
    int unlock = 0;
    if (pair.locked() && ::ioctl(master, TIOCSPTLCK, &unlock) < 0)
        return fail_errno("ioctl(TIOCSPTLCK) to unlock");
    // Unlike open(2), TIOCGPTPEER keeps O_CLOEXEC among the file's status
    // flags (F_GETFL would show it): close-on-exec is set on the descriptor.
    int slave = ::ioctl(master, TIOCGPTPEER, flags & ~O_CLOEXEC);
    int saved_errno = errno;
    if (slave >= 0)
        ::fcntl(slave, F_SETFD, FD_CLOEXEC);
    int lock = 1;
    if (pair.locked() && ::ioctl(master, TIOCSPTLCK, &lock) < 0) {
        if (slave >= 0)
            ::close(slave);
        return fail_errno("ioctl(TIOCSPTLCK) to lock again");
    }
    if (slave < 0)
        return fail_errno("ioctl(TIOCGPTPEER)", saved_errno);
    return UniqueFd(slave);
}

void PtyQueues::keep(int master, const image::Pty& pty)
{
    if (pty.master_input().empty() && pty.slave_input().empty())
        return;
    int copy = ::fcntl(master, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) {
        spdlog::warn("pseudo-terminal /dev/pts/{}: cannot keep its master to put its queued bytes back: {}", pty.index(),
                     std::strerror(errno));
        return;
    }
    m_pairs.push_back({ UniqueFd(copy), pty });
}

void PtyQueues::put_back()
{
    for (auto& pair : m_pairs)
        if (auto done = put_back_queued_bytes(pair.master.get(), pair.pty); !done)
            spdlog::warn("pseudo-terminal /dev/pts/{}: putting its queued bytes back: {}", pair.pty.index(),
                         done.error().message());
    m_pairs.clear();
}

const FileKind& pty_kind()
{
    static const PtyKind kind;
    return kind;
}

} // namespace cryo::fds
