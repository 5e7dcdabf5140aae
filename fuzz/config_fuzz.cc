// The config loader on arbitrary TOML: errors are values naming file:line:col, never a
// crash or an exception; a config that parses also summarizes.
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace firebreak;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Result<Config> config = ParseConfig(text, "fuzz.toml");
  if (config.ok()) (void)Summarize(*config);
  return 0;
}
