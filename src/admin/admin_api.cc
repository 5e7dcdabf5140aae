#include "admin/admin_api.h"

#include <boost/asio/thread_pool.hpp>
#include <boost/url/parse.hpp>
#include <charconv>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "admin/auth_limiter.h"
#include "admin/console.h"
#include "admin/recent_window.h"
#include "admin/admin_http.h"
#include "admin/job_routes.h"
#include "common/crypto.h"
#include "common/http_util.h"
#include "common/json_string.h"
#include "common/units.h"
#include "egress/egress.h"
#include "net/offload.h"
#include "queue/capacity.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"
#include "worker/actions.h"

namespace firebreak {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace urls = boost::urls;
using admin::kDefaultLimit;
using admin::kMaxLimit;
using net::Request;
using net::Response;

constexpr std::string_view kAdminPrefix = "/admin";
constexpr std::string_view kApiPrefix = "/admin/api/v1";
constexpr std::string_view kLoginPath = "/admin/login";
constexpr std::string_view kLogoutPath = "/admin/logout";
constexpr std::string_view kSessionPath = "/admin/api/v1/session";
// Queue reads in parallel; each holds one store connection (sqlite: the read
// connection's lock, redis: the admin connection), so more would only queue there.
constexpr int kQueueThreads = 2;
// The longest an answer waits for the egress thread's read-out.
constexpr std::chrono::milliseconds kEgressReadTimeout{2'000};

std::string_view PathOf(std::string_view target) { return target.substr(0, target.find('?')); }

using admin::Answer;
using admin::Dump;
using admin::Error;

// "Authorization: Bearer <token>" → the token; "" when the header is absent or of
// another scheme. The scheme is case-insensitive (RFC 9110 §11.1).
std::string_view BearerToken(const Request& req) {
  auto it = req.find(http::field::authorization);
  if (it == req.end()) return {};
  std::string_view value(it->value());
  constexpr std::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return {};
  }
  value.remove_prefix(kScheme.size());
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  return value;
}

// ?limit=&cursor= of a list request.
struct Page {
  int limit = kDefaultLimit;
  std::string cursor;  // the last key of the previous page; "" = from the start
};

Result<Page> ParsePage(const urls::url_view& url) {
  Page page;
  for (auto param : url.params()) {
    if (param.key == "limit") {
      int limit = 0;
      const std::string& v = param.value;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), limit);
      if (ec != std::errc() || end != v.data() + v.size() || limit < 1 || limit > kMaxLimit) {
        return InvalidArgument("limit must be an integer from 1 to " + std::to_string(kMaxLimit));
      }
      page.limit = limit;
    } else if (param.key == "cursor") {
      page.cursor = param.value;
    }
  }
  return page;
}

// The list envelope of DESIGN §7 over rows sorted by `key`: the page after
// `page.cursor`.
nlohmann::json ListJson(const std::vector<nlohmann::json>& rows, const Page& page,
                        const char* key) {
  nlohmann::json items = nlohmann::json::array();
  size_t i = 0;
  if (!page.cursor.empty()) {
    while (i < rows.size() && rows[i][key].get<std::string>() <= page.cursor) ++i;
  }
  for (; i < rows.size() && static_cast<int>(items.size()) < page.limit; ++i) {
    items.push_back(rows[i]);
  }
  nlohmann::json next = nullptr;
  if (i < rows.size() && !items.empty()) next = items.back()[key];
  return {{"items", std::move(items)},
          {"next_cursor", std::move(next)},
          {"total_estimate", rows.size()}};
}

// What the admin listener answers outside /admin.
asio::awaitable<Response> NotAdmin(Request& req) {
  co_return Error(req, http::status::not_found, "not found (this listener serves /admin only)");
}

