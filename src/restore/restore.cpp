#include "restore/restore.h"
namespace cryo::restore {
Result<int> run_restore(const RestoreOptions&) { return fail("restore: not implemented yet"); }
}
