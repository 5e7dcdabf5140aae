// firebreak's handler SDK for C++ (docs/handler-protocol.md): register a function per job
// type, and run it in command mode (NDJSON on stdin/stdout, many jobs per process, on
// `concurrency` threads) or url mode (a small HTTP server).
//
//   firebreak::Bot bot;
//   bot.on("slack.event", [](firebreak::Context& ctx) {
//     const auto& event = ctx.payload()["event"];
//     ctx.action("slack-api", "POST", "/api/chat.postMessage",
//                {{"channel", event["channel"]}, {"text", "hi"}});
//   });
//   return bot.run();
//
// The public names are lower_snake like the standard library's and the other SDKs'
// (`on`, `integration`, `session`), so one protocol reads the same in every language.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace firebreak {

using Json = nlohmann::json;
using Headers = std::map<std::string, std::string>;  // names lower-case when received

// ---- the job ----------------------------------------------------------------------------

// One job's envelope (schemas/envelope.schema.json); `raw` keeps fields this version does
// not know.
struct Envelope {
  std::string id;
  std::string type;
  std::string source;
  std::string dedupe_key;
  int attempt = 1;
  int max_attempts = 1;
  std::string enqueued_at;
  std::optional<std::string> deadline;  // when the attempt's timeout kills it (UTC, ms)
  std::string traceparent;
  std::optional<std::string> ordering_key;
  Headers headers;
  Json payload;
  Json raw;

  // Throws std::invalid_argument when `json` is not an object with a string id.
  static Envelope from_json(const Json& json);
  std::string trace_id() const;  // the 32-hex trace id of traceparent, "" without one
  bool is_last_attempt() const { return attempt >= max_attempts; }
  // The deadline as a time point; nullopt without one (or when unreadable).
  std::optional<std::chrono::system_clock::time_point> deadline_time() const;
};

// ---- what a handler throws, and what the sidecar's refusals throw ------------------------

// Fail this attempt and retry the job (after `after` seconds when given).
class Retry : public std::runtime_error {
 public:
  explicit Retry(const std::string& error = "retry requested",
                 std::optional<double> after = std::nullopt)
      : std::runtime_error(error), after_(after) {}
  std::optional<double> after() const { return after_; }

 private:
  std::optional<double> after_;
};

// Fail the job for good: it goes to the dead-letter queue (`retry: false`).
class Reject : public std::runtime_error {
 public:
  explicit Reject(const std::string& error) : std::runtime_error(error) {}
};

// The attempt's deadline is near: give up cleanly (the job is retried).
class DeadlineNear : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// firebreak's sidecar refused or could not complete a call (its answer carried
// X-Firebreak-Origin: firebreak). Uncaught, it fails the attempt with its Retry-After.
class SidecarError : public std::runtime_error {
 public:
  SidecarError(int status, std::string reason, std::optional<double> retry_after);
  int status() const { return status_; }
  const std::string& reason() const { return reason_; }
  std::optional<double> retry_after() const { return retry_after_; }

 private:
  int status_;
  std::string reason_;
  std::optional<double> retry_after_;
};
#define FIREBREAK_SIDECAR_ERROR(Name) \
  class Name : public SidecarError {  \
   public:                            \
    using SidecarError::SidecarError; \
  }
FIREBREAK_SIDECAR_ERROR(BreakerOpen);          // the breaker is open: the upstream was not called
FIREBREAK_SIDECAR_ERROR(RateLimited);          // no rate-limit permit now (retry_after says when)
FIREBREAK_SIDECAR_ERROR(ConcurrencyFull);      // the integration's max_concurrency is reached
FIREBREAK_SIDECAR_ERROR(UpstreamTimeout);      // no answer within the timeout, after retries
FIREBREAK_SIDECAR_ERROR(UpstreamUnreachable);  // no connection, after retries
FIREBREAK_SIDECAR_ERROR(StoreUnavailable);     // the session/state store did not answer in time
FIREBREAK_SIDECAR_ERROR(Conflict);             // a compare-and-set write found a newer version
#undef FIREBREAK_SIDECAR_ERROR

// An upstream answered 4xx/5xx (Response::raise_for_status).
class UpstreamError : public std::runtime_error {
 public:
  UpstreamError(int status, const std::string& body);
  int status() const { return status_; }

