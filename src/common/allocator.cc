#include "common/allocator.h"

#include <malloc.h>

namespace firebreak {

void TuneAllocator() { mallopt(M_TOP_PAD, 1 << 20); }

}  // namespace firebreak
