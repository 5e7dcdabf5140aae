#include "ingress/server.h"

#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <string>

#include "admin/admin_api.h"
#include "common/crypto.h"
#include "common/json_string.h"
#include "common/units.h"
#include "ingress/beast_request.h"
#include "ingress/job_key.h"
#include "ingress/json_body.h"
#include "net/await_within.h"
#include "net/http_server.h"
#include "telemetry/log.h"
#include "telemetry/queue_gauges.h"
#include "telemetry/tracing.h"

namespace firebreak {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using net::Request;
using net::Response;

struct IngressServer::Impl {
  Impl(const Config& cfg, std::vector<std::unique_ptr<Source>> srcs, Queue& q, Metrics& m, Clock& c)
      : config(cfg),
        sources(std::move(srcs)),
        queue(q),
        metrics(m),
        clock(c) {
    for (auto& source : sources) {
      Route route;
      route.source = source.get();
      route.metrics = &metrics.RegisterSource(source->config().name);
      const JobConfig* job = config.FindJob(source->config().job);
      route.max_attempts = job ? job->max_attempts : 5;
      route.job = job;
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
    const JobConfig* job = nullptr;  // the source's job type (its key settings)
  };

  static std::string_view PathOf(std::string_view target) {
    return target.substr(0, target.find('?'));
  }
  // The webhook route of a request target (query ignored), or nullptr.
  const Route* FindRoute(std::string_view target) const;
  // 503 with Retry-After: the platform retries later and nothing is lost.
  Response ServiceUnavailable(const Request& req, std::string_view error);
  asio::awaitable<Response> Handle(Request& req);
  asio::awaitable<Response> HandleWebhook(Request& req, const Route& route);
  // Stores one job of a request; counts and logs its outcome.
  asio::awaitable<EnqueueResult> StoreJob(const Route& route, SourceJob spec,
                                          const std::string& traceparent);
  Response Simple(const Request& req, http::status status, std::string body,
                  std::string_view content_type = "application/json");
  asio::awaitable<Response> Metrics(const Request& req);
  Response Ready(const Request& req);

  const Config& config;
  std::vector<std::unique_ptr<Source>> sources;
  std::map<std::string, Route, std::less<>> routes;
  Queue& queue;
  firebreak::Metrics& metrics;
  Clock& clock;

  std::unique_ptr<net::HttpServer> http;
  AdminApi* admin = nullptr;  // set before Start, when the admin API is on this listener

  // After `http`: destroyed first, so its thread never runs a scrape's callback against
  // an io_context that is gone.
  QueueGauges gauges{queue, metrics};
};

Response IngressServer::Impl::Simple(const Request& req, http::status status, std::string body,
                                     std::string_view content_type) {
  return net::MakeResponse(req, status, std::move(body), content_type);
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
  if (admin && AdminApi::IsAdminPath(req.target())) co_return co_await admin->Handle(req);
  if (const Route* route = FindRoute(req.target())) co_return co_await HandleWebhook(req, *route);
  std::string_view path = PathOf(req.target());
  if (req.method() == http::verb::get || req.method() == http::verb::head) {
    // Health endpoints read state the queue's own threads publish: a hung store makes
    // them say so, never wait on it.
    if (path == "/healthz") co_return Simple(req, http::status::ok, "{\"ok\":true}");
    if (path == "/readyz") co_return Ready(req);
    if (path == "/metrics") co_return co_await Metrics(req);
  }
  co_return Simple(req, http::status::not_found, ErrorJson("not found"));
}

Response IngressServer::Impl::Ready(const Request& req) {
  QueueHealth health = queue.Health();
  if (health.ready) return Simple(req, http::status::ok, "{\"ok\":true}");
  std::string body = "{\"ok\":false,\"error\":";
  AppendJsonString(body, "queue store cannot take writes: " + health.reason);
  body += ",\"since\":\"" + FormatTimestampMs(health.since_ms) + "\"}";
  return Simple(req, http::status::service_unavailable, std::move(body));
}

asio::awaitable<Response> IngressServer::Impl::Metrics(const Request& req) {
  // Fresh queue depth when the store answers quickly, the last values when it does not.
  auto refreshed = net::AwaitWithin<bool>(
      QueueGauges::kScrapeWait,
      [this](auto deliver) { gauges.Refresh([deliver] { deliver(true); }); },
      [] { return false; });
  co_await std::move(refreshed);
  co_return Simple(req, http::status::ok, metrics.Serialize(), "text/plain; version=0.0.4");
}

asio::awaitable<Response> IngressServer::Impl::HandleWebhook(Request& req, const Route& route) {
  auto started = std::chrono::steady_clock::now();
  const int64_t started_unix_ns = trace::Enabled() ? trace::NowUnixNs() : 0;
  const SourceConfig& source = route.source->config();
  SourceMetrics& m = *route.metrics;

  // This request's span: a child of the platform's traceparent, or a new trace. Its
  // context is what the job carries, so the worker's span is the ingress span's child.
  // (ChildTraceparent checks the header: a malformed one starts a new trace, and the span
  // then has no parent, since the trace ids differ.)
  std::string_view incoming;
  if (auto tp = req.find("traceparent"); tp != req.end()) incoming = tp->value();
  const std::string traceparent = ChildTraceparent(incoming);
  std::string_view outcome = "accepted";
  std::string job_id;
  auto observe = [&](int status) {
    m.duration->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (started_unix_ns == 0) return;
    trace::Span span = trace::Span::For("webhook " + source.name, trace::SpanKind::kServer,
                                        traceparent, incoming, started_unix_ns);
    span.end_unix_ns = trace::NowUnixNs();
    span.Set("http.request.method", std::string_view(req.method_string()));
    span.Set("http.route", source.path);
    span.Set("http.response.status_code", static_cast<int64_t>(status));
    span.Set("firebreak.source", source.name);
    span.Set("firebreak.outcome", outcome);
    if (!job_id.empty()) span.Set("firebreak.job_id", job_id);
    if (status >= 500) {
      span.error = true;
      span.status_message = std::string(outcome);
    }
    trace::Record(span);
  };

  SourceDecision decision = route.source->Handle(BeastRequestView(req));
  if (decision.kind == SourceDecision::Kind::kRespond) {
    outcome = "answered";  // e.g. a url_verification challenge or a ping
    // A flood of forged or malformed requests (an attack, a rotated secret) is one line
    // per cause and then a count, not a line per request; the metrics count each one.
    if (decision.status == 401) {
      outcome = "unauthorized";
      m.unauthorized->Increment();
      log::WriteLimited(log::Level::kWarn,
                        "webhook rejected:" + source.name + ":401:" + decision.error,
                        "webhook rejected",
                        {{"source", source.name},
                         {"status", decision.status},
                         {"error", decision.error},
                         {"trace_id", TraceIdOf(traceparent)}});
    } else if (decision.status >= 400) {
      outcome = "bad_request";
      m.bad_request->Increment();
      log::WriteLimited(log::Level::kInfo,
                        "webhook rejected:" + source.name + ":" +
                            std::to_string(decision.status) + ":" + decision.error,
                        "webhook rejected",
                        {{"source", source.name},
                         {"status", decision.status},
                         {"error", decision.error},
                         {"trace_id", TraceIdOf(traceparent)}});
    }
    observe(decision.status);
    co_return Simple(req, static_cast<http::status>(decision.status), std::move(decision.body),
                     decision.content_type);
  }

  std::vector<SourceJob> jobs = std::move(decision.batch);
  const bool batched = !jobs.empty();
  if (!batched) {
    jobs.push_back({std::move(decision.dedupe_keys), std::move(decision.payload_json),
                    std::move(decision.headers_json), std::move(decision.search_keys)});
  }
  if (const EnvelopeHeaders& envelope = route.source->envelope_headers(); !envelope.empty()) {
    const BeastRequestView view(req);
    for (SourceJob& spec : jobs) envelope.AppendTo(view, spec.headers_json);
  }
  EnqueueResult result;
  int duplicates = 0;
  for (SourceJob& spec : jobs) {
    result = co_await StoreJob(route, std::move(spec), traceparent);
    if (!result.status.ok()) {
      outcome = "store_unavailable";
      observe(503);
      co_return ServiceUnavailable(req, "store unavailable");
    }
    if (result.outcome == EnqueueOutcome::kOverloaded) {
      outcome = "overloaded";
      observe(503);
      co_return ServiceUnavailable(req, "queue full");
    }
    if (result.outcome == EnqueueOutcome::kDuplicate) ++duplicates;
    if (!batched) job_id = result.job_id;
  }
  if (!batched && result.outcome == EnqueueOutcome::kDuplicate) outcome = "duplicate";
  observe(200);
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
  job.search_keys = std::move(spec.search_keys);
  job.traceparent = traceparent;
  job.max_attempts = route.max_attempts;
  job.enqueued_at_ms = now;
  job.run_at_ms = now;
  // A payload without a value at the key is simply unkeyed.
  job.priority = source.priority;
  if (route.job != nullptr) AssignJobKey(*route.job, job);
  std::string dedupe_key = job.dedupe_keys.empty() ? std::string() : job.dedupe_keys.front();
  const int64_t started_unix_ns = trace::Enabled() ? trace::NowUnixNs() : 0;

  // Answered within queue.timeout whatever the store does: a hung store is a 503 the
  // platform retries, not a webhook that waits past the platform's own deadline.
  const milliseconds timeout = config.queue.timeout;
  auto stored = net::AwaitWithin<EnqueueResult>(
      timeout,
      [this, job = std::move(job)](auto deliver) mutable {
        queue.Enqueue(std::move(job), std::move(deliver));
      },
      [timeout] {
        EnqueueResult late;
        late.status = Status(StatusCode::kDeadlineExceeded,
                             "the queue store did not answer within queue.timeout (" +
                                 FormatDuration(timeout) + ")");
        return late;
      });
  EnqueueResult result = co_await std::move(stored);
  if (started_unix_ns != 0) {
    trace::Span span = trace::Span::For("enqueue " + source.job, trace::SpanKind::kProducer,
                                        ChildTraceparent(traceparent), traceparent,
                                        started_unix_ns);
    span.end_unix_ns = trace::NowUnixNs();
    span.Set("messaging.system", "firebreak");
    span.Set("messaging.destination.name", source.job);
    span.Set("firebreak.job_type", source.job);
    span.Set("firebreak.dedupe_key", dedupe_key);
    if (!result.job_id.empty()) span.Set("firebreak.job_id", result.job_id);
    span.Set("firebreak.outcome", !result.status.ok() ? "store_unavailable"
                                  : result.outcome == EnqueueOutcome::kAccepted  ? "accepted"
                                  : result.outcome == EnqueueOutcome::kDuplicate ? "duplicate"
                                                                                 : "overloaded");
    if (!result.status.ok()) {
      span.error = true;
      span.status_message = result.status.ToString();
    }
    trace::Record(span);
  }
  if (!result.status.ok()) {
    m.overloaded->Increment();
    // One line per cause, then a count: a dead store fails every webhook.
    const std::string error = result.status.ToString();
    log::WriteLimited(log::Level::kError, "webhook not stored: " + error,
                      "webhook not stored: store unavailable",
                      {{"source", source.name},
                       {"dedupe_key", dedupe_key},
                       {"error", error},
                       {"trace_id", TraceIdOf(traceparent)}});
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
                                        {"trace_id", TraceIdOf(traceparent)}});
      }
      break;
    case EnqueueOutcome::kDuplicate:
      m.duplicate->Increment();
      m.duplicates_total->Increment();
      log::Info("duplicate webhook ignored", {{"source", source.name},
                                              {"job_id", result.job_id},
                                              {"job_type", source.job},
                                              {"dedupe_key", dedupe_key},
                                              {"trace_id", TraceIdOf(traceparent)}});
      break;
    case EnqueueOutcome::kOverloaded:
      m.overloaded->Increment();
      log::Warn("webhook refused: queue full", {{"source", source.name},
                                                {"dedupe_key", dedupe_key},
                                                {"max_depth", config.queue.max_depth},
                                                {"trace_id", TraceIdOf(traceparent)}});
      break;
  }
  co_return result;
}

