// How one job attempt reaches the bot's code: an HTTP POST (UrlHandler) or a line
// on a long-lived process's stdin (CommandHandler, the NDJSON pool).
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "config/config.h"

namespace firebreak {

struct HandlerResult {
  enum class Kind {
    kOk,        // done
    kFailed,    // retry per backoff (or Retry-After)
    kTimedOut,  // hit the job's timeout; the attempt was killed/cancelled; retry
    kRejected,  // the handler said "don't retry": straight to the DLQ
    kDeferred,  // not run at all (e.g. an action whose breaker is open): run again after
                // retry_after without spending the attempt
  };
  Kind kind = Kind::kOk;
  std::string error;  // for kFailed/kTimedOut/kRejected: short text kept in the attempt record
  std::optional<std::chrono::milliseconds> retry_after;  // handler's Retry-After, if any
  std::string actions_json;  // the answer's "actions" array as JSON text, "" if none
  std::string enqueue_json;  // the answer's "enqueue" array as JSON text, "" if none
  // A batch answer's "results" (worker/batch.h) as JSON text, "" if none. Taken as it
  // is (any JSON type); only batch runs read it, and SplitBatchAnswer checks it.
  std::string results_json;
};

using HandlerCallback = std::function<void(HandlerResult)>;

// One attempt, as a handler gets it.
struct HandlerJob {
  std::string id;
  std::string traceparent;    // the attempt's own span context (W3C), also in the envelope
  std::string envelope_json;  // the DESIGN §4 envelope, one line (no newlines)
};

// Single-threaded: all calls happen on the io_context given at creation, and the
// callback runs there too, exactly once per Run. A handler enforces `timeout`
// itself (kills the process / cancels the request) and then answers kTimedOut.
class Handler {
 public:
  virtual ~Handler() = default;
  virtual void Run(HandlerJob job, std::chrono::milliseconds timeout, HandlerCallback done) = 0;
  // Stops idle processes/connections; attempts still running complete normally.
  virtual void Shutdown() = 0;
  // After Shutdown: true once nothing is left that is exiting on its own (processes
  // still busy with an abandoned attempt don't count), so the owner can wait for a
  // clean exit before destroying the handler, which kills whatever remains.
  virtual bool Drained() const = 0;
};

// For job.handler.command: a pool of up to job.concurrency processes, started on
// demand. For job.handler.url: POSTs over http:// or https:// (UrlHandler).
// `sidecar` is exported to processes as FIREBREAK_SIDECAR.
Result<std::unique_ptr<Handler>> MakeHandler(const JobConfig& job, const std::string& sidecar,
                                             boost::asio::io_context& io);

}  // namespace firebreak
