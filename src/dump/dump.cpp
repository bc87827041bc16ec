#include "dump/dump.h"
namespace cryo::dump {
Result<void> run_dump(const DumpOptions&) { return fail("dump: not implemented yet"); }
}
