// Running cryo on the CPU of the thread it drives.
//
// An injected call on dump is two round trips: cryo resumes the stopped
// thread and waits for its next stop, twice. With cryo and the thread on
// one CPU, each is a plain switch from one to the other. Across two CPUs
// each is a wake-up of the other CPU by interrupt, which in a VM is an
// exit to the hypervisor, and the woken side may first wait behind
// whatever else runs there (measured on a loaded 2-CPU VM: 1.6 ms for a
// small process's injected calls on one CPU, 6 ms across two).
//
// While a SameCpu lives, the calling thread may run only on the CPU where
// the (stopped) thread last ran (or the one follow() names last). Only for
// ptrace-bound work: threads started meanwhile would inherit the
// restriction. Best effort: if that CPU is not one cryo may use, nothing
// changes.
//
// The kernel tends to wake a resumed thread on the CPU it last ran on, but
// not always: while cryo runs there and the other CPU idles, a wake-up may
// move it to the idle one, and from then on every round trip crosses CPUs
// (the counter victim's "registers and state": 0.7-2.5 ms over 20 dumps,
// the slow ones after such a move; 0.8-1.4 ms with the thread pinned).
// With Hold::both the thread is pinned to the CPU too, and gets its own
// CPUs back when the SameCpu ends. Should cryo be killed in
// between, the thread is left pinned to one CPU (a matter of speed, not of
// correctness). The restore does not pin: it sets the restored threads'
// own CPUs meanwhile, which the end of a SameCpu would undo.
#pragma once

#include <sched.h>
#include <sys/types.h>

#include <vector>

namespace cryo::ptrace {

class SameCpu {
public:
    enum class Hold { cryo, both };
    explicit SameCpu(pid_t tid, Hold hold = Hold::cryo);
    ~SameCpu();
    // Moves to the CPU where `tid` last ran (and pins `tid` there too).
    void follow(pid_t tid);
    SameCpu(const SameCpu&) = delete;
    SameCpu& operator=(const SameCpu&) = delete;

private:
    struct Pinned {
        pid_t tid;
        cpu_set_t own;
    };
    cpu_set_t m_saved {};   // the calling thread's own CPUs
    bool m_saved_ok { false };
    bool m_moved { false };
    Hold m_hold;
    std::vector<Pinned> m_pinned;   // threads pinned by follow(), to put back
};

// Keeping killed processes off cryo's CPU while they exit.
//
// A killed process frees its memory on its way out, and cryo frees it
// with it from another CPU (process_mrelease(2)): 4 GiB took 360-470 ms
// alone and 200-280 ms with both CPUs at it. But process_mrelease only
// works while the process still holds its memory. Woken on cryo's own CPU,
// the process may run first, let go of its memory before cryo's next call
// and free all of it alone (2 of 11 dumps of 1 and 4 GiB without this
// class, none of 11 with it).
//
// While an ApartCpu lives, the calling thread stays on the CPU it runs on,
// and send_away() moves a thread to the other CPUs it may use. Best
// effort: with one CPU, nothing changes.
class ApartCpu {
public:
    ApartCpu();
    ~ApartCpu();
    void send_away(pid_t tid) const;
    ApartCpu(const ApartCpu&) = delete;
    ApartCpu& operator=(const ApartCpu&) = delete;

private:
    cpu_set_t m_saved {};
    int m_cpu { -1 };   // cryo's CPU, -1 when it was not pinned
};

} // namespace cryo::ptrace
