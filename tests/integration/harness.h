// Test harness for integration tests: temp dirs, free ports, and the real
// `firebreak` binary started and stopped by PID.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cli/http_client.h"
#include "support/redis_server.h"

namespace firebreak::testing {

// A fresh directory under /tmp, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  std::string Write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

std::string FirebreakBin();
// How many times slower than the release build the binary under test may answer, for
// latency bounds (not for correctness): FIREBREAK_TEST_LATENCY_SCALE, which
// scripts/test.sh sets for the ASan/UBSan binary; 1 when unset.
double LatencyScale();
// `text` with every `from` replaced by `to` (for adapting shipped example configs).
std::string ReplaceAll(std::string text, const std::string& from, const std::string& to);
std::string SourceDir();  // the repository root (examples/, bench/)
std::string ReadFile(const std::string& path);
std::vector<std::string> ReadLines(const std::string& path);
// Checks every line of the NDJSON file `path` against schemas/<schema>.schema.json (the
// handler protocol's, which the SDKs' tests check too) with python3-jsonschema: "" when
// all are valid, else the validator's report.
std::string SchemaErrors(const std::string& schema, const std::string& path);
uint16_t FreePort();

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};
// Runs the binary with `args` to completion (bounded by `timeout`).
CommandResult RunFirebreak(const std::vector<std::string>& args,
                           std::chrono::seconds timeout = std::chrono::seconds(60));

// A `firebreak <role> -c config` process; its output goes to log_path.
class FirebreakProcess {
 public:
  FirebreakProcess(std::string role, std::string config_path, std::string log_path, uint16_t port);
  ~FirebreakProcess();  // SIGKILL if still running
  // Starts and waits for /healthz (or, for the worker role, a short settle).
  bool Start(std::chrono::seconds timeout = std::chrono::seconds(20));
  void Kill9();
  // SIGTERM and wait; returns the exit code (or -1 on timeout, after SIGKILL).
  int Terminate(std::chrono::seconds timeout = std::chrono::seconds(40));
  pid_t pid() const { return pid_; }
  std::string Log() const { return ReadFile(log_path_); }

 private:
  std::string role_, config_path_, log_path_;
  uint16_t port_;
  pid_t pid_ = -1;
};

// Polls `condition` every 50 ms until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// Slack v0 signing, done here with OpenSSL directly (not through firebreak's signer).
std::vector<std::pair<std::string, std::string>> SlackHeaders(const std::string& secret,
                                                              const std::string& body,
                                                              int64_t timestamp,
                                                              const std::string& content_type);
std::string Hex(const unsigned char* data, size_t size);  // lower-case
std::string HmacSha256Hex(const std::string& key, const std::string& data);
// Ed25519 from a hex private seed (32 bytes): the public key, and a signature of
// `message`, both hex (Discord signs timestamp + body this way).
std::string Ed25519PublicHex(const std::string& seed_hex);
std::string Ed25519SignHex(const std::string& seed_hex, const std::string& message);
// POSTs `body` to 127.0.0.1:port`path` with `headers` (a platform's signature headers),
// and Content-Type application/json unless they name one.
Result<HttpResponse> PostTo(uint16_t port, const std::string& path, const std::string& body,
                            std::vector<std::pair<std::string, std::string>> headers);
// The same, answering only the status: 0 when there was no answer.
int PostStatus(uint16_t port, const std::string& path, const std::string& body,
               std::vector<std::pair<std::string, std::string>> headers);
// POSTs a JSON `body` to 127.0.0.1:port`path` signed for an hmac source with the
// default header (X-Signature, no prefix, sha256).
Result<HttpResponse> PostHmacSigned(uint16_t port, const std::string& path,
                                    const std::string& secret, const std::string& body);
int64_t NowSeconds();
int64_t NowMs();  // wall clock, epoch milliseconds

// Reads firebreak_jobs_total etc. from a Prometheus text scrape: the sum of every
// sample of `name` whose labels contain all of `label_matchers` (e.g. "outcome=\"timed_out\"").
double MetricValue(const std::string& scrape, const std::string& name,
                   const std::vector<std::string>& label_matchers = {});
// True when the scrape has at least one sample of `name` (MetricValue is 0 for both
// "absent" and "zero").
bool HasMetric(const std::string& scrape, const std::string& name);
// GET /metrics from 127.0.0.1:port ("" when unreachable).
std::string ScrapeMetrics(uint16_t port);
// GET 127.0.0.1:port`path`; the HTTP status, or 0 when there was no answer.
int GetStatus(uint16_t port, const std::string& path);

// Jobs of `job_type` ("" = every type) still in the queue (ready + delayed + in flight),
// read through `firebreak queue stats --json -c config`; -1 when that fails.
int64_t QueuedJobs(const std::string& config_path, const std::string& job_type = "");

// The queue backend a test runs against: "sqlite" (a file in the test's dir) or
// "redis" (a real redis-server, started by Start() and killed with this object).
class QueueBackend {
 public:
  QueueBackend(std::string name, const TempDir& dir, RedisServerOptions redis_options = {});
  // Starts the store when it is a server; always true for sqlite. On failure see Describe().
  bool Start();
  const std::string& name() const { return name_; }
  bool is_redis() const { return name_ == "redis"; }
  // The whole [queue] table for a config: where the data lives, then `extra_keys`
  // (e.g. "durability = \"fsync\"\n"). Call after Start(): Redis picks its port there.
  std::string QueueToml(const std::string& extra_keys = "") const;
  RedisServer& redis() { return *redis_; }  // is_redis() only
  // For failure messages: the backend and, for redis, its log.
  std::string Describe() const;

 private:
  std::string name_;
  std::string sqlite_path_;
  std::unique_ptr<RedisServer> redis_;
};

// Parameters and readable test names for suites that run on every backend:
// INSTANTIATE_TEST_SUITE_P(Backends, T, ::testing::ValuesIn(AllBackends()), BackendName);
std::vector<std::string> AllBackends();
std::string BackendName(const ::testing::TestParamInfo<std::string>& info);

}  // namespace firebreak::testing