nlohmann::json Optional(const std::optional<double>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

// What a route needs read off the I/O thread before it can answer.
struct Needs {
  bool depth = false;
  bool throughput = false;
  bool egress = false;
};

using IntegrationList = std::vector<std::pair<std::string, egress::IntegrationSnapshot>>;

// One read for a request, taken on a queue thread.
struct Snapshot {
  Status status;
  std::vector<TypeDepth> depth;
  std::vector<TypeThroughput> throughput;
  std::optional<IntegrationList> integrations;  // none without egress in this process
};

// The routes under /admin/api/v1 (path segments after it).
enum class RouteId { kQueues, kQueue, kCapacity, kSources, kIntegrations, kOverview };

struct Route {
  RouteId id;
  Needs needs;
  std::string type;  // kQueue: the job type
};

std::optional<Route> FindRoute(const urls::segments_view& segments) {
  std::vector<std::string> parts(segments.begin(), segments.end());
  if (parts.size() < 4 || parts[0] != "admin" || parts[1] != "api" || parts[2] != "v1") {
    return std::nullopt;
  }
  const std::string& name = parts[3];
  if (parts.size() == 5 && name == "queues" && !parts[4].empty()) {
    return Route{RouteId::kQueue, {true, true, false}, parts[4]};
  }
  if (parts.size() != 4) return std::nullopt;
  if (name == "queues") return Route{RouteId::kQueues, {true, false, false}, ""};
  if (name == "capacity") return Route{RouteId::kCapacity, {true, true, false}, ""};
  if (name == "sources") return Route{RouteId::kSources, {}, ""};
  if (name == "integrations") return Route{RouteId::kIntegrations, {false, false, true}, ""};
  if (name == "overview") return Route{RouteId::kOverview, {true, true, true}, ""};
  return std::nullopt;
}

// A source as the API shows it: no secret, only fingerprints.
struct SourceView {
  std::string name;
  std::string kind;
  std::string path;
  std::string job;
  std::optional<std::string> secret_fingerprint;
  std::optional<std::string> previous_secret_fingerprint;
  AckDeadline deadline;
};

// An integration as the API shows it (its credential is never kept here).
struct IntegrationView {
  std::string name;
  std::string base_url;  // passwords in it redacted
  CircuitBreakerConfig breaker;
  std::optional<RateLimitConfig> rate_limit;
  int max_concurrency = 0;
  int max_queue = 0;
};

std::string SeriesName(std::string_view kind, const std::string& name) {
  return std::string(kind) + ":" + name;
}

uint64_t CounterTotal(std::initializer_list<prometheus::Counter*> counters) {
  double total = 0;
  for (prometheus::Counter* counter : counters) total += counter ? counter->Value() : 0;
  return static_cast<uint64_t>(total);
}

int64_t CounterValue(prometheus::Counter* counter) {
  return counter ? static_cast<int64_t>(counter->Value()) : 0;
}

// The JSON of a job type's depth (without the type), ages against `now_ms`.
nlohmann::json DepthJson(const TypeDepth& d, int64_t now_ms) {
  nlohmann::json oldest_age = nullptr;
  if (d.oldest_ready_at_ms > 0) {
    oldest_age = static_cast<double>(std::max<int64_t>(0, now_ms - d.oldest_ready_at_ms)) / 1000;
  }
  return {{"ready", d.ready},         {"delayed", d.delayed},
          {"in_flight", d.in_flight}, {"dead", d.dead},
          {"paused", d.paused},       {"oldest_ready_age_seconds", std::move(oldest_age)}};
}

}  // namespace

struct AdminApi::Impl {
  Impl(const Config& config, Queue& q, std::vector<AdminToken> tokens, AdminApiParts p)
      : queue(q),
        parts(p),
        clock(p.clock != nullptr ? *p.clock : SystemClock::Instance()),
        concurrency(ConfiguredConcurrency(config)) {
    for (AdminToken& token : tokens) {
      if (token.value.empty()) continue;
      token_digests.push_back(
          {Sha256Hex(token.value), token.name, token.scope, admin::SessionKey(token.value)});
    }
    for (const SourceConfig& source : config.sources) {
      SourceView view{source.name,  source.KindName(), source.path,          source.job,
                      std::nullopt, std::nullopt,      AckDeadlineOf(source)};
      if (source.secret) view.secret_fingerprint = SecretFingerprint(source.secret->value);
      if (source.previous_secret) {
        view.previous_secret_fingerprint = SecretFingerprint(source.previous_secret->value);
      }
      sources.push_back(std::move(view));
    }
    for (const IntegrationConfig& integration : config.integrations) {
      integrations.push_back({integration.name, RedactUrl(integration.base_url),
                              integration.breaker, integration.rate_limit,
                              integration.max_concurrency, integration.max_queue});
    }
    // The windows' first base: rates read later cover the time since start.
    Recent();
  }

  struct TokenDigest {
    std::string digest;  // SHA-256 hex of the token
    std::string name;
    AdminScope scope;
    std::string session_key;  // signs the console sessions it logs in (admin/console.h)
  };

  // The token presented, or nullptr. Every configured token is compared, whatever
  // matched before, so the time taken does not tell which one (or whether one) did.
  const TokenDigest* Authenticate(const Request& req) const {
    return MatchToken(BearerToken(req));
  }
  const TokenDigest* MatchToken(std::string_view presented) const {
    if (presented.empty()) return nullptr;
    // Digests have one length, so the comparison does not leak the token's either.
    const std::string digest = Sha256Hex(presented);
    const TokenDigest* match = nullptr;
    for (const TokenDigest& token : token_digests) {
      if (ConstantTimeEquals(digest, token.digest)) match = &token;
    }
    return match;
  }

  // The console session in the request's cookie, checked: its token (by name, so its
  // current scope applies) or nullptr for none, a forged or an expired one.
  const TokenDigest* SessionToken(const Request& req, admin::ConsoleSession& session) const {
    std::optional<admin::SignedSession> cookie = admin::ReadSessionCookie(req);
    if (!cookie) return nullptr;
    for (const TokenDigest& token : token_digests) {
      if (token.name != cookie->session.token_name) continue;
      if (!admin::VerifySession(token.session_key, *cookie, clock.NowMs())) return nullptr;
      session = cookie->session;
      return &token;
    }
    return nullptr;
  }

