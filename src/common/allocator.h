// Process-wide malloc settings, applied first thing in main() (and in benchmarks, so they
// measure what ships).
#pragma once

namespace firebreak {

// glibc hands memory back to the kernel once 128 KiB lie free at the top of a heap and
// takes it again at the next allocation. Under load the queue writer did that on every
// commit (madvise, page faults and TLB shootdowns: a third of its CPU), which halved
// durable ingest. This keeps 1 MiB of slack per heap (docs/benchmarks.md).
void TuneAllocator();

}  // namespace firebreak
