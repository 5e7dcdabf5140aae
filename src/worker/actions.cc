#include "worker/actions.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "common/units.h"
#include "ingress/job_key.h"

namespace firebreak {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr size_t kMaxIdempotencyKey = 255;

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// Refuses what would let an action climb out of the integration's base path or smuggle a
// second request line.
std::string CheckPath(std::string_view path) {
  if (path.empty() || path.front() != '/') return "path must start with '/'";
  if (HasControl(path) || path.find(' ') != std::string_view::npos) {
    return "path has a space or control character";
  }
  std::string_view rest = path.substr(0, path.find('?'));
  size_t start = 0;
  while (start <= rest.size()) {
    size_t end = rest.find('/', start);
    if (end == std::string_view::npos) end = rest.size();
    std::string_view segment = rest.substr(start, end - start);
    if (segment == "." || segment == ".." || segment == "%2e%2e" || segment == "%2E%2E") {
      return "path must not contain . or .. segments";
    }
    start = end + 1;
  }
  return "";
}

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

std::string ActionJobType(const std::string& integration) {
  return std::string(kActionTypePrefix) + integration;
}

bool IsActionJobType(std::string_view type) {
  return type.substr(0, kActionTypePrefix.size()) == kActionTypePrefix;
}

JobConfig ActionJobConfig(const IntegrationConfig& integration) {
  JobConfig job;
  job.type = ActionJobType(integration.name);
  job.concurrency = integration.max_concurrency;
  // One call: every attempt's timeout, the jittered backoff between them (up to 1.5×),
  // one more timeout of waiting for a slot or a token, and a second of slack.
  milliseconds budget = integration.timeout * (integration.retry.attempts + 1) + milliseconds(1000);
  for (int i = 1; i < integration.retry.attempts; ++i) {
    const auto& schedule = integration.retry.backoff;
    if (schedule.empty()) break;
    budget += schedule[static_cast<size_t>(std::min<int>(i, static_cast<int>(schedule.size())) - 1)] * 3 / 2;
  }
  job.timeout = budget;
  job.where = integration.where;
  return job;
}

Result<std::vector<NewJob>> BuildActionJobs(std::string_view actions_json, const Job& parent,
                                            const Config& config, int64_t now_ms) {
  json actions = json::parse(actions_json, nullptr, /*allow_exceptions=*/false);
  if (!actions.is_array()) return InvalidArgument("\"actions\" is not an array");
  if (actions.size() > kMaxActionsPerJob) {
    return InvalidArgument("more than " + std::to_string(kMaxActionsPerJob) + " actions");
  }
  std::vector<NewJob> jobs;
  for (size_t i = 0; i < actions.size(); ++i) {
    const json& a = actions[i];
    auto fail = [i](const std::string& what) {
      return InvalidArgument("action " + std::to_string(i) + ": " + what);
    };
    if (!a.is_object()) return fail("not an object");
    json stored = json::object();
    for (const auto& [key, value] : a.items()) {
      static const char* const kKnown[] = {"integration", "method",          "path",
                                           "json",        "body",            "headers",
                                           "idempotency_key", "ordering_key"};
      if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
        return fail("unknown field \"" + key + "\"");
      }
    }
    if (!a.contains("integration") || !a["integration"].is_string()) {
      return fail("needs a string \"integration\"");
    }
    const std::string integration = a["integration"];
    if (config.FindIntegration(integration) == nullptr) {
      return fail("no integration named \"" + integration + "\"");
    }
    std::string method = "POST";
    if (a.contains("method")) {
      if (!a["method"].is_string()) return fail("\"method\" is not a string");
      method = a["method"];
      std::transform(method.begin(), method.end(), method.begin(),
                     [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      if (!IsToken(method)) return fail("bad method");
    }
    if (!a.contains("path") || !a["path"].is_string()) return fail("needs a string \"path\"");
    const std::string path = a["path"];
    if (std::string problem = CheckPath(path); !problem.empty()) return fail(problem);
    if (a.contains("json") && a.contains("body")) return fail("has both \"json\" and \"body\"");
    if (a.contains("body") && !a["body"].is_string()) return fail("\"body\" is not a string");
    json headers = json::object();
    if (a.contains("headers")) {
      if (!a["headers"].is_object()) return fail("\"headers\" is not an object");
      for (const auto& [name, value] : a["headers"].items()) {
        if (!IsToken(name)) return fail("bad header name \"" + name + "\"");
        if (!value.is_string() || HasControl(value.get<std::string>())) {
          return fail("header \"" + name + "\" needs a string value without control characters");
        }
        headers[name] = value;
      }
    }
    std::string key = parent.id + ":" + std::to_string(i);
    if (a.contains("idempotency_key")) {
      if (!a["idempotency_key"].is_string()) return fail("\"idempotency_key\" is not a string");
      key = a["idempotency_key"];
      if (key.empty() || key.size() > kMaxIdempotencyKey || HasControl(key)) {
        return fail("idempotency_key must be 1-255 characters without control characters");
      }
    }
    // Actions of one integration with the same ordering_key are sent one at a time, in the
    // order they were stored (a chat's replies in the order its messages were handled).
    std::string ordering_key;
    if (a.contains("ordering_key")) {
      if (!a["ordering_key"].is_string()) return fail("\"ordering_key\" is not a string");
      ordering_key = a["ordering_key"];
      if (ordering_key.empty() || ordering_key.size() > kMaxIdempotencyKey || HasControl(ordering_key)) {
        return fail("ordering_key must be 1-255 characters without control characters");
      }
    }
    stored["integration"] = integration;
    stored["method"] = method;
    stored["path"] = path;
    if (a.contains("json")) stored["json"] = a["json"];
    if (a.contains("body")) stored["body"] = a["body"];
    if (!headers.empty()) stored["headers"] = headers;
    stored["idempotency_key"] = key;
    stored["job_id"] = parent.id;
    stored["index"] = i;

    NewJob job;
    job.id = NewJobId(now_ms);
    job.type = ActionJobType(integration);
    job.source = parent.source;
    job.dedupe_keys = {"action:" + integration + ":" + key};
    job.payload_json = Dump(stored);
    job.headers_json = Dump(json{{"x-firebreak-parent-job", parent.id}});
    job.traceparent = parent.traceparent;
    job.max_attempts = parent.max_attempts;
    job.enqueued_at_ms = now_ms;
    job.run_at_ms = now_ms;
    job.ordering_key = std::move(ordering_key);
    job.key_limit = 1;
    jobs.push_back(std::move(job));
  }
  return jobs;
}

Result<std::vector<NewJob>> BuildEnqueuedJobs(std::string_view enqueue_json, const Job& parent,
                                              const Config& config, int64_t now_ms) {
  json entries = json::parse(enqueue_json, nullptr, /*allow_exceptions=*/false);
  if (!entries.is_array()) return InvalidArgument("\"enqueue\" is not an array");
  if (entries.size() > kMaxEnqueuePerJob) {
    return InvalidArgument("more than " + std::to_string(kMaxEnqueuePerJob) + " jobs to enqueue");
  }
  std::vector<NewJob> jobs;
  for (size_t i = 0; i < entries.size(); ++i) {
    const json& e = entries[i];
    auto fail = [i](const std::string& what) {
      return InvalidArgument("enqueue " + std::to_string(i) + ": " + what);
    };
    if (!e.is_object()) return fail("not an object");
    for (const auto& [key, value] : e.items()) {
      static const char* const kKnown[] = {"type", "payload", "delay", "key"};
      if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
        return fail("unknown field \"" + key + "\"");
      }
    }
    if (!e.contains("type") || !e["type"].is_string()) return fail("needs a string \"type\"");
    const std::string type = e["type"];
    const JobConfig* job_config = config.FindJob(type);
    if (job_config == nullptr) return fail("no [[jobs]] type \"" + type + "\"");
    int64_t delay_ms = 0;
    if (e.contains("delay")) {
      const json& delay = e["delay"];
      if (delay.is_number_integer() && delay.get<int64_t>() >= 0) {
        delay_ms = delay.get<int64_t>();
      } else if (delay.is_string()) {
        std::optional<std::chrono::milliseconds> parsed = ParseDuration(delay.get<std::string>());
        if (!parsed) return fail("bad delay \"" + delay.get<std::string>() + "\" (e.g. \"10m\")");
        delay_ms = parsed->count();
      } else {
        return fail("\"delay\" must be a duration (\"10m\") or milliseconds");
      }
      if (delay_ms > kMaxEnqueueDelayMs) return fail("\"delay\" is longer than 30 days");
    }
    std::string key = parent.id + ":" + std::to_string(i);
    if (e.contains("key")) {
      if (!e["key"].is_string()) return fail("\"key\" is not a string");
      key = e["key"];
      if (key.empty() || key.size() > kMaxIdempotencyKey || HasControl(key)) {
        return fail("key must be 1-255 characters without control characters");
      }
    }
    NewJob job;
    job.id = NewJobId(now_ms);
    job.type = type;
    job.source = parent.source;
    job.dedupe_keys = {"enqueue:" + key};
    job.payload_json = e.contains("payload") ? Dump(e["payload"]) : "{}";
    job.headers_json = Dump(json{{"x-firebreak-parent-job", parent.id}});
    job.traceparent = parent.traceparent;
    job.max_attempts = job_config->max_attempts;
    job.enqueued_at_ms = now_ms;
    job.run_at_ms = now_ms + delay_ms;
    AssignJobKey(*job_config, job);
    jobs.push_back(std::move(job));
  }
  return jobs;
}

Result<Action> ParseActionPayload(std::string_view payload_json) {
  json stored = json::parse(payload_json, nullptr, /*allow_exceptions=*/false);
  if (!stored.is_object() || !stored.contains("integration") || !stored.contains("path") ||
      !stored["integration"].is_string() || !stored["path"].is_string()) {
    return InvalidArgument("not an action payload");
  }
  Action action;
  action.integration = stored["integration"];
  action.method = stored.value("method", std::string("POST"));
  action.path = stored["path"];
  action.idempotency_key = stored.value("idempotency_key", std::string());
  action.job_id = stored.value("job_id", std::string());
  action.index = stored.value("index", 0);
  if (stored.contains("headers") && stored["headers"].is_object()) {
    for (const auto& [name, value] : stored["headers"].items()) {
      if (value.is_string()) action.headers.emplace_back(name, value.get<std::string>());
    }
  }
  if (stored.contains("json")) {
    action.body = Dump(stored["json"]);
    action.content_type = "application/json";
  } else if (stored.contains("body") && stored["body"].is_string()) {
    action.body = stored["body"];
  }
  return action;
}

}  // namespace firebreak