  // The security gate: nullopt lets the request through with `caller` filled, and
  // `session` when the caller is a console session rather than a bearer token.
  std::optional<Response> Gate(const Request& req, const std::string& path, AdminCaller& caller,
                               std::optional<admin::ConsoleSession>& session);
  // POST /admin/login and /admin/logout, and GET /admin/api/v1/session.
  Response Login(const Request& req);
  Response Logout(const Request& req);
  Response SessionAnswer(const Request& req, http::status status, const AdminCaller& caller,
                         const std::optional<admin::ConsoleSession>& session) const;
  Response TooManyFailures(const Request& req, std::chrono::milliseconds left) const;
  // The failed-auth limit, shared by the gate and the console's login: a client already
  // refused for this window, and a failure that makes it so (the 429 to answer).
  std::optional<Response> RefusedClient(const Request& req, const std::string& client,
                                        int64_t now_ms);
  std::optional<Response> CountFailure(const Request& req, const std::string& path,
                                       const std::string& client, int64_t now_ms);

  asio::awaitable<Response> Handle(Request& req);
  asio::awaitable<Response> Serve(Request& req, const std::string& path, const AdminCaller& caller);
  Snapshot Read(const Needs& needs);
  // The ingress and integration series' windows, sampled now.
  std::map<std::string, WindowStats> Recent();

  Response Queues(const Request& req, const Snapshot& snapshot, const Page& page) const;
  Response QueueOne(const Request& req, const Snapshot& snapshot, const std::string& type) const;
  Response Capacity(const Request& req, const Snapshot& snapshot, const Page& page) const;
  Response Sources(const Request& req, const Page& page);
  Response Integrations(const Request& req, const Snapshot& snapshot, const Page& page);
  Response Overview(const Request& req, const Snapshot& snapshot);

  nlohmann::json SourceJson(const SourceView& source, const WindowStats& recent) const;
  nlohmann::json IntegrationJson(const IntegrationView& integration,
                                 const egress::IntegrationSnapshot* live,
                                 const WindowStats& recent) const;
  // Every configured type, and every type the store has jobs of (e.g. one removed from
  // the config with jobs left).
  std::map<std::string, TypeDepth> DepthByType(const Snapshot& snapshot) const;

  Queue& queue;
  const AdminApiParts parts;
  const Clock& clock;
  std::vector<TokenDigest> token_digests;  // fixed after construction
  const std::map<std::string, int> concurrency;
  std::vector<SourceView> sources;            // fixed after construction
  std::vector<IntegrationView> integrations;  // fixed after construction
  RecentWindow recent;                        // thread-safe
  std::mutex limiter_mu;
  FailedAuthLimiter limiter;  // guarded by limiter_mu
  asio::thread_pool queue_pool{kQueueThreads};
  // The job endpoints (admin/job_routes.h), on the same queue threads.
  JobRoutes job_routes{queue, clock, queue_pool};
  // The web console's files; FIREBREAK_ADMIN_UI_DIR serves them from disk instead.
  const admin::ConsoleAssets console{[] {
    const char* dir = std::getenv("FIREBREAK_ADMIN_UI_DIR");
    return std::string(dir != nullptr ? dir : "");
  }()};
  std::unique_ptr<net::HttpServer> listener;  // server.admin_listen
  std::once_flag stopped;
};

Response AdminApi::Impl::TooManyFailures(const Request& req, std::chrono::milliseconds left) const {
  const int64_t seconds = std::max<int64_t>(1, (left.count() + 999) / 1000);
  Response res = Error(req, http::status::too_many_requests,
                       "too many failed authentications from this address; retry in " +
                           std::to_string(seconds) + " s");
  res.set(http::field::retry_after, std::to_string(seconds));
  return res;
}

std::optional<Response> AdminApi::Impl::RefusedClient(const Request& req,
                                                      const std::string& client, int64_t now_ms) {
  std::lock_guard lock(limiter_mu);
  if (auto refused = limiter.Refused(client, now_ms)) return TooManyFailures(req, *refused);
  return std::nullopt;
}

std::optional<Response> AdminApi::Impl::CountFailure(const Request& req, const std::string& path,
                                                     const std::string& client, int64_t now_ms) {
  std::optional<std::chrono::milliseconds> refused;
  {
    std::lock_guard lock(limiter_mu);
    refused = limiter.RecordFailure(client, now_ms);
  }
  if (!refused) return std::nullopt;
  log::Warn("admin requests refused: too many failed authentications",
            {{"path", path},
             {"client", req.peer},
             {"retry_in_ms", static_cast<int64_t>(refused->count())}});
  return TooManyFailures(req, *refused);
}

