#include "ingress/server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <mutex>
#include <set>
#include <string>

#include "common/crypto.h"
#include "common/json_string.h"
#include "ingress/json_body.h"
#include "telemetry/log.h"

namespace firebreak {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

namespace {

// Adapts Queue::Enqueue's callback (run on a queue thread) to an awaitable that
// resumes on the session's executor.
template <typename Token>
auto AsyncEnqueue(Queue& queue, NewJob job, Token&& token) {
  return asio::async_initiate<Token, void(EnqueueResult)>(
      [&queue](auto handler, NewJob job_to_store) {
        auto executor = asio::get_associated_executor(handler);
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        queue.Enqueue(std::move(job_to_store), [shared, executor](EnqueueResult result) {
          asio::post(executor, [shared, result = std::move(result)]() mutable {
            (*shared)(std::move(result));
          });
        });
      },
      token, std::move(job));
}

class BeastRequestView final : public IngressRequest {
 public:
  explicit BeastRequestView(const Request& req) : req_(req) {}
  std::string_view Method() const override { return std::string_view(req_.method_string()); }
  std::string_view Target() const override { return std::string_view(req_.target()); }
  std::string_view Header(std::string_view name) const override {
    auto it = req_.find(name);
    return it == req_.end() ? std::string_view() : std::string_view(it->value());
  }
  std::string_view Body() const override { return req_.body(); }

 private:
  const Request& req_;
};

}  // namespace

struct IngressServer::Impl {
  Impl(const Config& cfg, std::vector<std::unique_ptr<Source>> srcs, Queue& q, Metrics& m, Clock& c)
      : config(cfg),
        sources(std::move(srcs)),
        queue(q),
        metrics(m),
        clock(c),
        io(ThreadCount(cfg)),
        acceptor(io) {
    for (auto& source : sources) {
      Route route;
      route.source = source.get();
      route.metrics = &metrics.RegisterSource(source->config().name);
      const JobConfig* job = config.FindJob(source->config().job);
      route.max_attempts = job ? job->max_attempts : 5;
      route.ordering = job ? job->ordering : "";
      routes.emplace(source->config().path, route);
    }
  }

  static int ThreadCount(const Config& cfg) {
    int n = cfg.server.threads;
    if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    return n;
  }

  struct Route {
    const Source* source = nullptr;
    SourceMetrics* metrics = nullptr;
    int max_attempts = 5;
    std::string ordering;  // JSON pointer of the job type's FIFO key, "" = none
  };

  static std::string_view PathOf(std::string_view target) {
    return target.substr(0, target.find('?'));
  }
  // The webhook route of a request target (query ignored), or nullptr.
  const Route* FindRoute(std::string_view target) const;
  // 503 with Retry-After: the platform retries later and nothing is lost.
  Response ServiceUnavailable(const Request& req, std::string_view error);
  asio::awaitable<void> Accept();
  asio::awaitable<void> Session(tcp::socket socket);
  asio::awaitable<Response> Handle(Request& req);
  asio::awaitable<Response> HandleWebhook(Request& req, const Route& route);
  // Stores one job of a request; counts and logs its outcome.
  asio::awaitable<EnqueueResult> StoreJob(const Route& route, SourceJob spec,
                                          const std::string& traceparent);
  Response Simple(const Request& req, http::status status, std::string body,
                  std::string_view content_type = "application/json");
  Response Metrics(const Request& req);

  const Config& config;
  std::vector<std::unique_ptr<Source>> sources;
  std::map<std::string, Route, std::less<>> routes;
  Queue& queue;
  firebreak::Metrics& metrics;
  Clock& clock;

  asio::io_context io;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::atomic<bool> stopping{false};
  // Requests read but not yet answered: shutdown waits for these, not for idle
  // keep-alive connections.
  std::atomic<int> requests_in_progress{0};
  std::atomic<int> open_connections{0};

