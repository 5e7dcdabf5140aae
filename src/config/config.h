// Typed configuration (DESIGN §2), parsed once from TOML and validated strictly:
// unknown keys, literal secrets, bad durations/sizes and references to undefined
// job types are errors that name the file, line and key.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "queue/backoff.h"

namespace firebreak {

using std::chrono::milliseconds;

// A secret reference; never a literal in the file. `value` is filled by ResolveSecrets.
struct Secret {
  enum class Kind { kEnv, kFile, kVault };
  Kind kind = Kind::kEnv;
  std::string ref;    // env var name, file path, or vault "PATH#FIELD"
  std::string where;  // "file:line:col" of the reference, for error messages
  std::string value;  // resolved value (empty until resolved)
  std::string Describe() const;  // "env FOO", "file /run/secret" — never the value
};

// What an admin token may do; each scope includes the ones before it.
enum class AdminScope {
  kRead = 0,     // GET: look at everything (never secrets)
  kOperate = 1,  // POST: retry, cancel, pause/resume, replay, cancel an operation
  kAdmin = 2,    // DELETE (and purges): destroy data
};
const char* AdminScopeName(AdminScope scope);  // "read", "operate", "admin"

// One [[server.admin_tokens]] entry.
struct AdminTokenConfig {
  std::string name;  // [A-Za-z0-9_.-], unique; the audit log's actor
  Secret token;      // resolved like every secret; distinct from every other token
  AdminScope scope = AdminScope::kRead;
  std::string where;  // "file:line:col" of the entry
};

// server.admin_listen's value that serves the admin API on the ingress listener.
inline constexpr char kAdminOnIngress[] = "ingress";
// The name server.admin_token goes by (403 messages, the audit log's actor).
inline constexpr char kAdminTokenName[] = "admin";

struct ServerConfig {
  std::string listen = "127.0.0.1:8080";
  int threads = 0;                         // 0 = number of cores
  uint64_t max_body = 1024 * 1024;         // larger → 413
  milliseconds read_timeout{10'000};       // whole request must arrive by then
  int max_connections = 10'000;            // open connections; more are closed at accept
  // The admin API's tokens: admin_token (named "admin", scope admin) and every
  // [[server.admin_tokens]] entry. No token at all → the admin API is off.
  std::optional<Secret> admin_token;
  std::vector<AdminTokenConfig> admin_tokens;
  // Where the admin API listens: "host:port" (loopback by default; another address is
  // allowed and warned about at start), or kAdminOnIngress for the ingress listener.
  std::string admin_listen = "127.0.0.1:8082";

  bool AdminEnabled() const { return admin_token.has_value() || !admin_tokens.empty(); }
  bool AdminOnIngress() const { return admin_listen == kAdminOnIngress; }
};

enum class Durability {
  kFsync,    // ACK after the commit is on disk (survives power loss)
  kProcess,  // ACK after the commit reached the OS (survives a crash of firebreak)
};

struct QueueConfig {
  std::string backend = "sqlite";
  std::string path = "var/firebreak.db";  // sqlite; relative to the working directory
  std::string url = "redis://127.0.0.1:6379/0";
  int64_t max_depth = 100'000;             // ready+delayed over all types; above → 503
  milliseconds dedupe_ttl{24 * 3600 * 1000};
  Durability durability = Durability::kFsync;
  // The longest a webhook waits for the store to take its job before it is answered 503
  // with Retry-After (the platform retries; nothing is lost), and each Redis command's
  // timeout. A healthy commit takes milliseconds; platforms give a webhook 3-10 s.
  milliseconds timeout{2'000};
  // sqlite: the page cache of the writer connection (the readers keep 2 MiB each).
  uint64_t cache_size = 8 * 1024 * 1024;
  // How long finished jobs (succeeded, cancelled, replayed) and their attempts stay
  // searchable; 0 deletes a succeeded job at once. Dead jobs stay until replayed or
  // deleted, whatever this says: the dead-letter queue is never emptied by a timer.
  milliseconds retention{24 * 3600 * 1000};
  // How long a finished job keeps its payload and headers (<= retention; 0 = as long
  // as retention); after it only the metadata, attempts and search keys are kept.
  milliseconds retention_payload{0};
  // JSON pointers into the payload whose values are replaced by "[redacted]" before a
  // job is stored (handlers see them redacted too).
  std::vector<std::string> redact;
};

// Bounds of queue.timeout and store.timeout.
inline constexpr milliseconds kMinStoreTimeout{10};
inline constexpr milliseconds kMaxStoreTimeout{60'000};

struct WorkerConfig {
  int max_in_flight = 64;
  milliseconds shutdown_grace{30'000};
  std::string sidecar = "127.0.0.1:8081";  // loopback; port 0 = any free port; "" = off
};

struct StoreConfig {
  std::string sessions = "sqlite";
  std::string sessions_url = "redis://127.0.0.1:6379/1";
  std::string state = "sqlite";
  std::string state_url = "postgresql://firebreak@127.0.0.1:5432/firebreak";
  // The longest a sidecar session or state call waits for its store before the handler
  // gets 503 with Retry-After.
  milliseconds timeout{2'000};
};

enum class SourceKind { kSlack, kDiscord, kTelegram, kGithub, kMeta, kHmac };
const char* SourceKindName(SourceKind kind);

struct WebhookPreset;  // config/webhook_presets.h

// How a signed webhook is authenticated: kind "hmac" writes one (`scheme = {...}`, or the
// header/prefix/algorithm shorthand), the provider presets (kind "stripe", ...) are one.
// The engine that applies it is ingress/scheme_source.h; docs/webhook-schemes.md.
struct SignatureScheme {
  enum class Mode {
    kHmac,   // an HMAC of a signed string built from the request
    kToken,  // the secret itself, sent in a header or a body field (compared as digests)
  };
  enum class Encoding { kHex, kBase64 };
  enum class SecretEncoding { kRaw, kBase64 };
  enum class TimestampFormat { kUnixSeconds, kUnixMillis, kRfc3339 };

  Mode mode = Mode::kHmac;
  std::string algorithm = "sha256";  // sha1 | sha256 | sha512
  Encoding encoding = Encoding::kHex;  // of the signature
  // The HMAC key: the secret's bytes, or base64-decoded after `secret_prefix` (e.g.
  // "whsec_") is stripped.
  SecretEncoding secret_encoding = SecretEncoding::kRaw;
  std::string secret_prefix;
  // Where the signature is: header value = entries joined by `separator` ("" = one
  // entry); an entry starting with `prefix` is a candidate signature, any one valid is
  // enough (secret rotation); other entries are ignored ("v0=...").
  std::string header = "X-Signature";
  std::string prefix;
  std::string separator;
  // The signed string: text with {body}, {timestamp}, {header:NAME}, {url} and
  // {form_params} (form fields sorted by name, each name then value: Twilio).
  std::string signed_template = "{body}";
  // The signed timestamp: a header, an entry of the signature header ("t="), or a JSON
  // pointer into the body; at most one. None = no replay window.
  std::string timestamp_header;
  std::string timestamp_entry;
  std::string timestamp_field;
  TimestampFormat timestamp_format = TimestampFormat::kUnixSeconds;
  // kToken: the body field holding the token (JSON pointer, or form field name) instead
  // of `header`. The field is removed from the job's payload.
  std::string token_field;

  bool HasTimestamp() const {
    return !timestamp_header.empty() || !timestamp_entry.empty() || !timestamp_field.empty();
  }
};

struct SourceConfig {
  std::string name;
  SourceKind kind = SourceKind::kHmac;
  // A provider preset (kind = "stripe", ...): kind is then kHmac with `scheme` filled from
  // the preset; nullptr for the other kinds and for a hand-written hmac source.
  const WebhookPreset* preset = nullptr;
  std::string path;            // e.g. "/hooks/slack"
  std::optional<Secret> secret;
  // hmac/presets: a second secret also accepted, for rotating the secret without
  // downtime where the provider sends one signature per request.
  std::optional<Secret> previous_secret;
  std::string job;             // job type to enqueue
  int priority = 0;            // of its jobs, 0..kMaxPriority (queue/job.h)
  // kind = "hmac" and presets
  SignatureScheme scheme;
  milliseconds tolerance{300'000};  // replay window around a signed timestamp
  // Where the dedupe key comes from, first present wins: "/json/pointer",
  // "header:Name", or "body" (SHA-256 of the body). Empty = body hash. Without "body"
  // a request with none of them is 400.
  std::vector<std::string> dedupe;
  // The externally visible origin (and path prefix) for schemes that sign the URL
  // (Twilio), e.g. "https://bot.example.com"; "" = from X-Forwarded-Proto/Host.
  std::string public_url;
  // Request headers copied into the job envelope (any kind), on top of the kind's own.
  // Never a signature, token or credential header.
  std::vector<std::string> headers;
  // JSON pointers into the job's payload whose values (strings, integers) operators find
  // the job by, as "data.object.customer:cus_123" (any kind): on top of a platform kind's
  // own keys; a preset's defaults until set. docs/search-keys.md.
  std::vector<std::string> search_keys;
  // kind = "meta"
  std::optional<Secret> verify_token;
  // kind = "discord" (a public key may be a literal)
  std::string public_key;
  // kind = "discord", optional: the hex Ed25519 private key seed that `firebreak send`
  // signs with (for trying a source without Discord; never needed to verify).
  std::optional<Secret> signing_key;
  std::string where;           // "file:line:col" of the [[sources]] table

  // "slack", ..., "hmac", or the preset's name.
  std::string KindName() const;
};

struct HandlerConfig {
  std::vector<std::string> command;  // NDJSON process pool
  std::string url;                   // HTTP POST of the envelope (http:// or https://)
  // https url only: PEM file of the CAs to trust instead of the system store ("" =
  // system store). Relative to the working directory; read when the handler is made.
  std::string ca_file;
};

// batch = { max = 50, wait = "1s" } (issue 17): the handler gets up to `max` jobs of the
// type in one run, gathered for at most `wait` after the first of them was claimed.
struct BatchConfig {
  static constexpr int kMaxJobs = 1000;
  static constexpr milliseconds kMaxWait{60'000};
  int max = 0;               // 0 = not batched; else 1..kMaxJobs jobs per run
  milliseconds wait{1'000};  // 1ms..kMaxWait

  bool enabled() const { return max > 0; }
};

struct JobConfig {
  std::string type;
  HandlerConfig handler;
  // Max in flight of this type, per worker process; with `batch`, concurrent batch runs.
  int concurrency = 20;
  // Max in flight of this type over every worker process on the queue (0 = no cap): a
  // shared cap held in the store, so 4 workers with concurrency 20 and global_concurrency
  // 10 run 10 at once, not 80. A killed worker's jobs count until their lease expires.
  int global_concurrency = 0;
  milliseconds timeout{30'000};   // hard: the attempt is killed/cancelled then
  int max_attempts = 5;           // then → dead-letter queue
  BackoffPolicy backoff;          // base 250ms, factor 4, max 5m, full jitter
  // The job's flow key ("" = none): a JSON pointer into the payload ("/event/channel")
  // or the name of one of its source's search keys ("slack.channel"). `ordering` is the
  // same with concurrency_per_key = 1. Jobs without a value at the key have no key.
  std::string key;
  int concurrency_per_key = 1;  // jobs of one key runnable or in flight at once
  BatchConfig batch;            // off unless batch.max > 0
  // A JSON pointer to the job's priority in its payload (an integer; above kMaxPriority
  // counts as kMaxPriority), over its source's `priority`; "" = the source's.
  std::string priority_from;
  // A job of priority p is claimed as if runnable p x this earlier.
  milliseconds priority_step{60'000};
  // `debounce = { key, period }`: a job waits `period`; one that arrives meanwhile with
  // the same value at `key` (a JSON pointer or search key name, like `key`) supersedes
  // it (the waiting one is cancelled, "superseded by <id>"), so only the last of a burst
  // runs. period 0 = off.
  std::string debounce_key;
  milliseconds debounce_period{0};
  // `throttle = { per_key = "5/10s" }`: at most throttle_per_key runs of one key's jobs
  // start in any throttle_period (attempts, retries included), across all processes.
  // Needs `key`; 0 = off. Jobs over it wait, none are dropped.
  int throttle_per_key = 0;
  milliseconds throttle_period{0};
  std::string throttle_rate;  // as written, for messages
  // `paused = true`: workers do not claim this type (Queue::SetPaused, shared by every
  // process). Applied at start when true, and on a reload (SIGHUP) when it changed;
  // a start with false does not resume a type an operator paused.
  bool paused = false;
  std::string where;
};

// How firebreak authenticates to an integration; handlers never see the credential.
struct IntegrationAuth {
  enum class Kind {
    kBearer,  // auth = { bearer = <secret> } → "Authorization: Bearer <value>"
    kHeader,  // auth = { header = { name = "X-Api-Key", value = <secret> } }
    // auth = { path = { prefix = "/bot", value = <secret> } } → the URL's path starts with
    // prefix + value, before the handler's path: Telegram's https://api.telegram.org/bot<token>/...
    kPath,
  };
  Kind kind = Kind::kBearer;
  std::string header_name;  // kHeader only
  Secret secret;
  std::string path_prefix;  // kPath only: before the secret ("/bot"); may be empty
};

struct IntegrationRetryConfig {
  int attempts = 3;  // tries in total, the first included; 1 = never retry
  // Retry n (1-based) waits backoff[min(n, size) - 1]; never empty after parsing.
  std::vector<milliseconds> backoff{milliseconds(250), milliseconds(1'000), milliseconds(4'000)};
  bool jitter = true;  // randomize each wait so clients don't retry in lockstep
};

struct CircuitBreakerConfig {
  double failure_rate = 0.5;  // open when failures/calls in `window` reach this (0, 1]
  int min_calls = 20;         // ...and at least this many calls were made in it
  milliseconds window{30'000};
  milliseconds open_for{30'000};  // then half-open: probe before closing again
};

struct RateLimitConfig {
  std::string rate;       // as written, e.g. "50/s" (units s, m, h)
  double per_second = 0;  // the same rate per second
  int burst = 1;          // token bucket size: calls that may go out back to back after a
                          // quiet spell; default 1 (evenly spaced at the rate)
};

// An outbound API called through the worker's sidecar (DESIGN §2, §5).
struct IntegrationConfig {
  std::string name;                     // [A-Za-z0-9_.-], unique; "/v1/integrations/<name>/"
  std::string base_url;                 // http(s)://host[:port][/prefix], no trailing '/'
  std::optional<IntegrationAuth> auth;  // none → requests go out without credentials
  milliseconds timeout{5'000};          // per attempt
  int max_concurrency = 40;             // calls in flight to this integration
  int max_queue = 1000;                 // calls waiting for a slot; beyond → rejected at once
  IntegrationRetryConfig retry;
  CircuitBreakerConfig breaker;
  std::optional<RateLimitConfig> rate_limit;  // none → unlimited
  // Where max_concurrency, rate_limit and the breaker are counted (docs/egress.md "Shared
  // limits"): kShared (default) across every process on the queue's store (Redis, or a
  // `<queue.path>.limits` SQLite file per host), kProcess in each process on its own
  // (no store round trip per call; N processes give the upstream N times the limits).
  enum class Limits { kShared, kProcess };
  Limits limits = Limits::kShared;
  // How long a dead process's concurrency permits stay taken; live holders renew every
  // third of it. Bounds: 300ms..10m.
  milliseconds shared_lease{5'000};
  std::string where;                          // "file:line:col" of the [[integrations]] table
};

// What a schedule does about ticks nobody enqueued (every process was down, or the store
// refused): kSkip forgets them, kLast runs the newest one once, kAll runs each of them.
// Only ticks within ScheduleConfig::catch_up count.
enum class MissedTicks { kSkip, kLast, kAll };

// [[schedules]] (issue 17, docs/schedules.md): a job enqueued at every tick of a cron
// expression, exactly once across every process sharing the queue (the tick is the
// job's dedupe key).
struct ScheduleConfig {
  std::string name;                  // [A-Za-z0-9_.-], unique
  std::string cron;                  // 5 or 6 fields (schedule/cron.h)
  std::string time_zone = "UTC";     // an IANA name
  std::string job;                   // the [[jobs]] type enqueued
  std::string payload_json = "{}";   // `payload` (a TOML table) as JSON
  MissedTicks missed = MissedTicks::kLast;
  milliseconds catch_up{3600 * 1000};  // how old a missed tick may be; <= queue.dedupe_ttl
  std::string where;                 // "file:line:col" of the [[schedules]] table
};

struct TelemetryConfig {
  std::string log_format = "json";  // "json" | "text"
  std::string log_level = "info";   // trace|debug|info|warn|error
  std::string otlp_endpoint;
  std::string service_name = "firebreak";
};

struct Config {
  std::string file;  // path the config was read from
  ServerConfig server;
  QueueConfig queue;
  WorkerConfig worker;
  StoreConfig store;
  std::vector<SourceConfig> sources;
  std::vector<JobConfig> jobs;
  std::vector<IntegrationConfig> integrations;
  std::vector<ScheduleConfig> schedules;
  TelemetryConfig telemetry;

  // nullptr when there is no such entry. Pointers stay valid while the vectors are unchanged.
  const JobConfig* FindJob(const std::string& type) const;
  const SourceConfig* FindSource(const std::string& name) const;
  const IntegrationConfig* FindIntegration(const std::string& name) const;
};

// Parses and validates `path`. On error the status message reads
// "<file>:<line>:<col>: <key>: <what is wrong>" (kInvalidArgument) for the earliest
// problem in the file, or "<file>: cannot read: <reason>". Secrets are not resolved here.
Result<Config> LoadConfig(const std::string& path);

// Same, from text already in memory; `path` is used in messages.
Result<Config> ParseConfig(std::string_view text, const std::string& path);

// Reads every secret's value from its env var or file (trailing whitespace trimmed;
// relative file paths are relative to the working directory). An unset or empty
// variable, an unreadable or empty file, and any vault reference (not supported by
// this build yet) are errors (kInvalidArgument) that name the secret's location, key
// and reference, never a value. Stops at the first error; secrets before it stay filled.
Status ResolveSecrets(Config& config);
// Only one source's (`path` names it in errors, e.g. "sources[2]"): `firebreak send` signs
// with them and needs none of the integrations' or admin tokens.
Status ResolveSourceSecrets(SourceConfig& source, const std::string& path);

// A readable multi-line summary for `firebreak check`: listen address, queue, stores,
// every source (kind, path, job, secret reference), job (handler, concurrency, timeout,
// attempts, backoff) and integration. Shows secret references only, never values, and
// hides passwords inside URLs.
std::string Summarize(const Config& config);

// Splits "host:port" or "[v6-address]:port" (port 1..65535, or 0 = any free port when
// `allow_port_zero`) into host (without the brackets) and port. Errors
// (kInvalidArgument) explain what is wrong with the text.
Result<std::pair<std::string, uint16_t>> ParseListenAddress(std::string_view address,
                                                         bool allow_port_zero = false);

// True for a host part of a listen address that only this machine reaches: "localhost",
// "::1", "127.x.y.z".
bool IsLoopbackAddress(std::string_view host);

}  // namespace firebreak