IngressServer::IngressServer(const Config& config, std::vector<std::unique_ptr<Source>> sources,
                             Queue& queue, Metrics& metrics, Clock& clock)
    : impl_(std::make_unique<Impl>(config, std::move(sources), queue, metrics, clock)) {}

IngressServer::~IngressServer() { Stop(std::chrono::milliseconds(0)); }

void IngressServer::SetAdmin(AdminApi* admin) { impl_->admin = admin; }

Status IngressServer::Start() {
  Impl& impl = *impl_;
  const ServerConfig& server = impl.config.server;
  net::HttpServerOptions options;
  options.name = "ingress";
  options.listen = server.listen;
  options.threads = Impl::ThreadCount(impl.config);
  options.max_body = server.max_body;
  options.read_timeout = server.read_timeout;
  options.max_connections = server.max_connections;
  options.max_connections_key = "server.max_connections";
  impl.http = std::make_unique<net::HttpServer>(
      options, [&impl](Request& req) { return impl.Handle(req); },
      [&impl](std::string_view target) {
        if (const Impl::Route* route = impl.FindRoute(target)) route->metrics->too_large->Increment();
      });
  Status started = impl.http->Start();
  if (!started.ok()) return started;
  port_ = impl.http->port();
  return Status::Ok();
}

void IngressServer::StopAccepting() {
  if (impl_->http) impl_->http->StopAccepting();
}

void IngressServer::Stop(std::chrono::milliseconds grace) {
  if (impl_->http) impl_->http->Stop(grace);
}

}  // namespace firebreak
