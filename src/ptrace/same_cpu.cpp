// See same_cpu.h.
#include "ptrace/same_cpu.h"

#include "proc/stat.h"

namespace cryo::ptrace {

SameCpu::SameCpu(pid_t tid)
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
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(stat->processor, &one);
    if (::sched_setaffinity(0, sizeof(one), &one) == 0)
        m_moved = true;
}

SameCpu::~SameCpu()
{
    if (m_moved)
        (void)::sched_setaffinity(0, sizeof(m_saved), &m_saved);
}

} // namespace cryo::ptrace
