// `cryo lazy-pages` and the restore's side of its registration; see
// command.h.
#include "lazy/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <charconv>
#include <filesystem>
#include <string_view>
#include <vector>

#include "base/scope_guard.h"
#include "base/syscalls.h"
#include "image/key.h"

namespace cryo::lazy {

namespace {

constexpr const char* kSocketName = "lazy-pages.sock";
// How long a restore waits for the settings of a command that accepted it.
constexpr int kSettingsTimeoutMs = 5000;

// The socket's address through the directory's descriptor: short whatever
// the directory's path.
sockaddr_un socket_address(int directory_fd)
{
    sockaddr_un address {};
    address.sun_family = AF_UNIX;
    auto path = fmt::format("/proc/self/fd/{}/{}", directory_fd, kSocketName);
    path.copy(address.sun_path, sizeof(address.sun_path) - 1);
    return address;
}

Result<UniqueFd> open_directory(const std::string& directory)
{
    return TRY_CTX(open_file(directory, O_PATH | O_DIRECTORY | O_CLOEXEC), "images directory");
}

Result<UniqueFd> new_socket()
{
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail_errno("socket(AF_UNIX)");
    return UniqueFd(fd);
}

// Connects to the registration of the directory; ECONNREFUSED or ENOENT
// when there is none.
Result<UniqueFd> connect_registration(int directory_fd)
{
    auto connection = TRY(new_socket());
    auto address = socket_address(directory_fd);
    while (::connect(connection.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) < 0)
        if (errno != EINTR)
            return fail_errno("connect", errno);
    return connection;
}

// Splits off the complete lines received so far.
std::vector<std::string> take_lines(std::string& buffer)
{
    std::vector<std::string> lines;
    for (size_t end; (end = buffer.find('\n')) != std::string::npos; buffer.erase(0, end + 1))
        lines.push_back(buffer.substr(0, end));
    return lines;
}

// Appends what `fd` has to `buffer`; false at end of file (or an error).
bool receive(int fd, std::string& buffer)
{
    char chunk[512];
    ssize_t got;
    while ((got = ::read(fd, chunk, sizeof(chunk))) < 0 && errno == EINTR) { }
    if (got <= 0)
        return false;
    buffer.append(chunk, static_cast<size_t>(got));
    return true;
}

template <typename Number>
std::optional<Number> parse_number(std::string_view text)
{
    Number value {};
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size())
        return std::nullopt;
    return value;
}

void send_line(int connection, const std::string& line)
{
    (void)::send(connection, (line + "\n").data(), line.size() + 1, MSG_NOSIGNAL);
}

std::string settings_message(const LazyPagesOptions& options)
{
    if (!options.page_server)
        return "local\nend\n";
    const auto& server = *options.page_server;
    return fmt::format("page-server\naddress {}\nport {}\nkey {}\nend\n", server.address, server.port, server.key);
}

// Registers the command: listens on DIR/lazy-pages.sock, replacing a stale
// one and refusing to replace a live one.
Result<UniqueFd> listen_for_restore(int directory_fd, const std::string& directory)
{
    if (auto live = connect_registration(directory_fd))
        return fail("{}/{}: another `cryo lazy-pages` is waiting for this directory", directory, kSocketName);
    if (::unlinkat(directory_fd, kSocketName, 0) < 0 && errno != ENOENT)
        return fail_errno(fmt::format("remove the stale {}/{}", directory, kSocketName));
    auto listener = TRY(new_socket());
    auto address = socket_address(directory_fd);
    mode_t old_mask = ::umask(0177);   // the socket file is 0600
    int bound = ::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address));
    int bind_error = errno;
    ::umask(old_mask);
    if (bound < 0)
        return fail_errno(fmt::format("bind {}/{}", directory, kSocketName), bind_error);
    if (::listen(listener.get(), 4) < 0)
        return fail_errno(fmt::format("listen on {}/{}", directory, kSocketName));
    return listener;
}

// A restore says so first; a `cryo lazy-pages` probing whether the
// registration lives says nothing and closes.
bool is_restore(int connection)
{
    timeval timeout { .tv_sec = kSettingsTimeoutMs / 1000, .tv_usec = 0 };
    (void)::setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    std::string buffer;
    while (buffer.find('\n') == std::string::npos)
        if (!receive(connection, buffer))
            return false;
    timeval none {};
    (void)::setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    return take_lines(buffer).front() == "restore";
}