 private:
  int status_;
};

// ---- the sidecar ---------------------------------------------------------------------------

// The sidecar could not be reached, or did not answer within the call's timeout.
class TransportError : public std::runtime_error {
 public:
  TransportError(const std::string& what, bool timed_out)
      : std::runtime_error(what), timed_out_(timed_out) {}
  bool timed_out() const { return timed_out_; }

 private:
  bool timed_out_;
};

// An upstream's answer relayed by the sidecar, whatever its status.
struct Response {
  int status = 0;
  Headers headers;
  std::string body;
  bool ok() const { return status >= 200 && status < 300; }
  Json json() const;  // the body parsed (null when empty); throws on bad JSON
  const Response& raise_for_status() const;
};

// HTTP to $FIREBREAK_SIDECAR (libcurl, one kept-alive connection per thread).
class Sidecar {
 public:
  // "" = $FIREBREAK_SIDECAR, else http://127.0.0.1:8081. Throws on a non-http URL.
  explicit Sidecar(std::string url = "");
  const std::string& url() const { return url_; }
  // One call, timeout in seconds; any status is returned. Throws TransportError when the
  // sidecar cannot be reached or does not answer in time.
  Response request(const std::string& method, const std::string& target, const std::string& body,
                   const Headers& headers, double timeout_seconds) const;

 private:
  std::string url_;
};

// The exception for an answer firebreak made itself (X-Firebreak-Origin: firebreak).
[[noreturn]] void throw_sidecar_error(const Response& response);

class Context;

struct CallOptions {
  Json json;                        // sent as application/json when not null
  std::optional<std::string> body;  // raw body (json wins when both are set)
  Headers headers;                  // e.g. {"Content-Type", "text/plain"}
  std::vector<std::pair<std::string, std::string>> params;  // ?a=b&... (encoded here)
  std::optional<double> timeout;  // seconds; default 30, capped by the deadline
};

// Calls to one [[integrations]] entry through the sidecar: its timeout, retries, breaker,
// rate limit, concurrency cap and credential apply. Returns the upstream's answer; the
// sidecar's refusals throw (BreakerOpen, RateLimited, ...).
class Integration {
 public:
  Integration(Context& ctx, const std::string& name);
  Response request(const std::string& method, const std::string& path,
                   const CallOptions& options = {});
  Response get(const std::string& path,
               std::vector<std::pair<std::string, std::string>> params = {});
  Response post(const std::string& path, Json json = nullptr);
  Response put(const std::string& path, Json json = nullptr);
  Response patch(const std::string& path, Json json = nullptr);
  Response del(const std::string& path);

 private:
  Response with_json(const std::string& method, const std::string& path, Json json);

  Context& ctx_;
  std::string prefix_;
};

struct PutOptions {
  std::optional<std::string> ttl;     // sessions only, e.g. "30m"
  std::optional<int64_t> if_version;  // compare-and-set on this version
  bool if_absent = false;             // ... or only when the key is absent
};

// One key of the session store (with a ttl) or the state store (durable). Values are JSON.
class Store {
 public:
  Store(Context& ctx, std::string kind, const std::string& key);
  struct Versioned {
    Json value;                      // null when absent
    std::optional<int64_t> version;  // nullopt when absent or expired
  };
  Versioned get_versioned();
  Json get(Json fallback = nullptr);  // the value, or `fallback` when absent
  // Stores `value`; returns the new version. Conflict when a compare-and-set is stale.
  int64_t put(const Json& value, const PutOptions& options = {});
  // Reads, applies `change`, writes only if nobody wrote in between; again on a Conflict,
  // up to `attempts` times. Returns the value written.
  Json update(const std::function<Json(Json)>& change,
              std::optional<std::string> ttl = std::nullopt, Json fallback = nullptr,
              int attempts = 10);
  bool erase();  // true when the key existed
  const std::string& key() const { return key_; }

 private:
  Context& ctx_;
  std::string kind_;
  std::string key_;
  std::string path_;
};

