// The HTTP handler behind `handler = { url = "http://..." }` (DESIGN §5): each attempt
// POSTs the envelope; the status code says done, retry or give up.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"
#include "worker/handler.h"
#include "common/http_util.h"

namespace firebreak {

// Single-threaded: every call must come from the thread running `io`; completion
// callbacks are posted to `io`, exactly once per Run, never inline.
//
// HTTP/1.1 over plain TCP with keep-alive: finished connections wait in a small idle
// pool and are reused, newest first. A pooled connection the server has closed
// meanwhile is detected by the failed exchange (nothing of a response received), and
// the request is sent once more on a new connection; a new connection is never
// retried. The whole attempt, connect included, is bounded by its timeout.
//
// Outcomes: 2xx → kOk (a {"actions":[...]} body fills actions_json); 408, 429, 5xx →
// kFailed with Retry-After (delta-seconds or HTTP-date); other 4xx → kRejected; other
// statuses, connection and protocol errors, bodies over 1 MiB → kFailed; the timeout
// → kTimedOut (the connection is closed).
class UrlHandler final : public Handler {
 public:
  static constexpr size_t kMaxResponseBody = 1024 * 1024;

  // Parses `job.handler.url` (http:// only; https is kInvalidArgument "https handler
  // urls are not supported in this build yet"). `clock` turns HTTP-date Retry-After
  // values into delays and must outlive the handler.
  static Result<std::unique_ptr<UrlHandler>> Create(const JobConfig& job,
                                                    boost::asio::io_context& io,
                                                    const Clock& clock = SystemClock::Instance());

  // Closes every connection; attempts still running are answered kFailed "handler
  // stopped" (posted to `io`).
  ~UrlHandler() override;

  UrlHandler(const UrlHandler&) = delete;
  UrlHandler& operator=(const UrlHandler&) = delete;

  void Run(HandlerJob job, std::chrono::milliseconds timeout, HandlerCallback done) override;

  // Closes idle connections; running attempts finish, then close their connection.
  // Runs after Shutdown are answered kFailed "handler is shut down".
  void Shutdown() override;
  bool Drained() const override { return idle_.empty(); }

  size_t IdleConnections() const { return idle_.size(); }

 private:
  struct Connection;
  struct Attempt;

  UrlHandler(const JobConfig& job, HttpUrl url, boost::asio::io_context& io, const Clock& clock);

  void Connect(const std::shared_ptr<Attempt>& attempt);
  void OnConnected(const std::shared_ptr<Attempt>& attempt, const boost::system::error_code& ec);
  void Send(const std::shared_ptr<Attempt>& attempt);
  // A failed exchange: retried once on a new connection if the pooled one was stale.
  void OnExchangeError(const std::shared_ptr<Attempt>& attempt, const char* step,
                       const boost::system::error_code& ec);
  void OnResponse(const std::shared_ptr<Attempt>& attempt);
  void OnTimeout(const std::shared_ptr<Attempt>& attempt);
  void Finish(const std::shared_ptr<Attempt>& attempt, HandlerResult result);
  void Answer(HandlerCallback done, HandlerResult result);

  boost::asio::io_context& io_;
  const Clock& clock_;
  const std::string job_type_;
  const HttpUrl url_;
  const size_t max_idle_;
  bool shutting_down_ = false;
  std::vector<std::shared_ptr<Connection>> idle_;  // most recently used last
  std::unordered_set<std::shared_ptr<Attempt>> running_;
};

}  // namespace firebreak
