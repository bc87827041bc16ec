// See same_cpu.h.
#include "ptrace/same_cpu.h"

#include <algorithm>

#include "proc/stat.h"

namespace cryo::ptrace {

namespace {

// Lets `tid` (0: the calling thread) run only on `cpu`.
bool pin_to(pid_t tid, int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return ::sched_setaffinity(tid, sizeof(one), &one) == 0;
}

} // namespace

SameCpu::SameCpu(pid_t tid, Hold hold) : m_hold(hold)
{
    m_saved_ok = ::sched_getaffinity(0, sizeof(m_saved), &m_saved) == 0 && CPU_COUNT(&m_saved) > 1;
    follow(tid);
}

void SameCpu::follow(pid_t tid)
{
    if (!m_saved_ok)
        return;
    auto stat = proc::read_stat(tid);
    if (!stat || stat->processor < 0 || stat->processor >= CPU_SETSIZE || !CPU_ISSET(stat->processor, &m_saved))
        return;
    if (!pin_to(0, stat->processor))
        return;
    m_moved = true;
    if (m_hold != Hold::both || std::ranges::any_of(m_pinned, [tid](const Pinned& p) { return p.tid == tid; }))
        return;
    Pinned pinned { tid, {} };
    if (::sched_getaffinity(tid, sizeof(pinned.own), &pinned.own) == 0 && CPU_ISSET(stat->processor, &pinned.own) &&
        pin_to(tid, stat->processor))
        m_pinned.push_back(pinned);
}

SameCpu::~SameCpu()
{
    for (const auto& pinned : m_pinned)
        (void)::sched_setaffinity(pinned.tid, sizeof(pinned.own), &pinned.own);
    if (m_moved)
        (void)::sched_setaffinity(0, sizeof(m_saved), &m_saved);
}

ApartCpu::ApartCpu()
{
    int cpu = ::sched_getcpu();
    if (cpu < 0 || cpu >= CPU_SETSIZE || ::sched_getaffinity(0, sizeof(m_saved), &m_saved) != 0 ||
        CPU_COUNT(&m_saved) < 2)
        return;
    if (pin_to(0, cpu))
        m_cpu = cpu;
}

ApartCpu::~ApartCpu()
{
    if (m_cpu >= 0)
        (void)::sched_setaffinity(0, sizeof(m_saved), &m_saved);
}

void ApartCpu::send_away(pid_t tid) const
{
    cpu_set_t others;
    if (m_cpu < 0 || ::sched_getaffinity(tid, sizeof(others), &others) != 0)
        return;
    CPU_CLR(m_cpu, &others);
    if (CPU_COUNT(&others) > 0)
        (void)::sched_setaffinity(tid, sizeof(others), &others);
}

} // namespace cryo::ptrace
