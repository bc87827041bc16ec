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
// the (stopped) thread last ran (or the one follow() names last); the
// kernel wakes a resumed thread on that CPU too. Only for ptrace-bound work: threads started meanwhile would
// inherit the restriction. Best effort: if that CPU is not one cryo may
// use, nothing changes.
#pragma once

#include <sched.h>
#include <sys/types.h>

namespace cryo::ptrace {

class SameCpu {
public:
    explicit SameCpu(pid_t tid);
    ~SameCpu();
    // Moves to the CPU where `tid` last ran.
    void follow(pid_t tid);
    SameCpu(const SameCpu&) = delete;
    SameCpu& operator=(const SameCpu&) = delete;

private:
    cpu_set_t m_saved {};   // the calling thread's own CPUs
    bool m_saved_ok { false };
    bool m_moved { false };
};

} // namespace cryo::ptrace
