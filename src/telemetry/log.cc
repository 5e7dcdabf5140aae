#include "telemetry/log.h"

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <mutex>

#include "common/clock.h"
#include "common/json_string.h"
#include "common/units.h"

namespace firebreak::log {
namespace {

struct State {
  std::mutex mu;  // guards (re)initialisation only
  std::shared_ptr<spdlog::logger> logger;
  std::atomic<int> min_level{static_cast<int>(Level::kInfo)};
  std::atomic<bool> text{false};
  std::atomic<bool> tool_output_on_stdout{false};  // SendToStderr was called
};

State& GetState() {
  static State* state = new State();  // leaked on purpose: used until the last line at exit
  return *state;
}

const char* LevelName(Level level) {
  switch (level) {
    case Level::kTrace:
      return "trace";
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

void AppendValue(std::string& out, const Field& f, bool quote_strings) {
  if (auto* s = std::get_if<std::string_view>(&f.value)) {
    if (quote_strings)
      AppendJsonString(out, *s);
    else
      out.append(*s);
  } else if (auto* i = std::get_if<int64_t>(&f.value)) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, *i);
    out.append(buf, r.ptr);
  } else if (auto* d = std::get_if<double>(&f.value)) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, *d);
    out.append(buf, r.ptr);
  } else {
    out.append(std::get<bool>(f.value) ? "true" : "false");
  }
}

}  // namespace

void Init(std::string_view format, std::string_view level) {
  State& st = GetState();
  std::lock_guard lock(st.mu);
  Level lv = Level::kInfo;
  if (level == "trace")
    lv = Level::kTrace;
  else if (level == "debug")
    lv = Level::kDebug;
  else if (level == "warn")
    lv = Level::kWarn;
  else if (level == "error")
    lv = Level::kError;
  st.min_level = static_cast<int>(lv);
  st.text = (format == "text");
  if (!st.logger) {
    // Lines are queued and written by one background thread; when the queue is full
    // the oldest line is dropped rather than blocking a request.
    spdlog::init_thread_pool(65536, 1);
    auto sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    st.logger = std::make_shared<spdlog::async_logger>(
        "firebreak", sink, spdlog::thread_pool(), spdlog::async_overflow_policy::overrun_oldest);
    st.logger->set_pattern("%v");
    st.logger->set_level(spdlog::level::trace);
    st.logger->flush_on(spdlog::level::warn);
    spdlog::flush_every(std::chrono::seconds(1));
  }
}

void SendToStderr() { GetState().tool_output_on_stdout = true; }

void Flush() {
  State& st = GetState();
  std::lock_guard lock(st.mu);
  if (st.logger) st.logger->flush();
  std::fflush(stdout);
}

bool Enabled(Level level) { return static_cast<int>(level) >= GetState().min_level.load(); }

void Write(Level level, std::string_view msg, Fields fields) {
  State& st = GetState();
  if (!Enabled(level)) return;
  std::string line;
  line.reserve(128 + msg.size());
  std::string ts = FormatTimestampMs(SystemClock::Instance().NowMs());
  if (st.text) {
    line.append(ts).append(" ").append(LevelName(level)).append(" ").append(msg);
    for (const Field& f : fields) {
      line.append(" ").append(f.key).append("=");
      AppendValue(line, f, false);
    }
  } else {
    line.append("{\"ts\":\"").append(ts).append("\",\"level\":\"").append(LevelName(level));
    line.append("\",\"msg\":");
    AppendJsonString(line, msg);
    for (const Field& f : fields) {
      line.append(",");
      AppendJsonString(line, f.key);
      line.append(":");
      AppendValue(line, f, true);
    }
    line.append("}");
  }
  auto logger = st.logger;
  if (logger) {
    logger->log(level >= Level::kWarn ? spdlog::level::warn : spdlog::level::info, line);
  } else {
    line.push_back('\n');
    FILE* out = st.tool_output_on_stdout.load() ? stderr : stdout;
    std::fwrite(line.data(), 1, line.size(), out);
    std::fflush(out);
  }
}

}  // namespace firebreak::log
