// The tracker process; see tracker.h.
#include "mem/tracker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace cryo::mem {

namespace {

constexpr char kRequest = 'T';
constexpr int kClientWaitMs = 5000;

// One message of the hand-over: a pid and, unless it is the closing 0, the
// process's userfaultfd as SCM_RIGHTS.
struct HandOver {
    int32_t pid;
};

std::pair<sockaddr_un, socklen_t> abstract_address(const std::string& name)
{
    sockaddr_un address {};
    address.sun_family = AF_UNIX;
    size_t length = std::min(name.size(), sizeof(address.sun_path) - 1);
    std::memcpy(address.sun_path + 1, name.data(), length);
    return { address, static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + length) };
}

Result<std::string> random_name()
{
    uint64_t bits = 0;
    if (::getrandom(&bits, sizeof(bits), 0) != sizeof(bits))
        return fail_errno("getrandom");
    return fmt::format("cryo-tracker-{:016x}", bits);
}

bool send_one(int socket, int32_t pid, int fd)
{
    HandOver message { pid };
    iovec data { &message, sizeof(message) };
    msghdr header {};
    header.msg_iov = &data;
    header.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] {};
    if (fd >= 0) {
        header.msg_control = control;
        header.msg_controllen = sizeof(control);
        auto* cmsg = CMSG_FIRSTHDR(&header);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    }
    return ::sendmsg(socket, &header, MSG_NOSIGNAL) == sizeof(message);
}

// Serves one client; true when the descriptors were handed over.
bool serve(int listener, std::vector<TrackedFd>& tracked)
{
    UniqueFd client(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    if (!client)
        return false;
    ucred peer {};
    socklen_t length = sizeof(peer);
    if (::getsockopt(client.get(), SOL_SOCKET, SO_PEERCRED, &peer, &length) < 0 || peer.uid != ::getuid())
        return false;
    pollfd wait { client.get(), POLLIN, 0 };
    char request = 0;
    if (::poll(&wait, 1, kClientWaitMs) != 1 || ::read(client.get(), &request, 1) != 1 || request != kRequest)
        return false;
    for (const auto& process : tracked)
        if (process.uffd && !send_one(client.get(), process.pid, process.uffd.get()))
            return false;
    return send_one(client.get(), 0, -1);
}

[[noreturn]] void run_tracker(int listener, std::vector<TrackedFd>& tracked, std::chrono::seconds timeout)
{
    ::signal(SIGPIPE, SIG_IGN);
    ::prctl(PR_SET_NAME, "cryo-tracker");
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        std::vector<pollfd> waits { { listener, POLLIN, 0 } };
        for (const auto& process : tracked)
            waits.push_back({ process.pidfd.get(), POLLIN, 0 });
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            ::_exit(0);
        int ready = ::poll(waits.data(), waits.size(), static_cast<int>(std::min<int64_t>(left.count(), 60'000)));
        if (ready < 0 && errno != EINTR)
            ::_exit(1);
        if (ready <= 0)
            continue;
        // A process that exited needs no tracking; with none left, stop.
        for (size_t i = 1; i < waits.size(); ++i)
            if (waits[i].revents)
                tracked[i - 1].pidfd.reset();
        std::erase_if(tracked, [](const TrackedFd& process) { return !process.pidfd; });
        if (tracked.empty())
            ::_exit(0);
        if ((waits[0].revents & POLLIN) && serve(listener, tracked))
            ::_exit(0);
    }
}

} // namespace

Result<image::DirtyTracker> spawn_tracker(std::vector<TrackedFd>& tracked, std::chrono::seconds timeout)
{
    auto name = TRY(random_name());
    UniqueFd listener(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!listener)
        return fail_errno("tracker socket");
    auto [address, length] = abstract_address(name);
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), length) < 0)
        return fail_errno(fmt::format("bind tracker socket @{}", name));
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) < 0)
        return fail_errno("pipe2");
    UniqueFd pid_reader(pipe_fds[0]);
    UniqueFd pid_writer(pipe_fds[1]);
    std::vector<int> keep { listener.get() };
    for (const auto& process : tracked) {
        keep.push_back(process.uffd.get());
        keep.push_back(process.pidfd.get());
    }

    pid_t middle = ::fork();
    if (middle < 0)
        return fail_errno("fork the tracker");
    if (middle == 0) {
        // Out of cryo's session, then once more so that the tracker is
        // nobody's child: cryo reaps this middle process at once.
        ::setsid();
        pid_t tracker = ::fork();
        if (tracker == 0) {
            // listen() here: a client's SO_PEERCRED then names the tracker.
            tracker = ::getpid();
            if (::listen(listener.get(), 4) < 0)
                tracker = -1;
            (void)::write(pid_writer.get(), &tracker, sizeof(tracker));
            if (tracker < 0)
                ::_exit(1);
            pid_writer.reset();
            close_all_except(keep);
            run_tracker(listener.get(), tracked, timeout);
        }
        ::_exit(tracker > 0 ? 0 : 1);
    }
    pid_writer.reset();
    pid_t tracker = -1;
    ssize_t got = ::read(pid_reader.get(), &tracker, sizeof(tracker));
    int status = 0;
    while (::waitpid(middle, &status, 0) < 0 && errno == EINTR) { }
    if (got != sizeof(tracker) || tracker <= 0)
        return fail("the tracker process could not be started");
    image::DirtyTracker record;
    record.set_socket(name);
    record.set_pid(tracker);
    for (const auto& process : tracked)
        record.add_tracked_pids(process.pid);
    spdlog::debug("tracker pid {} holds the userfaultfds of {} processes on @{}", tracker, tracked.size(), name);
    return record;
}

