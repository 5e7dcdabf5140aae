// The admin API's job endpoints (DESIGN §7, issue 15), under /admin/api/v1:
//
//   GET    /jobs?state=&type=&source=&key=&trace_id=&q=&from=&to=   search, newest first
//   GET    /jobs/{id}               envelope, attempts, actions (with their attempts), replays
//   POST   /jobs/{id}/retry         rerun a dead/finished job as a new one, or run a delayed one now
//   POST   /jobs/{id}/cancel        cancel a waiting job
//   GET    /dead?...[&group=fingerprint]   dead jobs, or their groups by error fingerprint
//   POST   /dead/replay             body {"filter":{...},"dry_run":false,"rate_per_s":0}: 202 + operation
//   DELETE /dead                    the same body (or the filter as query parameters): 202 + operation
//   POST   /dead/{id}/replay, DELETE /dead/{id}   one dead job
//   GET    /operations, GET /operations/{id}, POST /operations/{id}/cancel
//   GET    /audit
//   GET    /history?hours=24        kept jobs finished / dead per hour (cached 30 s)
//   POST   /queues/{type}/pause, POST /queues/{type}/resume
//   GET    /events                  Server-Sent Events: queue depth per type as it changes,
//                                   operations' progress, audit entries (see StreamEvents)
//
// Every queue call runs on the API's queue threads; every change is audited with the
// caller's token name as actor.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "admin/bulk_operations.h"
#include "common/clock.h"
#include "net/http_server.h"
#include "queue/queue.h"

namespace firebreak {

class JobRoutes {
 public:
  // `queue` and `pool` must outlive this object.
  JobRoutes(Queue& queue, const Clock& clock, boost::asio::thread_pool& pool);

  // True for the paths (below /admin/api/v1, e.g. "/jobs/X") these routes answer.
  static bool Serves(std::string_view api_path);

  // Answers `req`; `api_path` is its path below /admin/api/v1; `actor` the token's name.
  boost::asio::awaitable<net::Response> Handle(net::Request& req, std::string api_path,
                                               std::string actor);

 private:
  boost::asio::awaitable<net::Response> Jobs(net::Request& req);
  boost::asio::awaitable<net::Response> Job(net::Request& req, std::string id);
  boost::asio::awaitable<net::Response> Dead(net::Request& req);
  boost::asio::awaitable<net::Response> StartBulk(net::Request& req, BulkAction action,
                                                  std::string actor);
  // The /events stream: every second, what changed since the last look.
  boost::asio::awaitable<void> StreamEvents(net::EventStream& out);
  boost::asio::awaitable<net::Response> History(net::Request& req);

  Queue& queue_;
  const Clock& clock_;
  boost::asio::thread_pool& pool_;
  // The last /history answer per `hours`: on SQLite it counts every kept job's index
  // entry (~0.2 s per million), too much for every dashboard refresh.
  struct CachedHistory {
    int64_t at_ms = 0;
    std::string body;
  };
  std::mutex history_mu_;
  std::map<int, CachedHistory> history_;  // guarded by history_mu_
  // The last fingerprint groups per filter: grouping reads every dead job it counts
  // (~75 ms for 10,000). Reused for 10 s while the store's dead count is unchanged.
  struct CachedGroups {
    int64_t at_ms = 0;
    int64_t dead_total = 0;
    std::string body;
  };
  std::mutex groups_mu_;
  std::map<std::string, CachedGroups> groups_;  // guarded by groups_mu_
  Operations operations_;
  std::atomic<int> streams_{0};  // open /events streams
};

}  // namespace firebreak
