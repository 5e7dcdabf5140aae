// The admin API (DESIGN §7): JSON under /admin/api/v1, on the ingress listener or on
// its own (server.admin_listen), only when server.admin_token is configured. Every
// request needs `Authorization: Bearer <admin_token>` (compared in constant time);
// anything else under /admin is 401 before any routing, so paths cannot be probed.
//
// Endpoints so far:
//   GET /admin/api/v1/queues    depth per job type and state
//   GET /admin/api/v1/capacity  per job type: arrival rate, mean job time, concurrency
//                               needed now (Little's law), configured, utilization
// Lists take ?limit=50&cursor= and answer {"items":[...],"next_cursor":..,"total_estimate":N}.
// Unknown paths are 404, other methods 405; the store unreachable is 503.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "config/config.h"
#include "net/http_server.h"
#include "queue/queue.h"

namespace firebreak {

class AdminApi {
 public:
  // `queue` must outlive the API; `config` is read here only (its job types'
  // concurrency). `token` is server.admin_token's resolved value; an empty one refuses
  // every request.
  AdminApi(const Config& config, Queue& queue, std::string token);
  ~AdminApi();  // Stop()
  AdminApi(const AdminApi&) = delete;
  AdminApi& operator=(const AdminApi&) = delete;

  // True for /admin and every path under /admin/ (the query is ignored): the requests
  // a listener hands to Handle.
  static bool IsAdminPath(std::string_view target);

  // Answers one request under /admin. Runs on the caller's server thread but never
  // blocks it: queue reads run on the API's own threads and are awaited. Never throws.
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

}  // namespace firebreak
