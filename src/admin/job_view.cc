#include "admin/job_view.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/crypto.h"
#include "common/units.h"
#include "ingress/scheme_source.h"

namespace firebreak {
namespace {

nlohmann::json ParsedOr(const std::string& text, const char* fallback) {
  nlohmann::json parsed =
      nlohmann::json::parse(text.empty() ? fallback : text, nullptr, /*allow_exceptions=*/false);
  return parsed.is_discarded() ? nlohmann::json(text) : parsed;
}

nlohmann::json Timestamp(int64_t ms) {
  return ms > 0 ? nlohmann::json(FormatTimestampMs(ms)) : nlohmann::json(nullptr);
}

bool IsHexDigit(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; }

// Epoch milliseconds or RFC 3339.
bool ParseTime(std::string_view text, int64_t& ms) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
  if (ec == std::errc() && end == text.data() + text.size() && ms >= 0) return true;
  int64_t seconds = 0;
  if (!ParseRfc3339(text, seconds)) return false;
  ms = seconds * 1000;
  return true;
}

}  // namespace

nlohmann::json JobSummaryJson(const Job& job) {
  nlohmann::json out = {
      {"id", job.id},
      {"type", job.type},
      {"source", job.source},
      {"state", JobStateName(job.state)},
      {"attempt", job.attempt},
      {"max_attempts", job.max_attempts},
      {"dedupe_key", job.dedupe_key},
      {"ordering_key", job.ordering_key},
      {"enqueued_at", Timestamp(job.enqueued_at_ms)},
      {"run_at", Timestamp(job.run_at_ms)},
      {"finished_at", Timestamp(job.finished_at_ms)},
      {"trace_id", TraceIdOf(job.traceparent)},
      {"search_keys", job.search_keys},
  };
  if (!job.parent_id.empty()) out["parent_id"] = job.parent_id;
  if (!job.replay_of.empty()) out["replay_of"] = job.replay_of;
  if (!job.replayed_as.empty()) out["replayed_as"] = job.replayed_as;
  if (!job.last_error.empty()) {
    out["last_error"] = job.last_error;
    out["fingerprint"] = ErrorFingerprint(job.last_error);
  }
  return out;
}

nlohmann::json JobDetailJson(const Job& job) {
  nlohmann::json out = JobSummaryJson(job);
  out["traceparent"] = job.traceparent;
  out["lease_until"] = Timestamp(job.lease_until_ms);
  out["payload_pruned"] = job.payload_pruned;
  out["headers"] = ParsedOr(job.headers_json, "{}");
  out["payload"] = ParsedOr(job.payload_json, "null");
  nlohmann::json attempts = nlohmann::json::array();
  for (const AttemptRecord& a : job.attempts) {
    attempts.push_back({{"attempt", a.attempt},
                        {"started_at", Timestamp(a.started_at_ms)},
                        {"duration_ms", a.duration_ms},
                        {"outcome", a.outcome},
                        {"error", a.error}});
  }
  out["attempts"] = std::move(attempts);
  return out;
}

Result<nlohmann::json> JobStoryJson(Queue& queue, const std::string& id) {
  Result<Job> job = queue.GetJob(id);
  if (!job.ok()) return job.status();
  nlohmann::json out = JobDetailJson(*job);
  for (const auto& [field, prefix] :
       {std::pair{"actions", "parent:"}, std::pair{"replays", "replay_of:"}}) {
    JobFilter filter;
    filter.key = prefix + id;
    Result<JobPage> linked = queue.ListJobs(filter, 100, "");
    if (!linked.ok()) return linked.status();
    nlohmann::json items = nlohmann::json::array();
    for (const Job& child : linked->items) {
      Result<Job> full = queue.GetJob(child.id);
      if (full.ok()) items.push_back(JobDetailJson(*full));  // pruned meanwhile: left out
    }
    out[field] = std::move(items);
  }
  return out;
}

