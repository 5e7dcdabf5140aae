#include "telemetry/log.h"

#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

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
// WriteLimited keys counted at once; beyond, lines are written unlimited.
constexpr size_t kMaxRepeatKeys = 4096;
// While repeats are being counted, the writer looks for ended windows this often.
constexpr std::chrono::milliseconds kRepeatCheck{250};

// A field that owns its text: a suppressed line is kept until its repeat report.
struct OwnedField {
  std::string key;
  std::variant<std::string, int64_t, double, bool> value;
};

// One WriteLimited key's current window.
struct Repeat {
  int64_t window_end_ms = 0;  // steady clock
  int64_t suppressed = 0;     // lines counted, not written, in this window
  Level level = Level::kInfo;
  std::string msg;                  // the last suppressed line
  std::vector<OwnedField> fields;
};

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

  std::mutex repeat_mu;  // guards `repeats`; never held while taking `mu`
  std::map<std::string, Repeat, std::less<>> repeats;
  std::atomic<bool> repeats_pending{false};  // some window has suppressed lines
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

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void ReportRepeats(State& st, bool end_all);

void RunWriter(State& st) {
  std::unique_lock lock(st.mu);
  for (;;) {
    auto has_lines = [&st] { return !st.waiting.empty() || st.dropped > 0; };
    if (st.repeats_pending.load()) {
      st.wake.wait_for(lock, kRepeatCheck, has_lines);
    } else {
      st.wake.wait(lock, has_lines);
    }
    const bool urgent = st.urgent;
    lock.unlock();
    if (st.repeats_pending.load()) ReportRepeats(st, /*end_all=*/false);
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

void Flush() {
  State& st = GetState();
  ReportRepeats(st, /*end_all=*/true);
  WriteWaiting(st);
}

bool Enabled(Level level) { return static_cast<int>(level) >= GetState().min_level.load(); }

namespace {

// One formatted line, '\n' included; `repeated` >= 0 adds that field last.
template <typename FieldRange>
std::string FormatLine(const State& st, Level level, std::string_view msg,
                       const FieldRange& fields, int64_t repeated = -1) {
  std::string line;
  line.reserve(128 + msg.size());
  std::string ts = FormatTimestampMs(SystemClock::Instance().NowMs());
  const Field repeat_field("repeated", repeated);
  if (st.text) {
    line.append(ts).append(" ").append(LevelName(level)).append(" ").append(msg);
    auto add = [&line](const Field& f) {
      line.append(" ").append(f.key).append("=");
      AppendValue(line, f, false);
    };
    for (const Field& f : fields) add(f);
    if (repeated >= 0) add(repeat_field);
  } else {
    line.append("{\"ts\":\"").append(ts).append("\",\"level\":\"").append(LevelName(level));
    line.append("\",\"msg\":");
    AppendJsonString(line, msg);
    auto add = [&line](const Field& f) {
      line.append(",");
      AppendJsonString(line, f.key);
      line.append(":");
      AppendValue(line, f, true);
    };
    for (const Field& f : fields) add(f);
    if (repeated >= 0) add(repeat_field);
    line.append("}");
  }
  line.push_back('\n');
  return line;
}

void Enqueue(State& st, Level level, std::string line) {
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

std::vector<OwnedField> Own(Fields fields) {
  std::vector<OwnedField> owned;
  owned.reserve(fields.size());
  for (const Field& f : fields) {
    OwnedField o{std::string(f.key), {}};
    std::visit(
        [&o](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string_view>) {
            o.value = std::string(v);
          } else {
            o.value = v;
          }
        },
        f.value);
    owned.push_back(std::move(o));
  }
  return owned;
}

std::vector<Field> View(const std::vector<OwnedField>& owned) {
  std::vector<Field> fields;
  fields.reserve(owned.size());
  for (const OwnedField& o : owned) {
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>) {
            fields.emplace_back(std::string_view(o.key), std::string_view(v));
          } else {
            fields.emplace_back(std::string_view(o.key), v);
          }
        },
        o.value);
  }
  return fields;
}

std::string RepeatReport(const State& st, const Repeat& r) {
  return FormatLine(st, r.level, r.msg, View(r.fields), r.suppressed);
}

// Writes a report for every window that has ended (all of them with `end_all`) and
// forgets quiet keys whose window is over.
void ReportRepeats(State& st, bool end_all) {
  const int64_t now = SteadyMs();
  std::vector<std::pair<Level, std::string>> reports;
  bool pending = false;
  {
    std::lock_guard lock(st.repeat_mu);
    for (auto it = st.repeats.begin(); it != st.repeats.end();) {
      Repeat& r = it->second;
      if (!end_all && now < r.window_end_ms) {
        pending = pending || r.suppressed > 0;
        ++it;
        continue;
      }
      if (r.suppressed > 0) reports.emplace_back(r.level, RepeatReport(st, r));
      it = st.repeats.erase(it);
    }
    st.repeats_pending = pending;
  }
  for (auto& [level, line] : reports) Enqueue(st, level, std::move(line));
}

}  // namespace

void Write(Level level, std::string_view msg, Fields fields) {
  State& st = GetState();
  if (!Enabled(level)) return;
  Enqueue(st, level, FormatLine(st, level, msg, fields));
}

void WriteLimited(Level level, std::string_view repeat_key, std::string_view msg, Fields fields,
                  std::chrono::milliseconds window) {
  State& st = GetState();
  if (!Enabled(level)) return;
  const int64_t now = SteadyMs();
  std::string report;
  Level report_level = level;
  {
    std::lock_guard lock(st.repeat_mu);
    auto it = st.repeats.find(repeat_key);
    if (it != st.repeats.end() && now < it->second.window_end_ms) {
      Repeat& r = it->second;
      ++r.suppressed;
      r.level = level;
      r.msg = std::string(msg);
      r.fields = Own(fields);
      st.repeats_pending = true;
      return;
    }
    if (it != st.repeats.end()) {
      // The window ended before the writer reported it: report now, then start anew.
      if (it->second.suppressed > 0) {
        report = RepeatReport(st, it->second);
        report_level = it->second.level;
      }
      it->second = Repeat{now + window.count(), 0, level, {}, {}};
    } else if (st.repeats.size() < kMaxRepeatKeys) {
      st.repeats.emplace(std::string(repeat_key), Repeat{now + window.count(), 0, level, {}, {}});
    }
  }
  if (!report.empty()) Enqueue(st, report_level, std::move(report));
  Enqueue(st, level, FormatLine(st, level, msg, fields));
}

}  // namespace firebreak::log
