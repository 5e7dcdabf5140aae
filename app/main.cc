// firebreak: wires the library's parts together through the CLI.
#include "cli/cli.h"
#include "common/allocator.h"

int main(int argc, char** argv) {
  firebreak::TuneAllocator();
  return firebreak::cli::Main(argc, argv);
}