std::string NormalizeError(std::string_view error) {
  std::string out;
  out.reserve(error.size());
  size_t i = 0;
  while (i < error.size()) {
    const char c = error[i];
    if (c == '"' || c == '\'') {
      // A quoted value: 'no user "U024BE7LH"' is one problem for every user.
      size_t close = error.find(c, i + 1);
      if (close != std::string_view::npos && close - i <= 80) {
        out += c;
        out += '#';
        out += c;
        i = close + 1;
        continue;
      }
    }
    if (IsWordChar(c) && (i == 0 || !IsWordChar(error[i - 1]))) {
      // A word holding a digit (a number, an id, a hex digest, a uuid's parts) is a value.
      size_t end = i;
      bool digit = false;
      while (end < error.size() && (IsWordChar(error[end]) || error[end] == '-')) {
        digit = digit || std::isdigit(static_cast<unsigned char>(error[end])) != 0;
        ++end;
      }
      bool hex_id = end - i >= 16 && std::all_of(error.begin() + static_cast<std::ptrdiff_t>(i),
                                                  error.begin() + static_cast<std::ptrdiff_t>(end),
                                                  [](char h) { return IsHexDigit(h) || h == '-'; });
      if (digit || hex_id) {
        out += '#';
      } else {
        out.append(error.substr(i, end - i));
      }
      i = end;
      continue;
    }
    out += c;
    ++i;
  }
  return out;
}

std::string ErrorFingerprint(std::string_view error) {
  return Sha256Hex(NormalizeError(error)).substr(0, 12);
}

Result<JobFilter> JobFilterFromParams(const std::map<std::string, std::string>& params) {
  JobFilter filter;
  for (const auto& [key, value] : params) {
    if (key == "state") {
      JobState state;
      if (!value.empty() && value != "delayed" && !ParseJobState(value, state)) {
        return InvalidArgument("unknown state \"" + value +
                               "\" (ready, delayed, in_flight, dead, succeeded, cancelled, "
                               "replayed)");
      }
      filter.state = value;
    } else if (key == "type") {
      filter.type = value;
    } else if (key == "source") {
      filter.source = value;
    } else if (key == "key") {
      filter.key = value;
    } else if (key == "trace_id") {
      if (!value.empty()) filter.key = "trace:" + value;
    } else if (key == "q") {
      filter.q = value;
    } else if (key == "from" || key == "to") {
      int64_t& field = key == "from" ? filter.from_ms : filter.to_ms;
      if (!value.empty() && !ParseTime(value, field)) {
        return InvalidArgument(key + " must be RFC 3339 or epoch milliseconds, not \"" + value +
                               "\"");
      }
    } else {
      return InvalidArgument("unknown filter \"" + key +
                             "\" (state, type, source, key, trace_id, q, from, to)");
    }
  }
  if (params.count("key") && params.count("trace_id")) {
    return InvalidArgument("give key or trace_id, not both");
  }
  return filter;
}

Result<DeadFilter> DeadFilterFromParams(std::map<std::string, std::string> params) {
  DeadFilter filter;
  if (auto it = params.find("fingerprint"); it != params.end()) {
    filter.fingerprint = it->second;
    params.erase(it);
  }
  if (auto it = params.find("state"); it != params.end()) {
    if (it->second != "dead") return InvalidArgument("dead-letter filters are always state=dead");
    params.erase(it);
  }
  Result<JobFilter> jobs = JobFilterFromParams(params);
  if (!jobs.ok()) return jobs.status();
  filter.jobs = std::move(jobs).value();
  filter.jobs.state = "dead";
  return filter;
}

Result<std::map<std::string, std::string>> ParseFilterList(std::string_view text) {
  std::map<std::string, std::string> out;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return InvalidArgument("expected key=value in the filter, got \"" + std::string(item) +
                             "\"");
    }
    out[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
  }
  return out;
}

nlohmann::json DeadFilterJson(const DeadFilter& filter) {
  nlohmann::json out = nlohmann::json::object();
  const JobFilter& f = filter.jobs;
  if (!f.type.empty()) out["type"] = f.type;
  if (!f.source.empty()) out["source"] = f.source;
  if (!f.key.empty()) out["key"] = f.key;
  if (!f.q.empty()) out["q"] = f.q;
  if (f.from_ms > 0) out["from"] = FormatTimestampMs(f.from_ms);
  if (f.to_ms > 0) out["to"] = FormatTimestampMs(f.to_ms);
  if (!filter.fingerprint.empty()) out["fingerprint"] = filter.fingerprint;
  return out;
}

}  // namespace firebreak