// SIGINT, SIGTERM and SIGHUP arrive here instead of ending the command
// before it removed its registration.
Result<UniqueFd> block_signals()
{
    sigset_t signals;
    ::sigemptyset(&signals);
    for (int signal : { SIGINT, SIGTERM, SIGHUP })
        ::sigaddset(&signals, signal);
    if (::sigprocmask(SIG_BLOCK, &signals, nullptr) < 0)
        return fail_errno("sigprocmask");
    int fd = ::signalfd(-1, &signals, SFD_CLOEXEC);
    if (fd < 0)
        return fail_errno("signalfd");
    return UniqueFd(fd);
}

int signal_of(int signal_fd)
{
    signalfd_siginfo info {};
    return ::read(signal_fd, &info, sizeof(info)) == sizeof(info) ? static_cast<int>(info.ssi_signo) : 0;
}

// What the restore and the server said, as the command follows them.
struct Followed {
    std::optional<pid_t> server;   // 0: nothing was left lazy
    std::optional<int> status;
};

void take_messages(std::string& buffer, Followed& followed)
{
    for (const auto& line : take_lines(buffer)) {
        std::string_view text = line;
        if (text == "nothing-lazy")
            followed.server = 0;
        else if (text.starts_with("server "))
            followed.server = parse_number<pid_t>(text.substr(7));
        else if (text.starts_with("status "))
            followed.status = parse_number<int>(text.substr(7));
        else
            spdlog::warn("lazy-pages: unexpected message '{}'", line);
    }
}

// After the handover: waits for the restore's word and the server's end.
Result<void> follow(int connection, int signal_fd, const std::string& directory)
{
    Followed followed;
    std::string buffer;
    UniqueFd server_pidfd;
    bool server_gone = false;
    for (;;) {
        if (followed.server == 0) {
            spdlog::info("the restore left no memory lazy: nothing to serve");
            return {};
        }
        if (followed.server && followed.status) {
            if (*followed.status != 0)
                return fail("the lazy-pages server pid {} finished with errors (see {}/lazy-pages.log)", *followed.server,
                            directory);
            spdlog::info("the lazy-pages server pid {} is done: every page is in place", *followed.server);
            return {};
        }
        if (followed.server && !server_pidfd && !server_gone) {
            spdlog::info("the restore started the lazy-pages server pid {}; following it", *followed.server);
            if (auto pidfd = pidfd_open(*followed.server))
                server_pidfd = std::move(*pidfd);
            else
                server_gone = true;
        }
        std::vector<pollfd> waits { { connection, POLLIN, 0 }, { signal_fd, POLLIN, 0 } };
        if (server_pidfd)
            waits.push_back({ server_pidfd.get(), POLLIN, 0 });
        // A server that is gone wrote its status before it exited: what is
        // not in the socket by now will not come.
        int ready = ::poll(waits.data(), waits.size(), server_gone ? 0 : -1);
        if (ready < 0 && errno != EINTR)
            return fail_errno("poll");
        if (waits[1].revents & POLLIN)
            return fail("interrupted by signal {}{}", signal_of(signal_fd),
                        followed.server ? fmt::format(" (the lazy-pages server pid {} goes on)", *followed.server) : "");
        if (waits[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (receive(connection, buffer)) {
                take_messages(buffer, followed);
                continue;
            }
            if (!followed.server)
                return fail("the restore of {} ended before the tree ran (see its own output): nothing to serve",
                            directory);
            return fail("the lazy-pages server pid {} exited without reporting (killed?): pages may be missing, see "
                        "{}/lazy-pages.log",
                        *followed.server, directory);
        }
        if (server_pidfd && waits.size() > 2 && (waits[2].revents & POLLIN)) {
            server_pidfd.reset();
            server_gone = true;
            continue;
        }
        if (server_gone)
            return fail("the lazy-pages server pid {} is gone without reporting (killed?): pages may be missing, see "
                        "{}/lazy-pages.log",
                        *followed.server, directory);
    }
}

} // namespace

