// The C++ SDK's no-op handler for bench/sdk_bench.sh: every job answered ok, one at a
// time (as firebreak sends them), through the whole SDK path (envelope, context, answer).
#include "firebreak/sdk.h"

int main() {
  firebreak::Bot bot;
  bot.on("*", [](firebreak::Context&) {});
  return bot.run(1);
}
