#include "common/file_util.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace firebreak {

Result<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return Unavailable(std::strerror(errno));
  std::string text;
  char buffer[16 * 1024];
  int read_error = 0;
  while (text.size() <= max_bytes) {
    size_t got = std::fread(buffer, 1, sizeof buffer, file);
    text.append(buffer, got);
    if (got < sizeof buffer) {
      if (std::ferror(file)) read_error = errno != 0 ? errno : EIO;
      break;
    }
  }
  std::fclose(file);
  if (read_error != 0) return Unavailable(std::strerror(read_error));
  if (text.size() > max_bytes) {
    return Status(StatusCode::kResourceExhausted,
                  "larger than " + std::to_string(max_bytes) + " bytes");
  }
  return text;
}

}  // namespace firebreak
