// One job's context: the envelope, the sidecar's services (integrations, sessions,
// state) bounded by the attempt's deadline, logs, and the answer's actions and jobs.
#include <cstdio>
#include <ctime>
#include <iostream>
#include <limits>

#include "firebreak/sdk.h"

namespace firebreak {
namespace {

constexpr double kDefaultTimeout = 30.0;

std::string Encode(const std::string& text) {  // percent-encoding of a path segment or query part
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string Upper(std::string text) {  // HTTP methods: "post" -> "POST"
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

std::mutex& StderrMutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace

// ---- Envelope -------------------------------------------------------------------------------

Envelope Envelope::from_json(const Json& json) {
  if (!json.is_object() || !json.contains("id") || !json["id"].is_string() ||
      json["id"].get<std::string>().empty()) {
    throw std::invalid_argument("an envelope needs a string id");
  }
  auto text = [&](const char* key) {
    auto it = json.find(key);
    return it != json.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto optional_text = [&](const char* key) -> std::optional<std::string> {
    auto it = json.find(key);
    if (it == json.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  auto number = [&](const char* key, int fallback) {
    auto it = json.find(key);
    return it != json.end() && it->is_number_integer() ? it->get<int>() : fallback;
  };
  Envelope envelope;
  envelope.id = text("id");
  envelope.type = text("type");
  envelope.source = text("source");
  envelope.dedupe_key = text("dedupe_key");
  envelope.attempt = number("attempt", 1);
  envelope.max_attempts = number("max_attempts", 1);
  envelope.enqueued_at = text("enqueued_at");
  envelope.deadline = optional_text("deadline");
  envelope.traceparent = text("traceparent");
  envelope.ordering_key = optional_text("ordering_key");
  if (auto it = json.find("headers"); it != json.end() && it->is_object()) {
    for (const auto& [name, value] : it->items()) {
      if (value.is_string()) envelope.headers[name] = value.get<std::string>();
    }
  }
  if (auto it = json.find("payload"); it != json.end()) envelope.payload = *it;
  envelope.raw = json;
  return envelope;
}

std::string Envelope::trace_id() const {
  // 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>
  if (traceparent.size() != 55 || traceparent[2] != '-' || traceparent[35] != '-') return "";
  return traceparent.substr(3, 32);
}

std::optional<std::chrono::system_clock::time_point> Envelope::deadline_time() const {
  if (!deadline) return std::nullopt;
  std::tm tm{};
  int millis = 0;
  // "2026-11-27T20:00:30.214Z"
  if (std::sscanf(deadline->c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                  &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &millis) < 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::chrono::system_clock::from_time_t(timegm(&tm)) + std::chrono::milliseconds(millis);
}

// ---- Logger ---------------------------------------------------------------------------------

Logger::Logger(const Envelope& envelope)
    : base_({{"job_id", envelope.id},
             {"job_type", envelope.type},
             {"trace_id", envelope.trace_id()}}) {}

void Logger::log(const std::string& level, const std::string& msg, const Json& fields) const {
  // In this order, as the other SDKs write them: level and msg first, then the job's ids.
  nlohmann::ordered_json line = {{"level", level}, {"msg", msg}};
  for (const auto& [key, value] : base_.items()) line[key] = value;
  if (fields.is_object()) {
    for (const auto& [key, value] : fields.items()) line[key] = value;
  }
  const std::string text =
      line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  std::lock_guard lock(StderrMutex());
  std::cerr << text << std::flush;
}

// ---- Integration ------------------------------------------------------------------------------

Integration::Integration(Context& ctx, const std::string& name)
    : ctx_(ctx), prefix_("/v1/integrations/" + Encode(name) + "/") {}

Response Integration::request(const std::string& method, const std::string& path,
                              const CallOptions& options) {
  Headers headers = options.headers;
  std::string body = options.body.value_or("");
  if (!options.json.is_null()) {
    body = options.json.dump();
    if (!headers.count("Content-Type") && !headers.count("content-type")) {
      headers["Content-Type"] = "application/json";
    }
  }
  std::string target = prefix_ + (path.empty() || path[0] != '/' ? path : path.substr(1));
  for (size_t i = 0; i < options.params.size(); ++i) {
    target += (i == 0 && target.find('?') == std::string::npos ? "?" : "&") +
              Encode(options.params[i].first) + "=" + Encode(options.params[i].second);
  }
  Response response = ctx_.call(Upper(method), target, body, std::move(headers), options.timeout);
  if (auto it = response.headers.find("x-firebreak-origin");
      it != response.headers.end() && it->second == "firebreak") {
    throw_sidecar_error(response);
  }
  return response;
}

Response Integration::get(const std::string& path,
                          std::vector<std::pair<std::string, std::string>> params) {
  CallOptions options;
  options.params = std::move(params);
  return request("GET", path, options);
}

Response Integration::with_json(const std::string& method, const std::string& path, Json json) {
  CallOptions options;
  options.json = std::move(json);
  return request(method, path, options);
}

Response Integration::post(const std::string& path, Json json) {
  return with_json("POST", path, std::move(json));
}
Response Integration::put(const std::string& path, Json json) {
  return with_json("PUT", path, std::move(json));
}
Response Integration::patch(const std::string& path, Json json) {
  return with_json("PATCH", path, std::move(json));
}

Response Integration::del(const std::string& path) { return request("DELETE", path); }

// ---- Store ------------------------------------------------------------------------------------

Store::Store(Context& ctx, std::string kind, const std::string& key)
    : ctx_(ctx), kind_(std::move(kind)), key_(key), path_("/v1/" + kind_ + "/" + Encode(key)) {}

Store::Versioned Store::get_versioned() {
  Response response = ctx_.call("GET", path_, "", {}, std::nullopt);
  if (response.status == 404) return {};
  if (response.status != 200) throw_sidecar_error(response);
  Versioned out;
  std::string etag = response.headers.count("etag") ? response.headers["etag"] : "\"0\"";
  etag.erase(std::remove(etag.begin(), etag.end(), '"'), etag.end());
  out.version = etag.empty() ? 0 : std::stoll(etag);
  const std::string& type = response.headers["content-type"];
  if (type.rfind("application/json", 0) == 0) {
    out.value = response.body.empty() ? Json() : Json::parse(response.body);
  } else {
    out.value = response.body;  // stored as bytes by another client: returned as a string
  }
  return out;
}

Json Store::get(Json fallback) {
  Versioned got = get_versioned();
  return got.version ? std::move(got.value) : std::move(fallback);
}

int64_t Store::put(const Json& value, const PutOptions& options) {
  Headers headers = {{"Content-Type", "application/json"}};
  if (options.if_version) {
    headers["If-Match"] = "\"" + std::to_string(*options.if_version) + "\"";
  } else if (options.if_absent) {
    headers["If-None-Match"] = "*";
  }
  std::string target = path_;
  if (options.ttl) {
    if (kind_ != "sessions")
      throw std::invalid_argument("state does not expire: use session() for a ttl");
    target += "?ttl=" + Encode(*options.ttl);
  }
  Response response = ctx_.call("PUT", target, value.dump(), std::move(headers), std::nullopt);
  if (response.status != 200 && response.status != 201) throw_sidecar_error(response);
  return Json::parse(response.body).at("version").get<int64_t>();
}

Json Store::update(const std::function<Json(Json)>& change, std::optional<std::string> ttl,
                   Json fallback, int attempts) {
  for (int i = 0; i < attempts; ++i) {
    Versioned current = get_versioned();
    Json next = change(current.version ? std::move(current.value) : fallback);
    PutOptions options;
    options.ttl = ttl;
    options.if_version = current.version;
    options.if_absent = !current.version;
    try {
      put(next, options);
      return next;
    } catch (const Conflict&) {
      continue;  // someone wrote in between: read again
    }
  }
  throw Conflict(412, key_ + ": still changing after " + std::to_string(attempts) + " tries",
                 std::nullopt);
}

bool Store::erase() {
  Response response = ctx_.call("DELETE", path_, "", {}, std::nullopt);
  if (response.status == 404) return false;
  if (response.status != 200 && response.status != 204) throw_sidecar_error(response);
  return true;
}

// ---- Context ------------------------------------------------------------------------------------

Context::Context(Envelope envelope, const Sidecar& sidecar)
    : log(envelope), envelope_(std::move(envelope)), sidecar_(sidecar) {
  deadline_ = envelope_.deadline_time();
}

double Context::time_left() const {
  if (!deadline_) return std::numeric_limits<double>::infinity();
  return std::chrono::duration<double>(*deadline_ - std::chrono::system_clock::now()).count();
}

void Context::check_deadline() const {
  if (cancelled()) {
    throw DeadlineNear("the attempt's deadline is " + std::to_string(time_left()) + " s away");
  }
}

Response Context::call(const std::string& method, const std::string& target,
                       const std::string& body, Headers headers, std::optional<double> timeout) {
  // Never outlive the attempt: the call ends at the deadline's margin.
  const double left = time_left() - kDeadlineMargin;
  if (left <= 0) throw DeadlineNear("no time left for a sidecar call before the deadline");
  const double limit = std::min(timeout.value_or(kDefaultTimeout), left);
  headers["traceparent"] = envelope_.traceparent;
  headers["X-Firebreak-Job-Id"] = envelope_.id;
  try {
    return sidecar_.request(method, target, body, headers, limit);
  } catch (const TransportError& error) {
    if (error.timed_out() && cancelled()) {
      throw DeadlineNear(std::string("a sidecar call ran into the deadline: ") + error.what());
    }
    throw;
  }
}

void Context::action(const std::string& integration, const std::string& method,
                     const std::string& path, Json json, const ActionOptions& options) {
  Json action = {{"integration", integration}, {"method", Upper(method)}, {"path", path}};
  if (!json.is_null()) action["json"] = std::move(json);
  if (options.body) action["body"] = *options.body;
  if (!options.headers.empty()) action["headers"] = options.headers;
  if (options.idempotency_key) action["idempotency_key"] = *options.idempotency_key;
  if (options.ordering_key) action["ordering_key"] = *options.ordering_key;
  actions_.push_back(std::move(action));
}

void Context::enqueue(const std::string& type, Json payload, const EnqueueOptions& options) {
  Json job = {{"type", type}};
  if (!payload.is_null()) job["payload"] = std::move(payload);
  if (!options.delay.is_null()) job["delay"] = options.delay;
  if (options.key) job["key"] = *options.key;
  enqueued_.push_back(std::move(job));
}

}  // namespace firebreak
