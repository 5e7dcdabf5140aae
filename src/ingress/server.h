// The ingress HTTP server (Boost.Beast): routes webhook paths to their Source,
// stores each accepted event through the Queue, and answers only after the store
// committed it. Also serves /healthz, /readyz and /metrics.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "config/config.h"
#include "ingress/source.h"
#include "queue/queue.h"
#include "telemetry/metrics.h"

namespace firebreak {

class AdminApi;

class IngressServer {
 public:
  // `queue` and `metrics` must outlive the server. Sources must have resolved secrets.
  IngressServer(const Config& config, std::vector<std::unique_ptr<Source>> sources, Queue& queue,
                Metrics& metrics, Clock& clock);
  ~IngressServer();
  IngressServer(const IngressServer&) = delete;
  IngressServer& operator=(const IngressServer&) = delete;

  // Serves /admin and everything under it with `admin` (which must outlive the server).
  // Call before Start(); without it those paths are 404.
  void SetAdmin(AdminApi* admin);
  // Binds server.listen and starts server.threads I/O threads. kUnavailable if the
  // address cannot be bound.
  Status Start();
  uint16_t port() const { return port_; }
  // Closes the listener: no new connections; open ones finish their current request
  // and are closed. Safe from any thread.
  void StopAccepting();
  // Waits up to `grace` for requests already read to be answered (idle keep-alive
  // connections are just closed), then stops the I/O threads.
  void Stop(std::chrono::milliseconds grace);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace firebreak
