// The admin API (DESIGN §7, docs/admin-api.md): JSON under /admin/api/v1, on a listener
// of its own (server.admin_listen, loopback 127.0.0.1:8082 by default) or on the ingress
// listener (admin_listen = "ingress"), only when an admin token is configured.
//
// The web console (admin/console.h) is served here too: its page and files under
// /admin/ without a token, its login at POST /admin/login.
//
// Security, in this order, before any routing (so paths cannot be probed):
//   1. a client address with more than 10 failed authentications in 60 s is refused
//      (429 + Retry-After) for the rest of that window, right token or not;
//   2. `Authorization: Bearer <token>` is compared in constant time with every configured
//      token (server.admin_token, named "admin", and [[server.admin_tokens]]); without
//      that header, the console's signed session cookie; neither → 401 (only a wrong
//      token counts as a failure);
//   3. a change made with the cookie needs its CSRF token and a same-origin Origin; else 403;
//   4. the token's scope must cover RequiredScope(method, path); else 403.
// Handlers get the caller (AdminCaller: token name = the audit log's actor).
//
// Endpoints so far (all GET, scope read):
//   /queues            depth per job type and state (list)
//   /queues/{type}     one type's depth, oldest ready job, paused, and its capacity line
//   /capacity          per job type: arrival rate, mean job time, concurrency needed now
//                      (Little's law), configured, utilization (list)
//   /sources           per source: kind, path, counts by outcome, rate, ACK p50/p99,
//                      secret fingerprints (list)
//   /integrations      per integration: breaker, failure rate, limiter, in flight, p50/p99
//   /overview          the above in one answer, against each platform's ACK deadline
// Lists take ?limit=50&cursor= and answer {"items":[...],"next_cursor":..,"total_estimate":N}.
// Unknown paths are 404, other methods 405; the store unreachable is 503. No answer
// carries a secret, a token or a signature.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"
#include "net/http_server.h"
#include "queue/queue.h"

namespace firebreak {

class Metrics;
namespace egress {
class Egress;
}

// A token the API accepts, with its resolved value.
struct AdminToken {
  std::string name;
  std::string value;
  AdminScope scope = AdminScope::kRead;
};

// server.admin_token (as "admin", scope admin) and every [[server.admin_tokens]] entry
// of a config whose secrets are resolved.
std::vector<AdminToken> AdminTokens(const ServerConfig& server);

// Who sent an admin request, as every handler sees it.
struct AdminCaller {
  std::string token_name;  // the actor for the audit log
  AdminScope scope = AdminScope::kRead;
  std::string peer;  // the client's address ("" when unknown)
};

// The one place that says what a request needs: GET/HEAD read; POST/PUT/PATCH operate
// (retry, cancel, pause/resume, replay, cancel an operation), except a purge; DELETE,
// a purge and any other method admin.
AdminScope RequiredScope(boost::beast::http::verb method, std::string_view path);

// What the process has besides the queue; every part is optional.
struct AdminApiParts {
  // Ingress and integration counters and histograms (rates, p50/p99); null: none shown.
  const Metrics* metrics = nullptr;
  // The egress layer when this process runs workers (`run`); null in `ingest`: the
  // integrations then show their config only. Must outlive the API's Stop.
  egress::Egress* egress = nullptr;
  // Wall clock for the failed-auth window, ages and samples; null = the system clock.
  const Clock* clock = nullptr;
};

class AdminApi {
 public:
  // `queue` (and `parts`' pointees) must outlive the API; `config` is read here only
  // (job types' concurrency, sources and integrations, without their secrets: a
  // source's secret is kept as its fingerprint). An empty `tokens` refuses every
  // request.
  AdminApi(const Config& config, Queue& queue, std::vector<AdminToken> tokens,
           AdminApiParts parts = {});
  ~AdminApi();  // Stop()
  AdminApi(const AdminApi&) = delete;
  AdminApi& operator=(const AdminApi&) = delete;

  // True for /admin and every path under /admin/ (the query is ignored): the requests
  // a listener hands to Handle.
  static bool IsAdminPath(std::string_view target);

  // Answers one request under /admin. Runs on the caller's server thread but never
  // blocks it: queue and egress reads run on the API's own threads and are awaited.
  // Never throws. req.peer is the client the failed-auth limit counts.
  boost::asio::awaitable<net::Response> Handle(net::Request& req);

  // Serves the API on a listener of its own (server.admin_listen: "host:port", port 0
  // picks a free one), where every path outside /admin is 404. kInvalidArgument for a
  // bad address, kUnavailable when it cannot be bound.
  Status Listen(const std::string& address, std::chrono::milliseconds read_timeout);
  uint16_t port() const;  // the own listener's port, 0 without one (or after Stop)

  // Stops and closes the own listener, then waits for queue reads in progress. A
  // request still waiting for one when its server stops is dropped with that server.
  // Not thread-safe with port() or Listen(); idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Each job type's `concurrency` in `config` (per worker process), with the action job
// type of every integration (its max_concurrency).
std::map<std::string, int> ConfiguredConcurrency(const Config& config);

// How long a platform waits for a webhook's answer before it counts a failure (and
// retries or disables the hook): Slack and Discord 3 s, Telegram, GitHub and Meta 10 s.
// Other kinds (hmac, presets) get 3 s, the shortest any platform gives, flagged
// `assumed`.
struct AckDeadline {
  std::chrono::milliseconds deadline{3'000};
  bool assumed = false;
};
AckDeadline AckDeadlineOf(const SourceConfig& source);

// First 8 hex digits of SHA-256 of `secret`: tells which secret is configured (does it
// match the platform's?) without showing it.
std::string SecretFingerprint(std::string_view secret);

}  // namespace firebreak