// JSON lines on stderr carrying the job's id, type and trace id.
class Logger {
 public:
  explicit Logger(const Envelope& envelope);
  void log(const std::string& level, const std::string& msg,
           const Json& fields = Json::object()) const;
  void debug(const std::string& msg, const Json& fields = Json::object()) const {
    log("debug", msg, fields);
  }
  void info(const std::string& msg, const Json& fields = Json::object()) const {
    log("info", msg, fields);
  }
  void warn(const std::string& msg, const Json& fields = Json::object()) const {
    log("warn", msg, fields);
  }
  void error(const std::string& msg, const Json& fields = Json::object()) const {
    log("error", msg, fields);
  }

 private:
  nlohmann::ordered_json base_;
};

struct ActionOptions {
  std::optional<std::string> body;  // a raw body instead of json
  Headers headers;
  std::optional<std::string> idempotency_key;  // default: <job id>:<index>
  // Actions of one integration with the same ordering_key (a chat id) are sent one at a
  // time, in the order they were stored.
  std::optional<std::string> ordering_key;
};

struct EnqueueOptions {
  Json delay;                      // "10m" or milliseconds; null = now
  std::optional<std::string> key;  // its idempotency key (default <job id>:<index>)
};

// One job's handler context: the envelope, the sidecar, and the answer being built.
class Context {
 public:
  // Sidecar calls stop this long before the deadline, so the handler can still answer.
  static constexpr double kDeadlineMargin = 0.25;

  Context(Envelope envelope, const Sidecar& sidecar);
  const Envelope& envelope() const { return envelope_; }
  const std::string& id() const { return envelope_.id; }
  const std::string& type() const { return envelope_.type; }
  const Json& payload() const { return envelope_.payload; }
  int attempt() const { return envelope_.attempt; }
  const Logger log;

  // Seconds until the attempt's timeout kills it (infinity without a deadline).
  double time_left() const;
  bool cancelled() const { return time_left() <= kDeadlineMargin; }
  void check_deadline() const;  // throws DeadlineNear once cancelled()

  Integration integration(const std::string& name) { return Integration(*this, name); }
  Store session(const std::string& key) { return Store(*this, "sessions", key); }
  Store state(const std::string& key) { return Store(*this, "state", key); }

  // An outbound call firebreak makes once the job succeeds (stored with the success,
  // sent once, retried on its own).
  void action(const std::string& integration, const std::string& method, const std::string& path,
              Json json = nullptr, const ActionOptions& options = {});
  // A job stored with this job's success: now, or after options.delay.
  void enqueue(const std::string& type, Json payload = nullptr, const EnqueueOptions& options = {});

  const Json& actions() const { return actions_; }
  const Json& enqueued() const { return enqueued_; }

  // A sidecar call bounded by the deadline (used by Integration and Store).
  Response call(const std::string& method, const std::string& target, const std::string& body,
                Headers headers, std::optional<double> timeout);

 private:
  Envelope envelope_;
  const Sidecar& sidecar_;
  std::optional<std::chrono::system_clock::time_point> deadline_;
  Json actions_ = Json::array();
  Json enqueued_ = Json::array();
};

using Handler = std::function<void(Context&)>;

class Bot {
 public:
  explicit Bot(std::string sidecar_url = "");
  // Registers `fn` for a job type ("*": every type without its own handler).
  Bot& on(const std::string& type, Handler fn);

  // The answer object for one envelope (a batch's: one `results` entry per job).
  Json handle(const Json& envelope) const;

  // Command mode: reads envelopes from `in` until it closes, answers on `out`; with
  // concurrency > 1, that many jobs run at once on their own threads. Returns 0.
  int run(int concurrency = 1);
  int run(std::istream& in, std::ostream& out, int concurrency = 1);

  // Url mode: an HTTP server on host:port (0 = any free port) answering POSTed envelopes
  // (2xx done, 503 + Retry-After retry, 422 dead-letter). Blocks until stop(); `ready`
  // gets the bound port once it listens.
  void serve(uint16_t port, const std::string& host = "127.0.0.1",
             const std::function<void(uint16_t)>& ready = {});
  void stop();

 private:
  Json outcome(const Json& envelope) const;

  std::map<std::string, Handler> handlers_;
  Sidecar sidecar_;
  struct Server;
  std::shared_ptr<Server> server_;
  std::mutex server_mutex_;
};

}  // namespace firebreak
