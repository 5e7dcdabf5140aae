// The HTTP(S) handler behind `handler = { url = "https://...", ca_file = "..." }`
// (DESIGN §5): each attempt POSTs the envelope through an egress::HttpClient (libcurl
// driven by Asio); the status code says done, retry or give up.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"
#include "egress/http_client.h"
#include "worker/handler.h"

namespace firebreak {

// Single-threaded: every call must come from the thread running `io`; completion
// callbacks are posted to `io`, exactly once per Run, never inline.
//
// http:// and https://. TLS always verifies the peer's certificate chain and host name,
// against the system CA store or, with `ca_file`, against that file's CAs only. The
// client keeps finished connections per host (up to `concurrency`, at most 16) and
// reuses them; a pooled connection the server has closed meanwhile is detected, and a
// request that got nothing back on one is sent once more on a new connection (curl's
// rule); a new connection is never retried. Over https, HTTP/2 is used when the server
// offers it (ALPN), so concurrent attempts may share one connection. The whole attempt,
// connect and TLS handshake included, is bounded by its timeout.
//
// Outcomes: 2xx → kOk (a body's "actions", "enqueue" and a batch's "results" fill
// actions_json, enqueue_json and results_json); 408, 429, 5xx →
// kFailed with Retry-After (delta-seconds or HTTP-date); other 4xx → kRejected; other
// statuses (1xx, 3xx: redirects are not followed), connection, TLS and protocol errors,
// bodies over 1 MiB → kFailed; the timeout → kTimedOut (the transfer is aborted and its
// connection closed).
class UrlHandler final : public Handler {
 public:
  static constexpr size_t kMaxResponseBody = 1024 * 1024;

  // Checks `job.handler.url` (http:// or https://, a host, no user info or fragment)
  // and `job.handler.ca_file` (https only; a readable PEM file with a certificate,
  // read here so that `firebreak check` finds a wrong path): kInvalidArgument naming
  // what is wrong. `clock` turns HTTP-date Retry-After values into delays and must
  // outlive the handler.
  static Result<std::unique_ptr<UrlHandler>> Create(const JobConfig& job,
                                                    boost::asio::io_context& io,
                                                    const Clock& clock = SystemClock::Instance());

  // Aborts running transfers (their connections close) and answers them kFailed
  // "handler stopped" (posted to `io`); closes pooled connections.
  ~UrlHandler() override;

  UrlHandler(const UrlHandler&) = delete;
  UrlHandler& operator=(const UrlHandler&) = delete;

  void Run(HandlerJob job, std::chrono::milliseconds timeout, HandlerCallback done) override;

  // Closes pooled connections: at once when nothing runs, else when the last running
  // attempt has finished (curl cannot close its idle connections alone). Runs after
  // Shutdown are answered kFailed "handler is shut down".
  void Shutdown() override;
  // True once Shutdown ran: nothing of this handler winds down on its own. Running
  // transfers are attempts the worker has given up on; the destructor aborts them.
  bool Drained() const override { return shutting_down_; }

  size_t RunningAttempts() const { return running_.size(); }

 private:
  struct Attempt {
    HandlerCallback done;
    std::chrono::milliseconds timeout{0};
  };

  UrlHandler(const JobConfig& job, boost::asio::io_context& io, const Clock& clock);

  void OnResponse(uint64_t transfer, egress::ClientResponse response);
  HandlerResult ResultOf(const egress::ClientResponse& response,
                         std::chrono::milliseconds timeout) const;
  void Answer(HandlerCallback done, HandlerResult result);
  // After Shutdown, once the last running attempt has ended: drops the client, which
  // closes its connections. Posted: it is reached from inside the client's callback.
  void ReleaseClientWhenIdle();

  boost::asio::io_context& io_;
  const Clock& clock_;
  const std::string url_;
  const std::string ca_file_;  // "" = the system CA store
  bool shutting_down_ = false;
  uint64_t next_attempt_ = 1;
  std::map<uint64_t, Attempt> running_;  // by attempt number
  // Null after Shutdown once nothing runs. Its callbacks point at this handler: it never
  // calls them once destroyed, and the destructor destroys it first.
  std::unique_ptr<egress::HttpClient> client_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // expires with the handler
};

}  // namespace firebreak