std::optional<Response> AdminApi::Impl::Gate(const Request& req, const std::string& path,
                                             AdminCaller& caller,
                                             std::optional<admin::ConsoleSession>& session) {
  const int64_t now_ms = clock.NowMs();
  const std::string client = FailedAuthLimiter::ClientKey(req.peer);
  if (std::optional<Response> refused = RefusedClient(req, client, now_ms)) return refused;
  const bool bearer = req.find(http::field::authorization) != req.end();
  const TokenDigest* token = Authenticate(req);
  admin::ConsoleSession cookie_session;
  if (!bearer) {
    token = SessionToken(req, cookie_session);
    if (token != nullptr) session = cookie_session;
  }
  if (token == nullptr) {
    // Only a credential that was presented and wrong counts as a guess: a browser that
    // opens the console before logging in (or with an expired session) guesses nothing.
    if (bearer) {
      if (std::optional<Response> refused = CountFailure(req, path, client, now_ms)) return refused;
      log::Warn("admin request refused: missing or wrong bearer token",
                {{"path", path}, {"client", req.peer}});
    }
    Response res = Error(req, http::status::unauthorized,
                         "unauthorized: send Authorization: Bearer <an admin token>, or log in "
                         "to the console");
    res.set(http::field::www_authenticate, "Bearer realm=\"firebreak admin\"");
    return res;
  }
  caller = AdminCaller{token->name, token->scope, req.peer};
  // A browser sends the cookie with any request to this host, a forged one too: changes
  // made with it must prove they come from the console's own page.
  const bool reads = req.method() == http::verb::get || req.method() == http::verb::head;
  if (session && !reads) {
    std::string refusal = admin::CrossOriginRefusal(req);
    if (refusal.empty()) {
      auto csrf = req.find(admin::kCsrfHeader);
      if (csrf == req.end() ||
          !ConstantTimeEquals(csrf->value(), admin::CsrfToken(token->session_key, *session))) {
        refusal = "missing or wrong " + std::string(admin::kCsrfHeader) + " header";
      }
    }
    if (!refusal.empty()) {
      log::Warn("admin request refused: forged console request",
                {{"path", path}, {"client", req.peer}, {"actor", caller.token_name},
                 {"reason", refusal}});
      return Error(req, http::status::forbidden, refusal);
    }
  }
  const AdminScope needed = RequiredScope(req.method(), path);
  if (caller.scope < needed) {
    log::Warn("admin request refused: scope too small",
              {{"path", path}, {"client", req.peer}, {"actor", caller.token_name}});
    return Error(req, http::status::forbidden,
                 std::string("this needs scope \"") + AdminScopeName(needed) + "\"; token \"" +
                     caller.token_name + "\" has \"" + AdminScopeName(caller.scope) + "\"");
  }
  return std::nullopt;
}

Response AdminApi::Impl::SessionAnswer(const Request& req, http::status status,
                                       const AdminCaller& caller,
                                       const std::optional<admin::ConsoleSession>& session) const {
  nlohmann::json json = {{"name", caller.token_name},
                         {"scope", AdminScopeName(caller.scope)},
                         {"auth", session ? "session" : "bearer"},
                         {"csrf", nullptr},
                         {"expires_at_ms", nullptr}};
  if (session) {
    for (const TokenDigest& token : token_digests) {
      if (token.name == caller.token_name) {
        json["csrf"] = admin::CsrfToken(token.session_key, *session);
      }
    }
    json["expires_at_ms"] = session->expires_at_ms;
  }
  return Answer(req, status, Dump(json));
}

Response AdminApi::Impl::Login(const Request& req) {
  if (req.method() != http::verb::post) {
    Response res = Error(req, http::status::method_not_allowed, "use POST");
    res.set(http::field::allow, "POST");
    return res;
  }
  const int64_t now_ms = clock.NowMs();
  const std::string client = FailedAuthLimiter::ClientKey(req.peer);
  if (std::optional<Response> refused = RefusedClient(req, client, now_ms)) return *refused;
  // Another site's page must not log a browser in (login CSRF); curl sends no Origin.
  if (req.find(http::field::origin) != req.end()) {
    if (std::string refusal = admin::CrossOriginRefusal(req); !refusal.empty()) {
      return Error(req, http::status::forbidden, refusal);
    }
  }
  nlohmann::json body = nlohmann::json::parse(req.body(), nullptr, false);
  if (!body.is_object() || !body.contains("token") || !body["token"].is_string()) {
    return Error(req, http::status::bad_request, "send {\"token\":\"<an admin token>\"}");
  }
  const TokenDigest* token = MatchToken(body["token"].get_ref<const std::string&>());
  if (token == nullptr) {
    if (std::optional<Response> refused = CountFailure(req, std::string(kLoginPath), client, now_ms)) {
      return *refused;
    }
    log::Warn("console login refused: wrong token", {{"client", req.peer}});
    return Error(req, http::status::unauthorized, "that is not an admin token");
  }
  admin::ConsoleSession session{token->name, now_ms + admin::kSessionLifetimeMs, RandomHex(16)};
  Response res = SessionAnswer(req, http::status::ok, AdminCaller{token->name, token->scope, req.peer},
                               session);
  res.set(http::field::set_cookie,
          admin::SessionSetCookie(req, admin::SignSession(token->session_key, session),
                                  admin::kSessionLifetimeMs / 1000));
  log::Info("console login", {{"actor", token->name}, {"client", req.peer}});
  return res;
}

Response AdminApi::Impl::Logout(const Request& req) {
  if (req.method() != http::verb::post) {
    Response res = Error(req, http::status::method_not_allowed, "use POST");
    res.set(http::field::allow, "POST");
    return res;
  }
  Response res = net::MakeResponse(req, http::status::no_content, "");
  res.set(http::field::cache_control, "no-store");
  res.set(http::field::set_cookie, admin::SessionSetCookie(req, "", 0));
  return res;
}

