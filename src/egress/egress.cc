#include "egress/egress.h"

#include <boost/asio/post.hpp>
#include <future>
#include <memory>

namespace firebreak::egress {

Egress::Egress(const Config& config, Metrics& metrics) : work_(boost::asio::make_work_guard(io_)) {
  long connections = 0;
  for (const IntegrationConfig& integration : config.integrations) {
    connections += integration.max_concurrency;
  }
  client_ = std::make_unique<HttpClient>(io_, std::max(16L, connections));
  bool shared = false;
  for (const IntegrationConfig& integration : config.integrations) {
    shared = shared || integration.limits == IntegrationConfig::Limits::kShared;
  }
  if (shared) {
    // A store call that takes longer than this fails, and limits fall back to per
    // process: a hung store must not hold calls up for long. Not shorter than a second:
    // a busy host (a deploy, a compile) can stall a healthy store's answer for hundreds
    // of milliseconds, and every fallback lets the upstream see N times the limits.
    limits_ = std::make_unique<LimitRunner>(MakeLimitStore(
        config.queue, std::min<std::chrono::milliseconds>(config.queue.timeout,
                                                          std::chrono::milliseconds(1'000))));
  }
  for (const IntegrationConfig& integration : config.integrations) {
    integrations_.emplace(integration.name,
                          std::make_unique<Integration>(integration, io_, *client_,
                                                        &metrics.RegisterIntegration(integration.name),
                                                        limits_.get()));
  }
}

Egress::~Egress() { Stop(); }

void Egress::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { io_.run(); });
}

void Egress::Call(const std::string& name, EgressCall call, Integration::Callback done) {
  boost::asio::post(io_, [this, name, call = std::move(call), done = std::move(done)]() mutable {
    auto it = integrations_.find(name);
    if (it == integrations_.end()) {
      EgressResult result;
      result.kind = EgressResult::Kind::kConnectionError;
      result.error = "no integration named \"" + name + "\"";
      done(std::move(result));
      return;
    }
    it->second->Call(std::move(call), std::move(done));
  });
}

std::optional<std::vector<std::pair<std::string, IntegrationSnapshot>>> Egress::Snapshots(
    std::chrono::milliseconds timeout) {
  using List = std::vector<std::pair<std::string, IntegrationSnapshot>>;
  if (!thread_.joinable()) return std::nullopt;
  // Shared with the posted read: when the wait times out (or Stop drops the post), the
  // read must not write into this frame.
  auto answer = std::make_shared<std::promise<List>>();
  std::future<List> future = answer->get_future();
  boost::asio::post(io_, [this, answer] {
    List out;
    for (auto& [name, integration] : integrations_) out.emplace_back(name, integration->Snapshot());
    answer->set_value(std::move(out));
  });
  if (future.wait_for(timeout) != std::future_status::ready) return std::nullopt;
  return future.get();
}

void Egress::Stop() {
  if (!thread_.joinable()) return;
  std::promise<void> stopped;
  boost::asio::post(io_, [&] {
    for (auto& [name, integration] : integrations_) integration->Shutdown();
    stopped.set_value();
  });
  stopped.get_future().wait();
  // The kShutdown answers were posted before this: they run, then the loop stops (idle
  // pooled connections and timers would otherwise keep it alive).
  boost::asio::post(io_, [this] { io_.stop(); });
  thread_.join();
  // The leases of the calls just answered are released before the process goes (the
  // runner runs what is queued; answers to the stopped loop are dropped).
  if (limits_) limits_->Stop();
  work_.reset();
  integrations_.clear();
  client_.reset();
}

}  // namespace firebreak::egress
