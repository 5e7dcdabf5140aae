#include "sidecar/sidecar.h"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>
#include <charconv>

#include "common/crypto.h"
#include "common/http_util.h"
#include "common/json_string.h"
#include "common/units.h"
#include "net/await_within.h"
#include "telemetry/log.h"

namespace firebreak {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace urls = boost::urls;
using net::Request;
using net::Response;
using std::chrono::milliseconds;

constexpr uint64_t kMaxBody = 8 * 1024 * 1024;  // prompts for an LLM API can be large
constexpr int kStoreThreads = 4;
constexpr std::string_view kIntegrations = "/v1/integrations/";
constexpr std::string_view kSessions = "/v1/sessions/";
constexpr std::string_view kState = "/v1/state/";

// An answer firebreak makes itself, not relayed from an upstream.
Response Own(const Request& req, http::status status, std::string_view error) {
  Response res = net::MakeResponse(req, status, ErrorJson(error));
  res.set("X-Firebreak-Origin", "firebreak");
  return res;
}

std::string Seconds(milliseconds delay) {
  return std::to_string(std::max<int64_t>(1, (delay.count() + 999) / 1000));
}

bool HopByHop(std::string_view lower) {
  return lower == "connection" || lower == "keep-alive" || lower == "transfer-encoding" ||
         lower == "content-length" || lower == "te" || lower == "trailer" || lower == "upgrade" ||
         lower == "proxy-connection";
}

asio::awaitable<egress::EgressResult> AsyncCall(egress::Egress& egress, const std::string& name,
                                                egress::EgressCall call) {
  return asio::async_initiate<decltype(asio::use_awaitable), void(egress::EgressResult)>(
      [&egress, name](auto handler, egress::EgressCall c) {
        auto executor = asio::get_associated_executor(handler);
        // Egress callbacks are std::function (copyable); the coroutine handler is not.
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        egress.Call(name, std::move(c), [shared, executor](egress::EgressResult result) {
          asio::post(executor, [shared, result = std::move(result)]() mutable {
            (*shared)(std::move(result));
          });
        });
      },
      asio::use_awaitable, std::move(call));
}

// If-Match: "3" / W/"3" / 3 → 3. nullopt when absent or not a version of ours.
std::optional<int64_t> ParseVersionTag(std::string_view value) {
  if (value.substr(0, 2) == "W/") value.remove_prefix(2);
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
    value = value.substr(1, value.size() - 2);
  }
  int64_t version = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), version);
  if (ec != std::errc() || end != value.data() + value.size() || version < 1) return std::nullopt;
  return version;
}

std::string VersionTag(int64_t version) { return "\"" + std::to_string(version) + "\""; }

}  // namespace

struct Sidecar::Impl {
  Impl(const Config& c, egress::Egress* e, KvStore& s, KvStore& st, Metrics& m, RunningJobs& r,
       Queue* queue)
      : config(c), egress(e), sessions(s), state(st), metrics(m), running(r) {
    if (queue != nullptr) gauges = std::make_unique<QueueGauges>(*queue, m);
  }

  asio::awaitable<Response> Handle(Request& req);
  asio::awaitable<Response> Proxy(Request& req, const urls::url_view& url);
  asio::awaitable<Response> StoreRequest(Request& req, const urls::url_view& url, bool is_session);
  Response StoreError(const Request& req, const Status& status, const std::string& key);

  const Config& config;
  egress::Egress* const egress;
  KvStore& sessions;
  KvStore& state;
  Metrics& metrics;
  RunningJobs& running;
  // One pool per store: a hung state store (PostgreSQL) holds its own threads only, and
  // sessions keep being served.
  asio::thread_pool sessions_pool{kStoreThreads};
  asio::thread_pool state_pool{kStoreThreads};
  std::unique_ptr<net::HttpServer> http;
  // After `http`: destroyed first, so its thread never runs a scrape's callback against
  // an io_context that is gone.
  std::unique_ptr<QueueGauges> gauges;
};

