#include "queue/job_record.h"

#include <simdjson.h>

#include <algorithm>
#include <utility>

#include "common/crypto.h"

namespace firebreak {
namespace {

// The bytes of the value at `pointer` in `doc`, as a view into the parsed buffer.
bool ValueSpan(simdjson::ondemand::document& doc, const std::string& pointer,
               std::string_view& span) {
  simdjson::ondemand::value value;
  if (doc.at_pointer(pointer).get(value) != simdjson::SUCCESS) return false;
  simdjson::ondemand::json_type type;
  if (value.type().get(type) != simdjson::SUCCESS) return false;
  simdjson::error_code error;
  if (type == simdjson::ondemand::json_type::object) {
    simdjson::ondemand::object object;
    error = value.get_object().get(object);
    if (!error) error = object.raw_json().get(span);
  } else if (type == simdjson::ondemand::json_type::array) {
    simdjson::ondemand::array array;
    error = value.get_array().get(array);
    if (!error) error = array.raw_json().get(span);
  } else {
    span = value.raw_json_token();
    error = simdjson::SUCCESS;
  }
  if (error) return false;
  while (!span.empty() && (span.back() == ' ' || span.back() == '\n' || span.back() == '\r' ||
                           span.back() == '\t')) {
    span.remove_suffix(1);
  }
  return !span.empty();
}

void AddKey(std::vector<std::string>& out, std::string key) {
  if (out.size() >= kMaxIndexedKeys) return;
  if (key.size() > kMaxIndexedKeyBytes) key.resize(kMaxIndexedKeyBytes);
  std::replace(key.begin(), key.end(), '\n', ' ');
  if (std::find(out.begin(), out.end(), key) == out.end()) out.push_back(std::move(key));
}

constexpr std::string_view kLinkPrefixes[] = {"trace:", "parent:", "replay_of:"};

}  // namespace

void PrepareNewJob(NewJob& job, const std::vector<std::string>& redact) {
  if (!redact.empty()) job.payload_json = RedactPayload(job.payload_json, redact);
}

void PrepareFinish(JobFinish& finish, const std::vector<std::string>& redact) {
  for (NewJob& follow_up : finish.follow_ups) {
    if (follow_up.parent_id.empty()) follow_up.parent_id = finish.job_id;
    PrepareNewJob(follow_up, redact);
  }
  if (finish.disposition == Disposition::kSucceeded && finish.record.outcome.empty()) {
    finish.record.outcome = "succeeded";
  }
}

std::string RedactPayload(std::string_view payload, const std::vector<std::string>& pointers) {
  if (pointers.empty()) return std::string(payload);
  simdjson::padded_string padded(payload);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc) != simdjson::SUCCESS) return std::string(payload);
  // Byte ranges of the values to replace, found first and spliced after: the views
  // point into `padded`, whose offsets match `payload`'s.
  std::vector<std::pair<size_t, size_t>> ranges;
  for (const std::string& pointer : pointers) {
    std::string_view span;
    if (!ValueSpan(doc, pointer, span)) continue;
    ranges.emplace_back(static_cast<size_t>(span.data() - padded.data()), span.size());
  }
  if (ranges.empty()) return std::string(payload);
  std::sort(ranges.begin(), ranges.end());
  std::string out;
  out.reserve(payload.size());
  size_t at = 0;
  for (const auto& [begin, size] : ranges) {
    if (begin < at) continue;  // inside a value already redacted (a pointer and its parent)
    out.append(payload.substr(at, begin - at));
    out.append(kRedacted);
    at = begin + size;
  }
  out.append(payload.substr(at));
  return out;
}

std::vector<std::string> IndexedSearchKeys(const NewJob& job) {
  std::vector<std::string> out;
  out.reserve(job.search_keys.size() + 3);
  for (const std::string& key : job.search_keys) {
    if (!key.empty()) AddKey(out, key);
  }
  if (std::string trace = TraceIdOf(job.traceparent); !trace.empty()) {
    AddKey(out, "trace:" + trace);
  }
  if (!job.parent_id.empty()) AddKey(out, "parent:" + job.parent_id);
  if (!job.replay_of.empty()) AddKey(out, "replay_of:" + job.replay_of);
  return out;
}

std::vector<std::string> IngressSearchKeys(const std::vector<std::string>& indexed) {
  std::vector<std::string> out;
  for (const std::string& key : indexed) {
    bool link = false;
    for (std::string_view prefix : kLinkPrefixes) link = link || key.starts_with(prefix);
    if (!link) out.push_back(key);
  }
  return out;
}

std::string JoinSearchKeys(const std::vector<std::string>& keys) {
  std::string out;
  for (const std::string& key : keys) {
    if (!out.empty()) out += '\n';
    out += key;
  }
  return out;
}

std::vector<std::string> SplitSearchKeys(std::string_view joined) {
  std::vector<std::string> out;
  while (!joined.empty()) {
    size_t end = joined.find('\n');
    out.emplace_back(joined.substr(0, end));
    if (end == std::string_view::npos) break;
    joined.remove_prefix(end + 1);
  }
  return out;
}

}  // namespace firebreak