  std::mutex depth_mu;  // guards last_depth_refresh_ms (scrapes may run concurrently)
  int64_t last_depth_refresh_ms = 0;
  std::set<std::string> depth_types_seen;  // guarded by depth_mu
};

asio::awaitable<void> IngressServer::Impl::Accept() {
  asio::steady_timer pause(acceptor.get_executor());
  int64_t last_refusal_log_ms = 0;
  while (!stopping) {
    auto [ec, socket] = co_await acceptor.async_accept(kUseTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping) break;
      log::Warn("accept failed", {{"error", ec.message()}});
      // Out of descriptors (EMFILE/ENFILE) fails every accept at once: pause instead of
      // spinning, so sessions can finish and free some.
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(kUseTuple);
      continue;
    }
    if (open_connections.load() >= config.server.max_connections) {
      // A flood of idle or half-open connections must not take the process's descriptors
      // (and memory) from everyone: past the limit, new ones are closed at once; the
      // held ones time out after read_timeout.
      int64_t now = clock.NowMs();
      if (now - last_refusal_log_ms >= 1000) {
        last_refusal_log_ms = now;
        log::Warn("connection refused: server.max_connections reached",
                  {{"max_connections", config.server.max_connections}});
      }
      socket.close(ec);
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    ++open_connections;
    asio::co_spawn(acceptor.get_executor(), Session(std::move(socket)),
                   [this](std::exception_ptr e) {
                     --open_connections;
                     if (!e) return;
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       log::Error("session failed", {{"error", ex.what()}});
                     }
                   });
  }
}

asio::awaitable<void> IngressServer::Impl::Session(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(config.server.max_body);
    parser.header_limit(16 * 1024);
    // read_timeout bounds the whole request, and an idle keep-alive connection too.
    stream.expires_after(config.server.read_timeout);
    auto [ec, bytes] = co_await http::async_read(stream, buffer, parser, kUseTuple);
    (void)bytes;
    if (ec) {
      Response res;
      if (ec == http::error::body_limit) {
        res = Simple(parser.get(), http::status::payload_too_large, ErrorJson("body too large"));
        if (const Route* route = FindRoute(parser.get().target())) {
          route->metrics->too_large->Increment();
        }
      } else if (ec == http::error::header_limit) {
        res = Simple(parser.get(), http::status::request_header_fields_too_large,
                     ErrorJson("headers too large"));
      } else if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
                 ec != http::error::end_of_stream && ec != http::error::partial_message) {
        res = Simple(parser.get(), http::status::bad_request, ErrorJson("malformed request"));
      } else {
        break;  // closed, reset or timed out: nothing to answer
      }
      res.keep_alive(false);
      stream.expires_after(std::chrono::seconds(5));
      co_await http::async_write(stream, res, kUseTuple);
      break;
    }
    Request& req = parser.get();
    ++requests_in_progress;
    Response res = co_await Handle(req);
    bool keep_alive = req.keep_alive() && !stopping;
    res.keep_alive(keep_alive);  // Simple() already set the length
    stream.expires_after(config.server.read_timeout);
    auto [wec, wbytes] = co_await http::async_write(stream, res, kUseTuple);
    (void)wbytes;
    --requests_in_progress;
    if (wec || !keep_alive) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

