// Structured logs: one JSON object per line on stdout (DESIGN §6), or a readable
// text line with log_format = "text". Lines are handed to a background thread that
// writes them in chunks, so a slow stdout never blocks the request path (if it stays
// stuck, the oldest waiting lines are dropped and the drop is logged).
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace firebreak::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError };

struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, int v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(std::string_view k, int64_t v) : key(k), value(v) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}
  std::string_view key;
  std::variant<std::string_view, int64_t, double, bool> value;
};
using Fields = std::initializer_list<Field>;

// Configures the process-wide logger. Safe to call again (tests); before the first
// call, lines go synchronously to stdout at info level in JSON.
void Init(std::string_view format, std::string_view level);
// For CLI tools whose stdout is their output (queue stats --json, dlq ...): log lines
// go to stderr instead. Only before Init.
void SendToStderr();
// Flushes queued lines (call before exit), and reports the repeats WriteLimited is
// still counting (their windows end here).
void Flush();
bool Enabled(Level level);

void Write(Level level, std::string_view msg, Fields fields = {});
inline void Debug(std::string_view msg, Fields f = {}) { Write(Level::kDebug, msg, f); }
inline void Info(std::string_view msg, Fields f = {}) { Write(Level::kInfo, msg, f); }
inline void Warn(std::string_view msg, Fields f = {}) { Write(Level::kWarn, msg, f); }
inline void Error(std::string_view msg, Fields f = {}) { Write(Level::kError, msg, f); }

// How long WriteLimited counts repeats of a line before it reports them.
inline constexpr std::chrono::milliseconds kRepeatWindow{10'000};

// Like Write, for lines that can come by the hundred per second from one cause (a full
// disk failing every commit, a handler printing the same traceback in a loop). The
// first line of `repeat_key` is written at once; more of the same key within `window`
// are only counted, and when the window is over one line reports them: the last one's
// message and fields plus "repeated": N (how many were not written). The next one after
// that starts a new window. Keys are the caller's choice: the message and the error
// text, not what differs per request (ids), or nothing would ever repeat. Past 4096
// live keys, lines are written as by Write.
void WriteLimited(Level level, std::string_view repeat_key, std::string_view msg,
                  Fields fields = {}, std::chrono::milliseconds window = kRepeatWindow);

}  // namespace firebreak::log