asio::awaitable<Response> Sidecar::Impl::Handle(Request& req) {
  auto parsed = urls::parse_origin_form(std::string_view(req.target()));
  if (!parsed) co_return Own(req, http::status::bad_request, "bad request target");
  const urls::url_view& url = *parsed;
  std::string_view path = url.encoded_path();
  if (path.substr(0, kIntegrations.size()) == kIntegrations) co_return co_await Proxy(req, url);
  if (path.substr(0, kSessions.size()) == kSessions) co_return co_await StoreRequest(req, url, true);
  if (path.substr(0, kState.size()) == kState) co_return co_await StoreRequest(req, url, false);
  if (req.method() == http::verb::get && path == "/healthz") {
    co_return net::MakeResponse(req, http::status::ok, "{\"ok\":true}");
  }
  if (req.method() == http::verb::get && path == "/metrics") {
    if (gauges != nullptr) {
      // Fresh queue depth when the store answers quickly, the last values when it does not.
      auto refreshed = net::AwaitWithin<bool>(
          QueueGauges::kScrapeWait,
          [this](auto deliver) { gauges->Refresh([deliver] { deliver(true); }); },
          [] { return false; });
      co_await std::move(refreshed);
    }
    co_return net::MakeResponse(req, http::status::ok, metrics.Serialize(),
                                "text/plain; version=0.0.4");
  }
  co_return Own(req, http::status::not_found, "not found");
}

asio::awaitable<Response> Sidecar::Impl::Proxy(Request& req, const urls::url_view& url) {
  std::string_view rest = url.encoded_path().substr(kIntegrations.size());
  const std::string name(rest.substr(0, rest.find('/')));
  std::string_view sub_path =
      rest.find('/') == std::string_view::npos ? std::string_view() : rest.substr(rest.find('/'));
  if (egress == nullptr || !egress->Has(name)) {
    co_return Own(req, http::status::not_found, "no integration named \"" + name + "\"");
  }
  // A dot segment would climb out of the integration's base path (curl removes them).
  for (std::string segment : url.segments()) {
    if (segment == "." || segment == "..") {
      co_return Own(req, http::status::bad_request, "path must not contain . or .. segments");
    }
  }
  egress::EgressCall call;
  call.method = std::string(req.method_string());
  call.target = sub_path.empty() ? "/" : std::string(sub_path);
  if (url.has_query()) call.target += "?" + std::string(url.encoded_query());
  for (const auto& field : req) {
    std::string lower = AsciiLower(field.name_string());
    if (HopByHop(lower) || lower == "host") continue;
    if (lower == "traceparent") {
      if (IsValidTraceparent(field.value())) call.traceparent = std::string(field.value());
      continue;
    }
    if (lower == "x-firebreak-job-id") {
      call.job_id = std::string(field.value());
      continue;
    }
    if (lower.rfind("x-firebreak-", 0) == 0) continue;
    call.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  if (call.traceparent.empty() && !call.job_id.empty()) {
    // The handler named its job but sent no trace context: continue the job's trace.
    call.traceparent = running.Traceparent(call.job_id);
  }
  call.body = std::move(req.body());

  auto answer = AsyncCall(*egress, name, std::move(call));
  egress::EgressResult result = co_await std::move(answer);
  using Kind = egress::EgressResult::Kind;
  Response res;
  switch (result.kind) {
    case Kind::kResponse: {
      res = Response{static_cast<http::status>(result.status), req.version()};
      for (const auto& [header, value] : result.headers) {
        if (HopByHop(header)) continue;
        res.insert(header, value);
      }
      res.body() = std::move(result.body);
      res.set("X-Firebreak-Attempts", std::to_string(result.attempts));
      res.prepare_payload();
      co_return res;
    }
    case Kind::kRejectedOpen:
      res = Own(req, http::status::service_unavailable, "circuit breaker open: " + result.error);
      res.set("X-Firebreak-Breaker", "open");
      break;
    case Kind::kRejectedFull:
      res = Own(req, http::status::service_unavailable, result.error);
      res.set("X-Firebreak-Rejected", "concurrency");
      break;
    case Kind::kRateLimited:
      res = Own(req, http::status::too_many_requests, result.error);
      res.set("X-Firebreak-Rejected", "rate_limit");
      break;
    case Kind::kTimeout:
      res = Own(req, http::status::gateway_timeout, result.error);
      break;
    case Kind::kConnectionError:
      res = Own(req, http::status::bad_gateway, result.error);
      break;
    case Kind::kShutdown:
      res = Own(req, http::status::service_unavailable, result.error);
      break;
  }
  if (result.retry_after) res.set(http::field::retry_after, Seconds(*result.retry_after));
  res.set("X-Firebreak-Attempts", std::to_string(result.attempts));
  co_return res;
}

Response Sidecar::Impl::StoreError(const Request& req, const Status& status,
                                   const std::string& key) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
      return Own(req, http::status::bad_request, status.message());
    case StatusCode::kFailedPrecondition:
      return Own(req, http::status::precondition_failed, status.message());
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded: {
      // A hung store fails every call: one line per cause, then a count.
      log::WriteLimited(log::Level::kWarn, "sidecar store unavailable: " + status.message(),
                        "sidecar store unavailable", {{"key", key}, {"error", status.ToString()}});
      Response res = Own(req, http::status::service_unavailable, "store unavailable");
      res.set(http::field::retry_after, "1");
      return res;
    }
    default:
      log::Error("sidecar store failed", {{"key", key}, {"error", status.ToString()}});
      return Own(req, http::status::internal_server_error, "store failed");
  }
}

