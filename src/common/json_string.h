// JSON string escaping shared by the logger, the envelope and the sources.
#pragma once

#include <string>
#include <string_view>

namespace firebreak {

// Appends `text` to `out` as a JSON string literal, quotes included. Control
// characters are escaped; other bytes (UTF-8) are copied as they are.
void AppendJsonString(std::string& out, std::string_view text);

// The JSON body of every error answer firebreak itself gives (ingress, sidecar):
// {"ok":false,"error":"<error>"}.
std::string ErrorJson(std::string_view error);

}  // namespace firebreak
