// Conversion of x86-64 general registers between ptrace's user_regs_struct
// and the image's X86Registers message.
#pragma once

#include "core.pb.h"
#include "ptrace/tracee.h"

namespace cryo::ptrace {

void registers_to_image(const Registers& registers, image::X86Registers& out);
Registers registers_from_image(const image::X86Registers& in);

} // namespace cryo::ptrace