asio::awaitable<Response> AdminApi::Impl::Handle(Request& req) {
  const std::string path(PathOf(req.target()));
  // The console's page and files are public (they hold no data): the browser needs them
  // to show the login.
  if (req.method() == http::verb::get && admin::ConsoleAssets::Serves(path)) {
    co_return console.Serve(req, path);
  }
  if (path == kLoginPath) co_return Login(req);
  AdminCaller caller;
  std::optional<admin::ConsoleSession> session;
  if (std::optional<Response> refused = Gate(req, path, caller, session)) {
    co_return std::move(*refused);
  }
  if (path == kLogoutPath) co_return Logout(req);
  if (path == kSessionPath) {
    if (req.method() != http::verb::get) {
      Response res = Error(req, http::status::method_not_allowed, "use GET");
      res.set(http::field::allow, "GET");
      co_return res;
    }
    co_return SessionAnswer(req, http::status::ok, caller, session);
  }
  co_return co_await Serve(req, path, caller);
}

Snapshot AdminApi::Impl::Read(const Needs& needs) {
  Snapshot snapshot;
  try {
    if (needs.depth) {
      Result<std::vector<TypeDepth>> depth = queue.Stats();
      if (!depth.ok()) {
        snapshot.status = depth.status();
        return snapshot;
      }
      snapshot.depth = std::move(depth).value();
    }
    if (needs.throughput) {
      Result<std::vector<TypeThroughput>> counts = queue.Throughput(kCapacityWindowMs);
      if (!counts.ok()) {
        snapshot.status = counts.status();
        return snapshot;
      }
      snapshot.throughput = std::move(counts).value();
    }
  } catch (const std::exception& e) {
    snapshot.status = Internal(std::string("queue read threw: ") + e.what());
    return snapshot;
  }
  if (needs.egress && parts.egress != nullptr) {
    snapshot.integrations = parts.egress->Snapshots(kEgressReadTimeout);
    if (!snapshot.integrations) {
      snapshot.status = Unavailable("the egress thread did not answer within " +
                                    FormatDuration(kEgressReadTimeout));
    }
  }
  return snapshot;
}

// `caller`: the job routes write its token name to the audit log as the actor; the read
// endpoints need only its scope, which the gate checked.
asio::awaitable<Response> AdminApi::Impl::Serve(Request& req, const std::string& path,
                                                const AdminCaller& caller) {
  if (path.starts_with(kApiPrefix)) {
    std::string api_path = path.substr(kApiPrefix.size());
    if (JobRoutes::Serves(api_path)) {
      co_return co_await job_routes.Handle(req, std::move(api_path), caller.token_name);
    }
  }
  auto url = urls::parse_origin_form(req.target());
  if (!url) co_return Error(req, http::status::bad_request, "bad request target");
  std::optional<Route> route = FindRoute(url->segments());
  if (!route) co_return Error(req, http::status::not_found, "no admin endpoint " + path);
  if (req.method() != http::verb::get) {
    Response res = Error(req, http::status::method_not_allowed, "use GET");
    res.set(http::field::allow, "GET");
    co_return res;
  }
  Result<Page> page = ParsePage(*url);
  if (!page.ok()) co_return Error(req, http::status::bad_request, page.status().message());

  Snapshot snapshot;
  const Needs needs = route->needs;
  if (needs.depth || needs.throughput || (needs.egress && parts.egress != nullptr)) {
    auto pending = net::Offload<Snapshot>(queue_pool, [this, needs] { return Read(needs); });
    snapshot = co_await std::move(pending);
  }
  if (!snapshot.status.ok()) {
    log::Warn("admin request failed: state unreadable",
              {{"path", path}, {"error", snapshot.status.ToString()}});
    Response res = Error(req, http::status::service_unavailable,
                         "state unreadable: " + snapshot.status.message());
    res.set(http::field::retry_after, "5");
    co_return res;
  }
  switch (route->id) {
    case RouteId::kQueues:
      co_return Queues(req, snapshot, *page);
    case RouteId::kQueue:
      co_return QueueOne(req, snapshot, route->type);
    case RouteId::kCapacity:
      co_return Capacity(req, snapshot, *page);
    case RouteId::kSources:
      co_return Sources(req, *page);
    case RouteId::kIntegrations:
      co_return Integrations(req, snapshot, *page);
    case RouteId::kOverview:
      co_return Overview(req, snapshot);
  }
  co_return Error(req, http::status::not_found, "no admin endpoint " + path);
}

std::map<std::string, WindowStats> AdminApi::Impl::Recent() {
  SeriesReadings readings;
  if (parts.metrics != nullptr) {
    for (const SourceView& source : sources) {
      const SourceMetrics* m = parts.metrics->FindSource(source.name);
      if (m == nullptr) continue;
      SeriesReading& reading = readings[SeriesName("source", source.name)];
      reading.events = CounterTotal({m->accepted, m->duplicate, m->unauthorized, m->bad_request,
                                     m->too_large, m->overloaded});
      if (m->duration != nullptr) reading.histogram = m->duration->Snapshot();
    }
    for (const IntegrationView& integration : integrations) {
      const IntegrationMetrics* m = parts.metrics->FindIntegration(integration.name);
      if (m == nullptr) continue;
      SeriesReading& reading = readings[SeriesName("integration", integration.name)];
      reading.events = CounterTotal({m->ok, m->error, m->timeout, m->rate_limited});
      if (m->duration != nullptr) reading.histogram = m->duration->Snapshot();
    }
  }
  return recent.Update(clock.NowMs(), readings);
}