asio::awaitable<Response> Sidecar::Impl::StoreRequest(Request& req, const urls::url_view& url,
                                                      bool is_session) {
  KvStore& store = is_session ? sessions : state;
  asio::thread_pool& pool = is_session ? sessions_pool : state_pool;
  // Every store call answers within store.timeout: 503 + Retry-After when the store is
  // slow or hung, never a handler left waiting on it.
  const milliseconds timeout = config.store.timeout;
  auto too_slow = [timeout] {
    return Status(StatusCode::kDeadlineExceeded,
                  "the store did not answer within store.timeout (" + FormatDuration(timeout) +
                      ")");
  };
  std::string_view encoded_key =
      url.encoded_path().substr(is_session ? kSessions.size() : kState.size());
  auto pct = urls::make_pct_string_view(encoded_key);
  if (!pct) co_return Own(req, http::status::bad_request, "bad percent-encoding in the key");
  std::string key = pct->decode();
  if (Status s = CheckStoreKey(key); !s.ok()) {
    co_return Own(req, http::status::bad_request, s.message());
  }

  std::optional<int64_t> if_version;
  if (auto match = req.find(http::field::if_match); match != req.end()) {
    if_version = ParseVersionTag(match->value());
    if (!if_version) {
      co_return Own(req, http::status::precondition_failed,
                    "If-Match must name a version this store gave out (its ETag)");
    }
  }

  switch (req.method()) {
    case http::verb::get: {
      using Got = Result<std::optional<StoredValue>>;
      auto get = [&store, key] { return store.Get(key); };
      auto pending = net::OffloadWithin<Got>(pool, timeout, std::move(get),
                                             [too_slow] { return Got(too_slow()); });
      auto got = co_await std::move(pending);
      if (!got.ok()) co_return StoreError(req, got.status(), key);
      if (!got->has_value()) co_return Own(req, http::status::not_found, "no such key");
      StoredValue& value = **got;
      Response res = net::MakeResponse(
          req, http::status::ok, std::move(value.value),
          value.content_type.empty() ? "application/octet-stream" : value.content_type);
      if (res.body().empty() && !value.content_type.empty()) {
        res.set(http::field::content_type, value.content_type);
      }
      res.set(http::field::etag, VersionTag(value.version));
      res.set(http::field::cache_control, "no-store");
      if (value.expires_at_ms > 0) {
        res.set("X-Firebreak-Expires-At", FormatTimestampMs(value.expires_at_ms));
      }
      co_return res;
    }
    case http::verb::put: {
      PutOptions options;
      options.if_version = if_version;
      if (auto none = req.find(http::field::if_none_match); none != req.end()) {
        if (none->value() != "*") {
          co_return Own(req, http::status::precondition_failed, "If-None-Match takes only *");
        }
        options.if_version = 0;
      }
      auto ttl_param = url.params().find("ttl");
      if (is_session) {
        options.ttl = kDefaultSessionTtl;
        if (ttl_param != url.params().end()) {
          std::optional<milliseconds> ttl = ParseDuration((*ttl_param).value);
          if (!ttl || ttl->count() <= 0 || *ttl > kMaxSessionTtl) {
            co_return Own(req, http::status::bad_request,
                          "ttl must be a duration such as 30m, at most 30 days");
          }
          options.ttl = *ttl;
        }
      } else if (ttl_param != url.params().end()) {
        co_return Own(req, http::status::bad_request,
                      "state does not expire: use /v1/sessions/ for values with a ttl");
      }
      if (req.body().size() > kMaxStoreValueBytes) {
        co_return Own(req, http::status::payload_too_large, "value larger than 1 MiB");
      }
      std::string content_type(req[http::field::content_type]);
      auto write = [&store, key, value = std::move(req.body()), content_type, options] {
        return store.Put(key, value, content_type, options);
      };
      auto pending = net::OffloadWithin<Result<int64_t>>(
          pool, timeout, std::move(write), [too_slow] { return Result<int64_t>(too_slow()); });
      auto put = co_await std::move(pending);
      if (!put.ok()) co_return StoreError(req, put.status(), key);
      Response res = net::MakeResponse(req, *put == 1 ? http::status::created : http::status::ok,
                                       "{\"ok\":true,\"version\":" + std::to_string(*put) + "}");
      res.set(http::field::etag, VersionTag(*put));
      co_return res;
    }
    case http::verb::delete_: {
      auto remove = [&store, key, if_version] { return store.Delete(key, if_version); };
      auto pending = net::OffloadWithin<Result<bool>>(
          pool, timeout, std::move(remove), [too_slow] { return Result<bool>(too_slow()); });
      auto deleted = co_await std::move(pending);
      if (!deleted.ok()) co_return StoreError(req, deleted.status(), key);
      if (!*deleted) co_return Own(req, http::status::not_found, "no such key");
      co_return net::MakeResponse(req, http::status::no_content, "");
    }
    default: {
      Response res = Own(req, http::status::method_not_allowed, "use GET, PUT or DELETE");
      res.set(http::field::allow, "GET, PUT, DELETE");
      co_return res;
    }
  }
}

