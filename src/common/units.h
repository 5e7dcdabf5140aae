// Durations ("250ms", "5s", "2m", "24h") and sizes ("1MiB") as written in the config.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace firebreak {

// Accepts one or more <number><unit> terms ("1m30s"); units ms, s, m, h, d.
// Returns nullopt on anything else, including an empty string or a bare number.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

// Accepts <number>[B|KB|KiB|MB|MiB|GB|GiB]; a bare number means bytes.
std::optional<uint64_t> ParseSize(std::string_view text);

// "1.5s", "250ms", "2m" — for logs and summaries.
std::string FormatDuration(std::chrono::milliseconds d);

// RFC 3339 UTC with milliseconds: "2026-11-27T20:00:00.000Z".
std::string FormatTimestampMs(int64_t epoch_ms);

}  // namespace firebreak