std::map<std::string, TypeDepth> AdminApi::Impl::DepthByType(const Snapshot& snapshot) const {
  std::map<std::string, TypeDepth> by_type;
  for (const auto& [type, limit] : concurrency) by_type[type].type = type;
  for (const TypeDepth& d : snapshot.depth) by_type[d.type] = d;
  return by_type;
}

Response AdminApi::Impl::Queues(const Request& req, const Snapshot& snapshot,
                                const Page& page) const {
  const int64_t now_ms = clock.NowMs();
  std::vector<nlohmann::json> rows;
  for (const auto& [type, d] : DepthByType(snapshot)) {
    nlohmann::json row = {{"job_type", type}};
    row.update(DepthJson(d, now_ms));
    rows.push_back(std::move(row));
  }
  return Answer(req, http::status::ok, Dump(ListJson(rows, page, "job_type")));
}

Response AdminApi::Impl::QueueOne(const Request& req, const Snapshot& snapshot,
                                  const std::string& type) const {
  std::map<std::string, TypeDepth> by_type = DepthByType(snapshot);
  auto it = by_type.find(type);
  if (it == by_type.end()) {
    return Error(req, http::status::not_found, "no job type \"" + type + "\"");
  }
  const TypeDepth& d = it->second;
  TypeThroughput counts;
  counts.type = type;
  counts.window_ms = kCapacityWindowMs;
  for (const TypeThroughput& t : snapshot.throughput) {
    if (t.type == type) counts = t;
  }
  auto configured = concurrency.find(type);
  TypeCapacity capacity =
      ComputeTypeCapacity(counts, d, configured == concurrency.end() ? 0 : configured->second);
  nlohmann::json body = {{"job_type", type}};
  body.update(DepthJson(d, clock.NowMs()));
  body["succeeded"] = d.succeeded;
  body["cancelled"] = d.cancelled;
  body["replayed"] = d.replayed;
  body["oldest_ready_at"] =
      d.oldest_ready_at_ms > 0 ? nlohmann::json(FormatTimestampMs(d.oldest_ready_at_ms)) : nullptr;
  body["capacity"] = CapacityFieldsJson(capacity);
  return Answer(req, http::status::ok, Dump(body));
}

Response AdminApi::Impl::Capacity(const Request& req, const Snapshot& snapshot,
                                  const Page& page) const {
  std::vector<TypeCapacity> capacity =
      ComputeCapacity(snapshot.throughput, snapshot.depth, concurrency, kCapacityWindowMs);
  std::vector<nlohmann::json> rows;
  rows.reserve(capacity.size());
  for (const TypeCapacity& c : capacity) {
    nlohmann::json row = {{"job_type", c.type}};
    row.update(CapacityFieldsJson(c));
    row["ready"] = c.ready;
    row["delayed"] = c.delayed;
    row["in_flight"] = c.in_flight;
    rows.push_back(std::move(row));
  }
  return Answer(req, http::status::ok, Dump(ListJson(rows, page, "job_type")));
}

nlohmann::json AdminApi::Impl::SourceJson(const SourceView& source,
                                          const WindowStats& recent_stats) const {
  const SourceMetrics* m = parts.metrics ? parts.metrics->FindSource(source.name) : nullptr;
  nlohmann::json row = {
      {"name", source.name},
      {"kind", source.kind},
      {"path", source.path},
      {"job", source.job},
      {"secret_fingerprint", source.secret_fingerprint ? nlohmann::json(*source.secret_fingerprint)
                                                       : nlohmann::json(nullptr)},
      {"previous_secret_fingerprint", source.previous_secret_fingerprint
                                          ? nlohmann::json(*source.previous_secret_fingerprint)
                                          : nlohmann::json(nullptr)},
      {"ack_deadline_seconds", std::chrono::duration<double>(source.deadline.deadline).count()},
      {"ack_deadline_assumed", source.deadline.assumed},
      {"window_seconds", recent_stats.seconds},
      {"requests_per_s", recent_stats.rate_per_s},
      {"ack_p50_seconds", Optional(recent_stats.p50_seconds)},
      {"ack_p99_seconds", Optional(recent_stats.p99_seconds)}};
  // Counts since this process started (firebreak_ingress_requests_total).
  if (m != nullptr) {
    row["accepted"] = CounterValue(m->accepted);
    row["duplicate"] = CounterValue(m->duplicate);
    row["rejected"] = {{"unauthorized", CounterValue(m->unauthorized)},
                       {"bad_request", CounterValue(m->bad_request)},
                       {"too_large", CounterValue(m->too_large)},
                       {"overloaded", CounterValue(m->overloaded)}};
  } else {
    row["accepted"] = nullptr;
    row["duplicate"] = nullptr;
    row["rejected"] = nullptr;
  }
  return row;
}

Response AdminApi::Impl::Sources(const Request& req, const Page& page) {
  std::map<std::string, WindowStats> stats = Recent();
  std::map<std::string, nlohmann::json> by_name;
  for (const SourceView& source : sources) {
    by_name[source.name] = SourceJson(source, stats[SeriesName("source", source.name)]);
  }
  std::vector<nlohmann::json> rows;
  for (auto& [name, row] : by_name) rows.push_back(std::move(row));
  return Answer(req, http::status::ok, Dump(ListJson(rows, page, "name")));
}

