// firebreak: wires the library's parts together through the CLI.
#include "cli/cli.h"

int main(int argc, char** argv) { return firebreak::cli::Main(argc, argv); }
