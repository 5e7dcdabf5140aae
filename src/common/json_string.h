// JSON string escaping shared by the logger, the envelope and the sources.
#pragma once

#include <string>
#include <string_view>

namespace firebreak {

// Appends `text` to `out` as a JSON string literal, quotes included. Control
// characters are escaped; other bytes (UTF-8) are copied as they are.
void AppendJsonString(std::string& out, std::string_view text);

// `text` cut to at most `max_bytes` (back to a UTF-8 character boundary) with "..."
// appended when it was cut; unchanged when it fits.
std::string TruncateUtf8(std::string_view text, size_t max_bytes);

// The JSON body of every error answer firebreak itself gives (ingress, sidecar):
// {"ok":false,"error":"<error>"}.
std::string ErrorJson(std::string_view error);

}  // namespace firebreak
