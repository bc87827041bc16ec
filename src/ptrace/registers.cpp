// Field-by-field copy of the general registers; the list below is the one
// place that knows the layout of user_regs_struct.
#include "ptrace/registers.h"

namespace cryo::ptrace {

// Applies `copy(image_setter/getter, register field)` to every register.
#define CRYO_FOR_EACH_REGISTER(X)                                               \
    X(r15) X(r14) X(r13) X(r12) X(rbp) X(rbx) X(r11) X(r10) X(r9) X(r8)         \
    X(rax) X(rcx) X(rdx) X(rsi) X(rdi) X(orig_rax) X(rip) X(cs) X(eflags)       \
    X(rsp) X(ss) X(fs_base) X(gs_base) X(ds) X(es) X(fs) X(gs)

void registers_to_image(const Registers& registers, image::X86Registers& out)
{
#define CRYO_SAVE(name) out.set_##name(registers.name);
    CRYO_FOR_EACH_REGISTER(CRYO_SAVE)
#undef CRYO_SAVE
}

Registers registers_from_image(const image::X86Registers& in)
{
    Registers registers {};
#define CRYO_LOAD(name) registers.name = in.name();
    CRYO_FOR_EACH_REGISTER(CRYO_LOAD)
#undef CRYO_LOAD
    return registers;
}

#undef CRYO_FOR_EACH_REGISTER

} // namespace cryo::ptrace