nlohmann::json AdminApi::Impl::IntegrationJson(const IntegrationView& integration,
                                               const egress::IntegrationSnapshot* live,
                                               const WindowStats& recent_stats) const {
  nlohmann::json rate_limit = nullptr;
  if (integration.rate_limit) {
    rate_limit = {{"rate", integration.rate_limit->rate},
                  {"burst", integration.rate_limit->burst},
                  {"tokens", live ? Optional(live->tokens) : nullptr}};
  }
  nlohmann::json breaker = {
      {"state", live ? nlohmann::json(egress::BreakerStateName(live->breaker)) : nullptr},
      {"since", live ? nlohmann::json(FormatTimestampMs(live->breaker_since_ms)) : nullptr},
      {"failure_rate", live ? nlohmann::json(live->failure_rate) : nullptr},
      {"calls_in_window", live ? nlohmann::json(live->calls_in_window) : nullptr},
      {"opens_at_failure_rate", integration.breaker.failure_rate},
      {"min_calls", integration.breaker.min_calls},
      {"window_seconds", std::chrono::duration<double>(integration.breaker.window).count()}};
  return {{"name", integration.name},
          {"base_url", integration.base_url},
          // False in a process without workers (`ingest`): only the config is known here.
          {"live", live != nullptr},
          {"breaker", std::move(breaker)},
          {"rate_limit", std::move(rate_limit)},
          {"in_flight", live ? nlohmann::json(live->in_flight) : nullptr},
          // "shared": in_flight, breaker and tokens are over every process on the store;
          // in_flight_process is this process's share.
          {"limits", live ? nlohmann::json(live->limits) : nullptr},
          {"in_flight_process", live ? nlohmann::json(live->in_flight_process) : nullptr},
          {"max_concurrency", integration.max_concurrency},
          {"queued", live ? nlohmann::json(live->queued) : nullptr},
          {"max_queue", integration.max_queue},
          {"window_seconds", recent_stats.seconds},
          {"calls_per_s", recent_stats.rate_per_s},
          {"latency_p50_seconds", Optional(recent_stats.p50_seconds)},
          {"latency_p99_seconds", Optional(recent_stats.p99_seconds)}};
}

Response AdminApi::Impl::Integrations(const Request& req, const Snapshot& snapshot,
                                      const Page& page) {
  std::map<std::string, WindowStats> stats = Recent();
  std::map<std::string, nlohmann::json> by_name;
  for (const IntegrationView& integration : integrations) {
    const egress::IntegrationSnapshot* live = nullptr;
    if (snapshot.integrations) {
      for (const auto& [name, s] : *snapshot.integrations) {
        if (name == integration.name) live = &s;
      }
    }
    by_name[integration.name] =
        IntegrationJson(integration, live, stats[SeriesName("integration", integration.name)]);
  }
  std::vector<nlohmann::json> rows;
  for (auto& [name, row] : by_name) rows.push_back(std::move(row));
  return Answer(req, http::status::ok, Dump(ListJson(rows, page, "name")));
}

Response AdminApi::Impl::Overview(const Request& req, const Snapshot& snapshot) {
  const int64_t now_ms = clock.NowMs();
  std::map<std::string, WindowStats> stats = Recent();
  nlohmann::json source_rows = nlohmann::json::array();
  for (const SourceView& source : sources) {
    const WindowStats& s = stats[SeriesName("source", source.name)];
    const double deadline = std::chrono::duration<double>(source.deadline.deadline).count();
    source_rows.push_back(
        {{"name", source.name},
         {"kind", source.kind},
         {"window_seconds", s.seconds},
         {"requests_per_s", s.rate_per_s},
         {"ack_p50_seconds", Optional(s.p50_seconds)},
         {"ack_p99_seconds", Optional(s.p99_seconds)},
         {"ack_deadline_seconds", deadline},
         {"ack_deadline_assumed", source.deadline.assumed},
         // p99 / deadline: near 1 means the platform is about to count timeouts.
         {"ack_p99_of_deadline",
          s.p99_seconds ? nlohmann::json(*s.p99_seconds / deadline) : nlohmann::json(nullptr)}});
  }
  std::vector<TypeCapacity> capacity =
      ComputeCapacity(snapshot.throughput, snapshot.depth, concurrency, kCapacityWindowMs);
  std::map<std::string, TypeDepth> by_type = DepthByType(snapshot);
  nlohmann::json type_rows = nlohmann::json::array();
  int64_t dead_total = 0;
  for (const TypeCapacity& c : capacity) {
    const TypeDepth& d = by_type[c.type];
    dead_total += d.dead;
    nlohmann::json row = {{"job_type", c.type}};
    row.update(DepthJson(d, now_ms));
    row["arrival_rate_per_s"] = c.arrival_rate_per_s;
    row["concurrency_configured"] = c.concurrency_configured;
    row["utilization"] = Optional(c.utilization);
    type_rows.push_back(std::move(row));
  }
  // Open breakers: only known where the egress layer runs (a `run` process).
  nlohmann::json open_breakers = nullptr;
  if (snapshot.integrations) {
    int open = 0;
    for (const auto& [name, s] : *snapshot.integrations) {
      if (s.breaker == egress::BreakerState::kOpen) ++open;
    }
    open_breakers = open;
  }
  // DLQ growth: Queue::Throughput counts arrivals and finished attempts, not
  // dead-letterings, so the store cannot say what the dead count was an hour ago; the
  // answer gives the dead count now (per type and in total) and no growth figure.
  nlohmann::json body = {
      {"generated_at", FormatTimestampMs(now_ms)},
      {"sources", std::move(source_rows)},
      {"job_types", std::move(type_rows)},
      {"dead_total", dead_total},
      {"open_breakers", std::move(open_breakers)},
      {"integrations",
       parts.egress != nullptr ? nlohmann::json(integrations.size()) : nlohmann::json(nullptr)}};
  return Answer(req, http::status::ok, Dump(body));
}

