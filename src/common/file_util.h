// Reading the small files a config points at (secrets, CA bundles) in one place.
#pragma once

#include <cstddef>
#include <string>

#include "common/status.h"

namespace firebreak {

// Reads the whole file at `path` if it holds at most `max_bytes` (a wrong path pointing
// at a huge file is found after reading max_bytes + 1, not all of it). Errors carry the
// bare reason, for callers to put in context: kUnavailable with strerror's text ("No
// such file or directory"), kResourceExhausted "larger than <max_bytes> bytes".
Result<std::string> ReadSmallFile(const std::string& path, size_t max_bytes);

}  // namespace firebreak
