#include "worker/action_handler.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "common/units.h"
#include "worker/actions.h"

namespace firebreak {
namespace {

constexpr size_t kMaxErrorBody = 300;

std::string Snippet(const std::string& body) {
  if (body.size() <= kMaxErrorBody) return body;
  size_t cut = kMaxErrorBody;
  while (cut > 0 && (static_cast<unsigned char>(body[cut]) & 0xC0) == 0x80) --cut;
  return body.substr(0, cut) + "...";
}

HandlerResult FromEgress(egress::EgressResult result) {
  using Kind = egress::EgressResult::Kind;
  HandlerResult out;
  out.retry_after = result.retry_after;
  switch (result.kind) {
    case Kind::kResponse: {
      const int status = result.status;
      if (status >= 200 && status < 300) return out;
      out.error = "HTTP " + std::to_string(status) +
                  (result.body.empty() ? "" : ": " + Snippet(result.body));
      const bool retryable = status == 408 || status == 429 || status >= 500 || status < 200 ||
                             (status >= 300 && status < 400);
      out.kind = retryable ? HandlerResult::Kind::kFailed : HandlerResult::Kind::kRejected;
      if (retryable && result.opened_breaker) out.kind = HandlerResult::Kind::kDeferred;
      return out;
    }
    case Kind::kRejectedOpen:
    case Kind::kRateLimited:
    case Kind::kRejectedFull:
      out.kind = HandlerResult::Kind::kDeferred;
      out.error = std::string(egress::EgressResultKindName(result.kind)) + ": " + result.error;
      return out;
    case Kind::kTimeout:
    case Kind::kConnectionError:
    case Kind::kShutdown:
      out.kind = result.opened_breaker ? HandlerResult::Kind::kDeferred
                                       : HandlerResult::Kind::kFailed;
      out.error = result.error;
      return out;
  }
  return out;
}

}  // namespace

struct ActionHandler::Attempt {
  explicit Attempt(boost::asio::io_context& io) : timer(io) {}
  HandlerCallback done;
  boost::asio::steady_timer timer;
  bool finished = false;
};

ActionHandler::ActionHandler(const IntegrationConfig& integration, egress::Egress& egress,
                             boost::asio::io_context& io)
    : integration_(integration.name), egress_(egress), io_(io) {}

ActionHandler::~ActionHandler() {
  for (const std::shared_ptr<Attempt>& attempt : running_) {
    attempt->finished = true;
    attempt->timer.cancel();
    boost::asio::post(io_, [done = std::move(attempt->done)] {
      done({HandlerResult::Kind::kFailed, "handler stopped", {}, {}, {}, {}});
    });
  }
}

void ActionHandler::Finish(const std::shared_ptr<Attempt>& attempt, HandlerResult result) {
  if (attempt->finished) return;
  attempt->finished = true;
  attempt->timer.cancel();
  running_.erase(attempt);
  boost::asio::post(io_, [done = std::move(attempt->done), result = std::move(result)]() mutable {
    done(std::move(result));
  });
}

void ActionHandler::Run(HandlerJob job, std::chrono::milliseconds timeout, HandlerCallback done) {
  auto attempt = std::make_shared<Attempt>(io_);
  attempt->done = std::move(done);
  running_.insert(attempt);
  if (shutting_down_) {
    Finish(attempt, {HandlerResult::Kind::kFailed, "handler is shut down", {}, {}, {}, {}});
    return;
  }
  nlohmann::json envelope = nlohmann::json::parse(job.envelope_json, nullptr, false);
  Result<Action> action =
      envelope.is_object() && envelope.contains("payload")
          ? ParseActionPayload(envelope["payload"].dump())
          : Result<Action>(InvalidArgument("not an action envelope"));
  if (!action.ok()) {
    Finish(attempt, {HandlerResult::Kind::kRejected, action.status().message(), {}, {}, {}, {}});
    return;
  }
  egress::EgressCall call;
  call.method = action->method;
  call.target = action->path;
  call.headers = std::move(action->headers);
  if (!action->content_type.empty()) call.headers.emplace_back("Content-Type", action->content_type);
  call.body = std::move(action->body);
  call.idempotency_key = action->idempotency_key;
  call.job_id = std::move(job.id);
  if (IsValidTraceparent(job.traceparent)) call.traceparent = std::move(job.traceparent);

  // The call is bounded by the integration's own limits; the job's timeout (which covers
  // them) is the backstop.
  attempt->timer.expires_after(timeout);
  std::weak_ptr<Attempt> weak = attempt;
  attempt->timer.async_wait([this, weak, timeout](const boost::system::error_code& ec) {
    std::shared_ptr<Attempt> running = weak.lock();
    if (ec || !running || running->finished) return;
    std::string error = "timed out after " + FormatDuration(timeout);
    Finish(running, {HandlerResult::Kind::kTimedOut, std::move(error), {}, {}, {}, {}});
  });
  boost::asio::io_context& io = io_;
  egress_.Call(integration_, std::move(call), [this, weak, &io](egress::EgressResult result) {
    // On the egress thread: hand the answer to the worker's thread.
    boost::asio::post(io, [this, weak, result = std::move(result)]() mutable {
      std::shared_ptr<Attempt> running = weak.lock();
      if (!running || running->finished) return;
      Finish(running, FromEgress(std::move(result)));
    });
  });
}

}  // namespace firebreak
