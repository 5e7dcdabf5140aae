// firebreak: wires the library's parts together through the CLI.
#include <malloc.h>

#include "cli/cli.h"

int main(int argc, char** argv) {
  // glibc hands memory back to the kernel once 128 KiB lie free at the top of a heap and
  // takes it again at the next allocation. Under load the queue writer did that on every
  // commit (madvise, page faults and TLB shootdowns: a third of its CPU), which halved
  // durable ingest. 1 MiB of slack per heap stops it (docs/benchmarks.md).
  mallopt(M_TOP_PAD, 1 << 20);
  return firebreak::cli::Main(argc, argv);
}