Result<std::vector<TrackedFd>> take_over_tracker(const image::DirtyTracker& tracker)
{
    std::vector<TrackedFd> taken;
    if (tracker.socket().empty())
        return taken;
    UniqueFd socket(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!socket)
        return fail_errno("tracker socket");
    auto [address, length] = abstract_address(tracker.socket());
    if (::connect(socket.get(), reinterpret_cast<sockaddr*>(&address), length) < 0) {
        spdlog::warn("the dirty-page tracker of the previous checkpoint (pid {}) is gone: memory is stored in full",
                     tracker.pid());
        return taken;
    }
    ucred peer {};
    socklen_t peer_length = sizeof(peer);
    if (::getsockopt(socket.get(), SOL_SOCKET, SO_PEERCRED, &peer, &peer_length) < 0)
        return fail_errno("SO_PEERCRED of the tracker");
    if (peer.pid != tracker.pid()) {
        spdlog::warn("@{} is served by pid {}, not by the tracker pid {}: not used; memory is stored in full",
                     tracker.socket(), peer.pid, tracker.pid());
        return taken;
    }
    if (::write(socket.get(), &kRequest, 1) != 1)
        return fail_errno(fmt::format("request to the tracker pid {}", tracker.pid()));
    for (;;) {
        HandOver message {};
        iovec data { &message, sizeof(message) };
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] {};
        msghdr header {};
        header.msg_iov = &data;
        header.msg_iovlen = 1;
        header.msg_control = control;
        header.msg_controllen = sizeof(control);
        ssize_t got = ::recvmsg(socket.get(), &header, MSG_CMSG_CLOEXEC);
        if (got < 0 && errno == EINTR)
            continue;
        if (got != sizeof(message))
            return fail("the tracker pid {} stopped in the middle of the hand-over", tracker.pid());
        UniqueFd fd;
        if (auto* cmsg = CMSG_FIRSTHDR(&header); cmsg && cmsg->cmsg_type == SCM_RIGHTS) {
            int received = -1;
            std::memcpy(&received, CMSG_DATA(cmsg), sizeof(int));
            fd.reset(received);
        }
        if (message.pid == 0)
            break;
        if (!fd || std::ranges::count(tracker.tracked_pids(), message.pid) == 0)
            return fail("the tracker pid {} handed over a bad entry for pid {}", tracker.pid(), message.pid);
        taken.push_back({ .pid = message.pid, .uffd = std::move(fd), .pidfd = {} });
    }
    return taken;
}

} // namespace cryo::mem
