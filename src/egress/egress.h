// Every [[integrations]] entry of the config, on one egress thread: an io_context that
// runs the curl multi client and each Integration's policies, so calls from the sidecar
// and from actions share the limits of their upstream and never block a caller's thread.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config/config.h"
#include "egress/http_client.h"
#include "egress/integration.h"
#include "egress/shared/limit_runner.h"
#include "telemetry/metrics.h"

namespace firebreak::egress {

// Thread-safe after Start: Call and Snapshots may be used from any thread.
class Egress {
 public:
  // `config` (with resolved secrets) and `metrics` must outlive the object.
  Egress(const Config& config, Metrics& metrics);
  ~Egress();  // Stop()
  Egress(const Egress&) = delete;
  Egress& operator=(const Egress&) = delete;

  void Start();
  bool Has(const std::string& name) const { return integrations_.count(name) > 0; }

  // Runs `call` through integration `name`'s policies; `done` runs on the egress thread
  // exactly once (post to your own executor from there). An unknown name is a bug of the
  // caller (check Has first) and is answered kConnectionError.
  void Call(const std::string& name, EgressCall call, Integration::Callback done);

  // Breaker state, failure rate, limiter, in flight and queued calls per integration,
  // sorted by name. Blocks until the egress thread answers, at most `timeout`; nullopt
  // when it did not (a busy or stopped egress thread), never a partial list.
  std::optional<std::vector<std::pair<std::string, IntegrationSnapshot>>> Snapshots(
      std::chrono::milliseconds timeout = std::chrono::seconds(2));

  // Answers every waiting and running call with kShutdown and joins the thread.
  // Idempotent.
  void Stop();

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  // The shared-limits store's thread; null when every integration counts per process.
  std::unique_ptr<LimitRunner> limits_;
  std::unique_ptr<HttpClient> client_;
  std::map<std::string, std::unique_ptr<Integration>> integrations_;  // fixed after construction
  std::thread thread_;
};

}  // namespace firebreak::egress