Response IngressServer::Impl::Simple(const Request& req, http::status status, std::string body,
                                     std::string_view content_type) {
  Response res{status, req.version()};
  res.set(http::field::server, "firebreak");
  if (!body.empty()) res.set(http::field::content_type, content_type);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

const IngressServer::Impl::Route* IngressServer::Impl::FindRoute(std::string_view target) const {
  auto it = routes.find(PathOf(target));
  return it == routes.end() ? nullptr : &it->second;
}

Response IngressServer::Impl::ServiceUnavailable(const Request& req, std::string_view error) {
  Response res = Simple(req, http::status::service_unavailable, ErrorJson(error));
  res.set(http::field::retry_after, "5");
  return res;
}

asio::awaitable<Response> IngressServer::Impl::Handle(Request& req) {
  if (const Route* route = FindRoute(req.target())) co_return co_await HandleWebhook(req, *route);
  std::string_view path = PathOf(req.target());
  if (req.method() == http::verb::get || req.method() == http::verb::head) {
    if (path == "/healthz") co_return Simple(req, http::status::ok, "{\"ok\":true}");
    if (path == "/readyz") {
      Status st = queue.Ping();
      if (st.ok()) co_return Simple(req, http::status::ok, "{\"ok\":true}");
      co_return Simple(req, http::status::service_unavailable, ErrorJson("queue unreachable"));
    }
    if (path == "/metrics") co_return Metrics(req);
  }
  co_return Simple(req, http::status::not_found, ErrorJson("not found"));
}

Response IngressServer::Impl::Metrics(const Request& req) {
  {
    // Depth is read from the store at most once a second, however often we are scraped.
    std::lock_guard lock(depth_mu);
    int64_t now = clock.NowMs();
    if (now - last_depth_refresh_ms >= 1000) {
      last_depth_refresh_ms = now;
      metrics.SetDurabilityDegraded(!queue.DurabilityShortfall().empty());
      auto stats = queue.Stats();
      if (stats.ok()) {
        // Stats lists only types that still have jobs: a type seen before and missing
        // now has drained, and its gauges must say 0 rather than keep the last value.
        std::set<std::string> drained = depth_types_seen;
        for (const TypeDepth& d : *stats) {
          drained.erase(d.type);
          depth_types_seen.insert(d.type);
          metrics.SetQueueDepth(d.type, "ready", static_cast<double>(d.ready));
          metrics.SetQueueDepth(d.type, "delayed", static_cast<double>(d.delayed));
          metrics.SetQueueDepth(d.type, "in_flight", static_cast<double>(d.in_flight));
          metrics.SetQueueDepth(d.type, "dead", static_cast<double>(d.dead));
        }
        for (const std::string& type : drained) {
          for (const char* state : {"ready", "delayed", "in_flight", "dead"}) {
            metrics.SetQueueDepth(type, state, 0);
          }
        }
      }
    }
  }
  return Simple(req, http::status::ok, metrics.Serialize(), "text/plain; version=0.0.4");
}

asio::awaitable<Response> IngressServer::Impl::HandleWebhook(Request& req, const Route& route) {
  auto started = std::chrono::steady_clock::now();
  const SourceConfig& source = route.source->config();
  SourceMetrics& m = *route.metrics;
  auto observe = [&] {
    m.duration->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  };

  SourceDecision decision = route.source->Handle(BeastRequestView(req));
  if (decision.kind == SourceDecision::Kind::kRespond) {
    if (decision.status == 401) {
      m.unauthorized->Increment();
      log::Warn("webhook rejected",
                {{"source", source.name}, {"status", decision.status}, {"error", decision.error}});
    } else if (decision.status >= 400) {
      m.bad_request->Increment();
      log::Info("webhook rejected",
                {{"source", source.name}, {"status", decision.status}, {"error", decision.error}});
    }
    observe();
    co_return Simple(req, static_cast<http::status>(decision.status), std::move(decision.body),
                     decision.content_type);
  }

  std::string traceparent;
  auto tp = req.find("traceparent");
  if (tp != req.end() && IsValidTraceparent(tp->value())) {
    traceparent = std::string(tp->value());
  } else {
    traceparent = NewTraceparent();
  }

  std::vector<SourceJob> jobs = std::move(decision.batch);
  const bool batched = !jobs.empty();
  if (!batched) {
    jobs.push_back({std::move(decision.dedupe_keys), std::move(decision.payload_json),
                    std::move(decision.headers_json)});
  }
  EnqueueResult result;
  int duplicates = 0;
  for (SourceJob& spec : jobs) {
    result = co_await StoreJob(route, std::move(spec), traceparent);
    if (!result.status.ok()) {
      observe();
      co_return ServiceUnavailable(req, "store unavailable");
    }
    if (result.outcome == EnqueueOutcome::kOverloaded) {
      observe();
      co_return ServiceUnavailable(req, "queue full");
    }
    if (result.outcome == EnqueueOutcome::kDuplicate) ++duplicates;
  }
  observe();
  if (decision.empty_body_on_success) co_return Simple(req, http::status::ok, "");
  if (!decision.body.empty()) {
    co_return Simple(req, http::status::ok, std::move(decision.body), decision.content_type);
  }
  if (batched) {
    co_return Simple(req, http::status::ok,
                     "{\"ok\":true,\"jobs\":" + std::to_string(jobs.size()) +
                         ",\"duplicates\":" + std::to_string(duplicates) + "}");
  }
  const bool duplicate = result.outcome == EnqueueOutcome::kDuplicate;
  co_return Simple(
      req, http::status::ok,
      "{\"ok\":true,\"job\":\"" + result.job_id + (duplicate ? "\",\"duplicate\":true}" : "\"}"));
}

asio::awaitable<EnqueueResult> IngressServer::Impl::StoreJob(const Route& route, SourceJob spec,
                                                             const std::string& traceparent) {
  const SourceConfig& source = route.source->config();
  SourceMetrics& m = *route.metrics;
  NewJob job;
  int64_t now = clock.NowMs();
  job.id = NewJobId(now);
  job.type = source.job;
  job.source = source.name;
  job.dedupe_keys = std::move(spec.dedupe_keys);
  job.payload_json = std::move(spec.payload_json);
  job.headers_json = std::move(spec.headers_json);
  job.traceparent = traceparent;
  job.max_attempts = route.max_attempts;
  if (!route.ordering.empty()) {
    // A payload without the key is simply unordered.
    auto payload = ParseJsonBody(job.payload_json);
    if (payload.ok()) {
      auto key = payload->KeyTextAt(route.ordering);
      if (key.ok()) job.ordering_key = std::move(key).value();
    }
  }
  job.enqueued_at_ms = now;
  job.run_at_ms = now;
  std::string dedupe_key = job.dedupe_keys.empty() ? std::string() : job.dedupe_keys.front();
  // Only the debug line below needs it: no copy per request otherwise.
  std::string trace_id = log::Enabled(log::Level::kDebug) ? TraceIdOf(job.traceparent) : "";

  EnqueueResult result = co_await AsyncEnqueue(queue, std::move(job), asio::use_awaitable);
  if (!result.status.ok()) {
    m.overloaded->Increment();
    log::Error(
        "webhook not stored: store unavailable",
        {{"source", source.name}, {"dedupe_key", dedupe_key}, {"error", result.status.ToString()}});
    co_return result;
  }
  switch (result.outcome) {
    case EnqueueOutcome::kAccepted:
      m.accepted->Increment();
      if (log::Enabled(log::Level::kDebug)) {
        log::Debug("webhook accepted", {{"source", source.name},
                                        {"job_id", result.job_id},
                                        {"job_type", source.job},
                                        {"dedupe_key", dedupe_key},
                                        {"trace_id", trace_id}});
      }
      break;
    case EnqueueOutcome::kDuplicate:
      m.duplicate->Increment();
      m.duplicates_total->Increment();
      log::Info("duplicate webhook ignored", {{"source", source.name},
                                              {"job_id", result.job_id},
                                              {"job_type", source.job},
                                              {"dedupe_key", dedupe_key}});
      break;
    case EnqueueOutcome::kOverloaded:
      m.overloaded->Increment();
      log::Warn("webhook refused: queue full", {{"source", source.name},
                                                {"dedupe_key", dedupe_key},
                                                {"max_depth", config.queue.max_depth}});
      break;
  }
  co_return result;
}

IngressServer::IngressServer(const Config& config, std::vector<std::unique_ptr<Source>> sources,
                             Queue& queue, Metrics& metrics, Clock& clock)
    : impl_(std::make_unique<Impl>(config, std::move(sources), queue, metrics, clock)) {}

IngressServer::~IngressServer() { Stop(std::chrono::milliseconds(0)); }

Status IngressServer::Start() {
  auto address = ParseListenAddress(impl_->config.server.listen);
  if (!address.ok()) return address.status();
  beast::error_code ec;
  auto ip = asio::ip::make_address(address->first, ec);
  if (ec) return InvalidArgument("server.listen: bad address " + address->first);
  tcp::endpoint endpoint(ip, address->second);
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Unavailable("cannot listen on " + impl_->config.server.listen + ": " + ec.message());
  }
  port_ = acceptor.local_endpoint().port();
  asio::co_spawn(impl_->io, impl_->Accept(), asio::detached);
  int n = Impl::ThreadCount(impl_->config);
  for (int i = 0; i < n; ++i) impl_->threads.emplace_back([this] { impl_->io.run(); });
  return Status::Ok();
}

void IngressServer::StopAccepting() {
  impl_->stopping = true;
  asio::post(impl_->io, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
  });
}

void IngressServer::Stop(std::chrono::milliseconds grace) {
  if (impl_->threads.empty()) return;
  StopAccepting();
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (impl_->requests_in_progress > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  impl_->io.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

}  // namespace firebreak
