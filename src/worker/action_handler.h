// Runs action jobs (type "action:<integration>", worker/actions.h) through the
// integration's egress policies with the action's Idempotency-Key, so an action retried
// after a crash is applied once by an upstream that honours the key.
//
// Outcomes: 2xx → kOk; 408, 429, 5xx, timeouts and connection errors → kFailed (retried
// with backoff, the upstream's Retry-After winning); other 4xx → kRejected (dead-letter:
// resending will not help); the breaker open, the rate limit or the concurrency cap
// refusing → kDeferred (run again later without spending an attempt: nothing was sent).
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>
#include <set>
#include <string>

#include "config/config.h"
#include "egress/egress.h"
#include "worker/handler.h"

namespace firebreak {

// Single-threaded: every call on the thread running `io`; callbacks are posted there.
class ActionHandler final : public Handler {
 public:
  // `egress` must outlive the handler and have `integration`.
  ActionHandler(const IntegrationConfig& integration, egress::Egress& egress,
                boost::asio::io_context& io);
  ~ActionHandler() override;  // answers running attempts kFailed "handler stopped"

  void Run(HandlerJob job, std::chrono::milliseconds timeout, HandlerCallback done) override;
  void Shutdown() override { shutting_down_ = true; }
  bool Drained() const override { return true; }  // no processes or connections of its own

 private:
  struct Attempt;
  void Finish(const std::shared_ptr<Attempt>& attempt, HandlerResult result);

  const std::string integration_;
  egress::Egress& egress_;
  boost::asio::io_context& io_;
  bool shutting_down_ = false;
  std::set<std::shared_ptr<Attempt>> running_;
};

}  // namespace firebreak
