// Typed configuration (DESIGN §2), parsed once from TOML and validated strictly:
// unknown keys, literal secrets, bad durations/sizes and references to undefined
// job types are errors that name the file, line and key.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
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

struct ServerConfig {
  std::string listen = "127.0.0.1:8080";
  int threads = 0;                         // 0 = number of cores
  uint64_t max_body = 1024 * 1024;         // larger → 413
  milliseconds read_timeout{10'000};       // whole request must arrive by then
  std::optional<Secret> admin_token;       // no token → /admin is off
  std::string admin_listen;
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
};

struct WorkerConfig {
  int max_in_flight = 64;
  milliseconds shutdown_grace{30'000};
  std::string sidecar = "127.0.0.1:8081";
};

struct StoreConfig {
  std::string sessions = "sqlite";
  std::string sessions_url = "redis://127.0.0.1:6379/1";
  std::string state = "sqlite";
  std::string state_url = "postgresql://firebreak@127.0.0.1:5432/firebreak";
};

enum class SourceKind { kSlack, kDiscord, kTelegram, kGithub, kMeta, kHmac };
const char* SourceKindName(SourceKind kind);

struct SourceConfig {
  std::string name;
  SourceKind kind = SourceKind::kHmac;
  std::string path;            // e.g. "/hooks/slack"
  std::optional<Secret> secret;
  std::string job;             // job type to enqueue
  // kind = "hmac"
  std::string header = "X-Signature";
  std::string prefix;          // e.g. "sha256="
  std::string algorithm = "sha256";
  std::string dedupe;          // JSON pointer into the body; "" = body hash
  // kind = "meta"
  std::optional<Secret> verify_token;
  // kind = "discord" (a public key may be a literal)
  std::string public_key;
  std::string where;           // "file:line:col" of the [[sources]] table
};

struct HandlerConfig {
  std::vector<std::string> command;  // NDJSON process pool
  std::string url;                   // HTTP POST of the envelope
};

struct JobConfig {
  std::string type;
  HandlerConfig handler;
  int concurrency = 20;           // max in flight of this type, per worker process
  milliseconds timeout{30'000};   // hard: the attempt is killed/cancelled then
  int max_attempts = 5;           // then → dead-letter queue
  BackoffPolicy backoff;          // base 250ms, factor 4, max 5m, full jitter
  std::string ordering;           // JSON pointer for FIFO per key ("" = none)
  std::string where;
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
  TelemetryConfig telemetry;

  const JobConfig* FindJob(const std::string& type) const;
  const SourceConfig* FindSource(const std::string& name) const;
};

// Parses and validates `path`. On error the status message reads
// "<file>:<line>:<col>: <key>: <what is wrong>" (kInvalidArgument), or names the
// file when it cannot be read. Secrets are not resolved here.
Result<Config> LoadConfig(const std::string& path);

// Same, from text already in memory; `path` is used in messages.
Result<Config> ParseConfig(std::string_view text, const std::string& path);

// Reads every secret's value from its env var or file (trailing newline trimmed).
// Errors name the secret's location and reference, never a value.
Status ResolveSecrets(Config& config);

}  // namespace firebreak
