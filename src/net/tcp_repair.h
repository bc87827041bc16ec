// Established TCP connections through TCP_REPAIR.
//
// A socket in repair mode lets its owner read and write what the kernel
// keeps about the connection: the sequence numbers of both queues, their
// bytes (MSG_PEEK of the send queue too), the options agreed in the
// handshake, the window and the timestamp. In repair mode connect() sends
// nothing, data written lands in a queue without being sent, and close()
// drops the connection silently (no FIN, no RST): the peer does not notice.
//
// Dump: cryo turns repair mode on through its pidfd_getfd copy (the mode
// belongs to the socket, so it holds for the program's descriptor too),
// reads the state, and keeps the socket in repair mode until the process is
// killed, so it goes away silently; with --leave-running, or when the dump
// fails, RepairedSockets turns repair mode off again before the tree runs.
//
// Restore: a new socket in repair mode gets the queue sequence numbers
// (before connect(), set back by the length of each queue), then is bound
// and connected (no packets), gets the options and timestamp, its receive
// queue and the part of its send queue that had been sent, then the window
// (after the queues: refilling them moves it). Repair mode is left only once
// every socket of the checkpoint exists (leave_repair()), because leaving
// sends a window probe, which a missing peer on this machine would answer
// with a reset; the never-sent part of the send queue is written then, as
// ordinary data.
#pragma once

#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "inet.pb.h"

namespace cryo::net {

// Sockets cryo put in repair mode during a dump. Dropping the set turns
// repair mode off again (the program runs on with its connections);
// release() instead lets them go still in repair mode, right before the
// processes are killed, so their connections close without a packet.
class RepairedSockets {
public:
    RepairedSockets() = default;
    RepairedSockets(RepairedSockets&&) noexcept = default;
    RepairedSockets& operator=(RepairedSockets&&) = delete;
    ~RepairedSockets();

    // Turns repair mode on for `socket` (cryo's copy) and keeps it.
    Result<int> enter(UniqueFd socket);
    // Turns repair mode off for all of them (done by the destructor too).
    void leave();
    void release();

private:
    struct Repaired {
        UniqueFd socket;
        int reuse_address;   // leaving repair mode clears it: set again
    };
    std::vector<Repaired> m_sockets;
};

// The state of a connection whose socket is in repair mode. Queues longer
// than `queue_limit` bytes are refused.
Result<image::TcpConnection> dump_connection(int fd, uint64_t queue_limit);

// Restore, on a new socket: repair mode on and the queue sequence numbers
// (before bind and connect) ...
Result<void> prepare_connection(int fd, const image::TcpConnection& connection);
// ... then, once connected in repair mode: options, timestamp, queues, window.
Result<void> restore_connection(int fd, const image::TcpConnection& connection);
// Leaves repair mode, sending a window probe (the peer answers with its
// window) or not. Restore leaves it silently for every connection of the
// checkpoint first, then probes each (probe_window(): repair mode on and
// off again), so no packet reaches a peer still in repair mode; then
// queue_unsent() writes the data that had never been sent, as ordinary
// data.
enum class RepairExit { Silent, WithProbe };
Result<void> leave_repair(int fd, RepairExit exit);
Result<void> probe_window(int fd);
Result<void> queue_unsent(int fd, const image::TcpConnection& connection);

} // namespace cryo::net