Sidecar::Sidecar(const Config& config, egress::Egress* egress, KvStore& sessions, KvStore& state,
                 Metrics& metrics, RunningJobs& running, Queue* queue)
    : impl_(std::make_unique<Impl>(config, egress, sessions, state, metrics, running, queue)) {}

Sidecar::~Sidecar() { Stop(milliseconds(0)); }

Status Sidecar::Start() {
  net::HttpServerOptions options;
  options.name = "sidecar";
  options.listen = impl_->config.worker.sidecar;
  // Every blocking call is offloaded; two loop threads so that one busy serializing
  // /metrics, or descheduled on a loaded machine, does not hold up health checks and calls.
  options.threads = 2;
  options.max_body = kMaxBody;
  options.read_timeout = milliseconds(60'000);
  options.max_connections = 4096;
  options.max_connections_key = "sidecar connections";
  Impl& impl = *impl_;
  impl.http = std::make_unique<net::HttpServer>(options,
                                                [&impl](Request& req) { return impl.Handle(req); });
  Status started = impl.http->Start();
  if (!started.ok()) {
    impl.http.reset();
    return Status(started.code(), "worker.sidecar: " + started.message());
  }
  return Status::Ok();
}

std::string Sidecar::url() const {
  if (!impl_->http) return "";
  auto address = ParseListenAddress(impl_->config.worker.sidecar, true);
  std::string host = address.ok() ? address->first : "127.0.0.1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(impl_->http->port());
}

void Sidecar::Stop(milliseconds grace) {
  if (impl_->http) impl_->http->Stop(grace);
  impl_->sessions_pool.join();
  impl_->state_pool.join();
}

}  // namespace firebreak