Result<void> run_lazy_pages(const LazyPagesOptions& options)
{
    if (options.timeout.count() <= 0)
        return fail("--timeout {}: must be at least 1 second", options.timeout.count());
    LazyPagesOptions settings = options;
    if (settings.page_server && !settings.page_server->key.empty()) {
        TRY_CTX(image::Key::load(settings.page_server->key), "--key");
        settings.page_server->key = std::filesystem::absolute(settings.page_server->key).string();
    }
    // The restore fetches a remote checkpoint into a directory it may create.
    if (settings.page_server && ::mkdir(options.directory.c_str(), 0700) < 0 && errno != EEXIST)
        return fail_errno(fmt::format("create images directory {}", options.directory));
    auto directory = TRY_CTX(open_directory(options.directory), "{}", options.directory);
    ::signal(SIGPIPE, SIG_IGN);   // a restore that went away is an error, not a signal
    auto signals = TRY(block_signals());
    auto listener = TRY(listen_for_restore(directory.get(), options.directory));
    bool registered = true;
    auto unregister = [&] {
        if (registered)
            (void)::unlinkat(directory.get(), kSocketName, 0);
        registered = false;
    };
    ScopeGuard unregister_on_exit(unregister);
    spdlog::info("waiting for `cryo restore -D {} --lazy-pages` (registered as {}/{}, for up to {} s)", options.directory,
                 options.directory, kSocketName, options.timeout.count());

    auto deadline = std::chrono::steady_clock::now() + options.timeout;
    UniqueFd connection;
    while (!connection) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return fail("no `cryo restore -D {} --lazy-pages` came within {} s", options.directory,
                        options.timeout.count());
        pollfd waits[] = { { listener.get(), POLLIN, 0 }, { signals.get(), POLLIN, 0 } };
        if (::poll(waits, 2, static_cast<int>(left.count())) < 0 && errno != EINTR)
            return fail_errno("poll");
        if (waits[1].revents & POLLIN)
            return fail("interrupted by signal {} before a restore of {} came", signal_of(signals.get()),
                        options.directory);
        if (waits[0].revents & POLLIN) {
            int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
            if (fd >= 0 && is_restore(fd))
                connection = UniqueFd(fd);
            else if (fd >= 0)
                ::close(fd);   // another `cryo lazy-pages` checking whether this one lives
        }
    }
    // One restore per registration.
    unregister();
    listener.reset();
    spdlog::info("a restore of {} connected", options.directory);
    TRY_CTX(write_all(connection.get(), settings_message(settings), "the settings"), "the restore of {}",
            options.directory);
    return follow(connection.get(), signals.get(), options.directory);
}

Result<std::optional<Registration>> find_registration(const std::string& directory)
{
    auto directory_fd = open_directory(directory);
    if (!directory_fd)
        return std::nullopt;   // no directory, no registration (the restore says what is missing)
    auto connection = connect_registration(directory_fd->get());
    if (!connection) {
        spdlog::debug("no `cryo lazy-pages` waits for {}: {}", directory, connection.error().message());
        return std::nullopt;
    }
    timeval timeout { .tv_sec = kSettingsTimeoutMs / 1000, .tv_usec = 0 };
    (void)::setsockopt(connection->get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    send_line(connection->get(), "restore");
    std::string buffer;
    std::vector<std::string> lines;
    while (lines.empty() || lines.back() != "end") {
        if (!receive(connection->get(), buffer)) {
            // Another restore took it, or it went away: none waits for us.
            spdlog::warn("the `cryo lazy-pages` waiting for {} did not answer: restoring without it", directory);
            return std::nullopt;
        }
        for (auto& line : take_lines(buffer))
            lines.push_back(std::move(line));
    }
    timeval none {};
    (void)::setsockopt(connection->get(), SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    Registration registration { .connection = std::move(*connection) };
    if (lines.front() == "page-server") {
        PageServerRequest server;
        for (const auto& line : lines) {
            std::string_view text = line;
            if (text.starts_with("address "))
                server.address = text.substr(8);
            else if (text.starts_with("port "))
                server.port = parse_number<uint16_t>(text.substr(5)).value_or(0);
            else if (text.starts_with("key "))
                server.key = text.substr(4);
        }
        if (server.address.empty() || server.port == 0)
            return fail("{}/{}: the waiting `cryo lazy-pages` sent no page-server address and port", directory,
                        kSocketName);
        registration.page_server = std::move(server);
    } else if (lines.front() != "local") {
        return fail("{}/{}: the waiting `cryo lazy-pages` sent '{}', not its settings", directory, kSocketName,
                    lines.front());
    }
    spdlog::info("a `cryo lazy-pages` waits for {}{}", directory,
                 registration.page_server ? fmt::format(": pages from the page server {}:{}",
                                                        registration.page_server->address,
                                                        registration.page_server->port)
                                          : "");
    return registration;
}

void tell_restored(int connection, pid_t server)
{
    send_line(connection, server > 0 ? fmt::format("server {}", server) : "nothing-lazy");
}

void tell_status(int connection, int status) { send_line(connection, fmt::format("status {}", status)); }

} // namespace cryo::lazy
