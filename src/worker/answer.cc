#include "worker/answer.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "common/json_string.h"

namespace firebreak {
namespace {

using std::chrono::milliseconds;

constexpr double kMaxRetryAfterSeconds = 365.0 * 24 * 3600;

// Looks up `key`; null counts as absent.
bool FindField(const simdjson::dom::object& object, std::string_view key,
               simdjson::dom::element& out) {
  if (object.at_key(key).get(out) != simdjson::SUCCESS) return false;
  return !out.is_null();
}

// The outcome one answer object gives: the answer line, or one entry of a batch's
// "results". `what` names it in errors ("answer", "results[3]").
Result<HandlerResult> ReadOutcome(const simdjson::dom::object& answer, const std::string& what) {
  simdjson::dom::element field;
  bool ok = false;
  if (!FindField(answer, "ok", field) || field.get_bool().get(ok) != simdjson::SUCCESS) {
    return InvalidArgument(what + " has no boolean \"ok\"");
  }
  HandlerResult result;
  if (ok) {
    if (FindField(answer, "actions", field)) {
      if (!field.is_array()) return InvalidArgument(what + " \"actions\" is not an array");
      result.actions_json = simdjson::minify(field);
    }
    if (FindField(answer, "enqueue", field)) {
      if (!field.is_array()) return InvalidArgument(what + " \"enqueue\" is not an array");
      result.enqueue_json = simdjson::minify(field);
    }
    return result;
  }

  std::string_view error_text;
  if (!FindField(answer, "error", field) ||
      field.get_string().get(error_text) != simdjson::SUCCESS || error_text.empty()) {
    error_text = "handler reported failure";
  }
  result.error = TruncateUtf8(error_text, kMaxAnswerErrorBytes);
  bool retry = true;
  if (FindField(answer, "retry", field) && field.get_bool().get(retry) != simdjson::SUCCESS) {
    return InvalidArgument(what + " \"retry\" is not a boolean");
  }
  result.kind = retry ? HandlerResult::Kind::kFailed : HandlerResult::Kind::kRejected;
  if (FindField(answer, "retry_after", field)) {
    double seconds = 0;
    if (field.get_double().get(seconds) != simdjson::SUCCESS || !(seconds >= 0)) {
      return InvalidArgument(what + " \"retry_after\" is not a number of seconds >= 0");
    }
    seconds = std::min(seconds, kMaxRetryAfterSeconds);
    result.retry_after = milliseconds(std::llround(seconds * 1000));
  }
  return result;
}

bool HasEntries(const std::string& array_json) { return !array_json.empty() && array_json != "[]"; }

}  // namespace

std::string QuoteForError(std::string_view text) {
  std::string out;
  AppendJsonString(out, TruncateUtf8(text, 80));
  return out;
}

Result<HandlerResult> ParseCommandAnswer(std::string_view line, std::string_view job_id) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element document;
  if (parser.parse(line.data(), line.size()).get(document) != simdjson::SUCCESS) {
    return InvalidArgument("answer line is not JSON: " + QuoteForError(line));
  }
  simdjson::dom::object answer;
  if (document.get_object().get(answer) != simdjson::SUCCESS) {
    return InvalidArgument("answer line is not a JSON object: " + QuoteForError(line));
  }
  simdjson::dom::element field;
  std::string_view id;
  if (!FindField(answer, "id", field) || field.get_string().get(id) != simdjson::SUCCESS) {
    return InvalidArgument("answer has no string \"id\"");
  }
  if (id != job_id) {
    return InvalidArgument("answer id " + QuoteForError(id) + " is not the running job's " +
                           QuoteForError(job_id));
  }
  Result<HandlerResult> result = ReadOutcome(answer, "answer");
  if (result.ok() && FindField(answer, "results", field)) {
    result->results_json = simdjson::minify(field);
  }
  return result;
}

Result<std::vector<HandlerResult>> SplitBatchAnswer(const HandlerResult& answer,
                                                    const std::vector<std::string>& job_ids) {
  // What every job gets unless "results" says otherwise: the outcome, not follow-ups.
  HandlerResult whole;
  whole.kind = answer.kind;
  whole.error = answer.error;
  whole.retry_after = answer.retry_after;
  std::vector<HandlerResult> outcomes(job_ids.size(), whole);
  if (answer.kind == HandlerResult::Kind::kTimedOut ||
      answer.kind == HandlerResult::Kind::kDeferred) {
    return outcomes;
  }
  if (HasEntries(answer.actions_json) || HasEntries(answer.enqueue_json)) {
    return InvalidArgument(
        "a batch answer's \"actions\" and \"enqueue\" go in the \"results\" entry of the job "
        "they belong to");
  }
  if (answer.results_json.empty()) return outcomes;

  thread_local simdjson::dom::parser parser;
  simdjson::dom::element document;
  simdjson::dom::array results;
  if (parser.parse(answer.results_json).get(document) != simdjson::SUCCESS ||
      document.get_array().get(results) != simdjson::SUCCESS) {
    return InvalidArgument("\"results\" is not an array");
  }
  std::map<std::string_view, size_t> index_of;
  for (size_t i = 0; i < job_ids.size(); ++i) index_of.emplace(job_ids[i], i);
  std::vector<bool> listed(job_ids.size(), false);
  size_t n = 0;
  for (simdjson::dom::element element : results) {
    const std::string what = "results[" + std::to_string(n++) + "]";
    simdjson::dom::object entry;
    if (element.get_object().get(entry) != simdjson::SUCCESS) {
      return InvalidArgument(what + " is not an object");
    }
    simdjson::dom::element field;
    std::string_view id;
    if (!FindField(entry, "id", field) || field.get_string().get(id) != simdjson::SUCCESS) {
      return InvalidArgument(what + " has no string \"id\"");
    }
    auto found = index_of.find(id);
    if (found == index_of.end()) {
      return InvalidArgument(what + " id " + QuoteForError(id) + " is not a job of this batch");
    }
    if (listed[found->second]) {
      return InvalidArgument(what + " lists job " + QuoteForError(id) + " a second time");
    }
    Result<HandlerResult> outcome = ReadOutcome(entry, what);
    if (!outcome.ok()) return outcome.status();
    listed[found->second] = true;
    outcomes[found->second] = std::move(outcome).value();
  }
  return outcomes;
}

}  // namespace firebreak