AdminApi::AdminApi(const Config& config, Queue& queue, std::vector<AdminToken> tokens,
                   AdminApiParts parts)
    : impl_(std::make_unique<Impl>(config, queue, std::move(tokens), parts)) {}

AdminApi::~AdminApi() { Stop(); }

bool AdminApi::IsAdminPath(std::string_view target) {
  std::string_view path = PathOf(target);
  return path == kAdminPrefix ||
         (path.size() > kAdminPrefix.size() &&
          path.substr(0, kAdminPrefix.size()) == kAdminPrefix && path[kAdminPrefix.size()] == '/');
}

asio::awaitable<Response> AdminApi::Handle(Request& req) { return impl_->Handle(req); }

Status AdminApi::Listen(const std::string& address, std::chrono::milliseconds read_timeout) {
  net::HttpServerOptions options;
  options.name = "admin";
  options.listen = address;
  options.threads = 1;
  options.max_body = 64 * 1024;  // a bulk operation's filter at most
  options.read_timeout = read_timeout;
  options.max_connections = 256;
  options.max_connections_key = "admin connections";
  Impl& impl = *impl_;
  auto handle = [&impl](Request& req) -> asio::awaitable<Response> {
    return IsAdminPath(req.target()) ? impl.Handle(req) : NotAdmin(req);
  };
  impl.listener = std::make_unique<net::HttpServer>(options, std::move(handle));
  Status started = impl.listener->Start();
  if (!started.ok()) {
    impl.listener.reset();
    return Status(started.code(), "server.admin_listen: " + started.message());
  }
  return Status::Ok();
}

uint16_t AdminApi::port() const {
  return impl_->listener ? impl_->listener->port() : 0;  // 0 after Stop too
}

void AdminApi::Stop() {
  std::call_once(impl_->stopped, [this] {
    if (impl_->listener) impl_->listener->Stop(std::chrono::seconds(1));
    // Queue reads in progress finish first: they resume on the listener's executor.
    impl_->queue_pool.join();
    impl_->listener.reset();  // closes the listening socket too
  });
}

std::vector<AdminToken> AdminTokens(const ServerConfig& server) {
  std::vector<AdminToken> tokens;
  if (server.admin_token) {
    tokens.push_back({kAdminTokenName, server.admin_token->value, AdminScope::kAdmin});
  }
  for (const AdminTokenConfig& token : server.admin_tokens) {
    tokens.push_back({token.name, token.token.value, token.scope});
  }
  return tokens;
}

AdminScope RequiredScope(http::verb method, std::string_view path) {
  path = PathOf(path);
  switch (method) {
    case http::verb::get:
    case http::verb::head:
      return AdminScope::kRead;
    case http::verb::post:
    case http::verb::put:
    case http::verb::patch: {
      // Logging out of the console changes nothing but the caller's own cookie.
      if (path == kLogoutPath) return AdminScope::kRead;
      // A purge (POST .../purge) destroys jobs as DELETE does.
      constexpr std::string_view kPurge = "/purge";
      bool purge =
          path.size() >= kPurge.size() && path.substr(path.size() - kPurge.size()) == kPurge;
      return purge ? AdminScope::kAdmin : AdminScope::kOperate;
    }
    default:
      return AdminScope::kAdmin;  // DELETE, and whatever a later endpoint may accept
  }
}

std::map<std::string, int> ConfiguredConcurrency(const Config& config) {
  std::map<std::string, int> out;
  for (const JobConfig& job : config.jobs) out[job.type] = job.concurrency;
  for (const IntegrationConfig& integration : config.integrations) {
    JobConfig actions = ActionJobConfig(integration);
    out[actions.type] = actions.concurrency;
  }
  return out;
}

AckDeadline AckDeadlineOf(const SourceConfig& source) {
  using std::chrono::milliseconds;
  if (source.preset != nullptr) return {milliseconds(3'000), true};
  switch (source.kind) {
    case SourceKind::kSlack:
    case SourceKind::kDiscord:
      return {milliseconds(3'000), false};
    case SourceKind::kTelegram:
    case SourceKind::kGithub:
    case SourceKind::kMeta:
      return {milliseconds(10'000), false};
    case SourceKind::kHmac:
      return {milliseconds(3'000), true};
  }
  return {milliseconds(3'000), true};
}

std::string SecretFingerprint(std::string_view secret) { return Sha256Hex(secret).substr(0, 8); }

}  // namespace firebreak
