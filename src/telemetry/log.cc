#include "telemetry/log.h"

#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "common/json_string.h"
#include "common/units.h"

namespace firebreak::log {
namespace {

// Lines wait in memory and one background thread writes them in chunks. spdlog's async
// logger (used before) wakes its thread for every line and its stdout sink flushes after
// every line: a context switch and a write(2) per line. Here a request thread only
// appends under a mutex and wakes the writer when the first line of a chunk arrives; the
// writer lets a chunk gather for 2 ms (not for warnings and errors) and writes it with
// one flush. So lines show within milliseconds, and at thousands of lines a second
// there are hundreds of wake-ups, not thousands.
constexpr std::chrono::milliseconds kGather{2};
// Beyond this many waiting lines (a stuck stdout) the oldest are dropped, and counted.
constexpr size_t kMaxWaitingLines = 65536;

struct State {
  std::mutex mu;  // guards the fields below it
  std::condition_variable wake;
  std::deque<std::string> waiting;  // formatted lines, '\n' included
  bool urgent = false;              // a warning or error is waiting
  bool writer_running = false;
  int64_t dropped = 0;              // since the last report
  std::mutex write_mu;  // held while lines are taken and written: keeps their order
  std::atomic<int> min_level{static_cast<int>(Level::kInfo)};
  std::atomic<bool> text{false};
  std::atomic<bool> tool_output_on_stdout{false};  // SendToStderr was called
};

State& GetState() {
  static State* state = new State();  // leaked on purpose: used until the last line at exit
  return *state;
}

// Takes what is waiting and writes it out. Called by the writer thread and by Flush.
void WriteWaiting(State& st) {
  std::lock_guard write_lock(st.write_mu);
  std::deque<std::string> lines;
  int64_t dropped = 0;
  {
    std::lock_guard lock(st.mu);
    lines.swap(st.waiting);
    st.urgent = false;
    dropped = st.dropped;
    st.dropped = 0;
  }
  FILE* out = st.tool_output_on_stdout.load() ? stderr : stdout;
  if (dropped > 0) {
    std::string note = "{\"ts\":\"" + FormatTimestampMs(SystemClock::Instance().NowMs()) +
                       "\",\"level\":\"warn\",\"msg\":\"log lines dropped: output too slow\","
                       "\"dropped\":" + std::to_string(dropped) + "}\n";
    std::fwrite(note.data(), 1, note.size(), out);
  }
  for (const std::string& line : lines) std::fwrite(line.data(), 1, line.size(), out);
  std::fflush(out);
}

void RunWriter(State& st) {
  std::unique_lock lock(st.mu);
  for (;;) {
    st.wake.wait(lock, [&st] { return !st.waiting.empty() || st.dropped > 0; });
    const bool urgent = st.urgent;
    lock.unlock();
    if (!urgent) std::this_thread::sleep_for(kGather);
    WriteWaiting(st);
    lock.lock();
  }
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
  std::lock_guard lock(st.mu);
  if (!st.writer_running) {
    st.writer_running = true;
    std::thread([&st] { RunWriter(st); }).detach();  // lives as long as the process
  }
}

void SendToStderr() { GetState().tool_output_on_stdout = true; }

void Flush() { WriteWaiting(GetState()); }

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
  line.push_back('\n');
  {
    std::lock_guard lock(st.mu);
    if (st.writer_running) {
      if (st.waiting.size() >= kMaxWaitingLines) {
        st.waiting.pop_front();
        ++st.dropped;
      }
      const bool first = st.waiting.empty();
      st.waiting.push_back(std::move(line));
      const bool urgent = level >= Level::kWarn;
      st.urgent = st.urgent || urgent;
      if (first || urgent) st.wake.notify_one();
      return;
    }
  }
  // Before Init (tools, early errors): synchronously.
  FILE* out = st.tool_output_on_stdout.load() ? stderr : stdout;
  std::fwrite(line.data(), 1, line.size(), out);
  std::fflush(out);
}

}  // namespace firebreak::log
