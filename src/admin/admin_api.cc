#include "admin/admin_api.h"

#include <boost/asio/thread_pool.hpp>
#include <boost/url/parse.hpp>
#include <charconv>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <vector>

#include "common/crypto.h"
#include "common/http_util.h"
#include "common/json_string.h"
#include "net/offload.h"
#include "queue/capacity.h"
#include "telemetry/log.h"
#include "worker/actions.h"

namespace firebreak {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace urls = boost::urls;
using net::Request;
using net::Response;

constexpr std::string_view kAdminPrefix = "/admin";
constexpr std::string_view kApiPrefix = "/admin/api/v1";
constexpr int kDefaultLimit = 50;
constexpr int kMaxLimit = 1000;
// Queue reads in parallel; each holds one store connection (sqlite: the read
// connection's lock, redis: the admin connection), so more would only queue there.
constexpr int kQueueThreads = 2;

std::string_view PathOf(std::string_view target) { return target.substr(0, target.find('?')); }

std::string Dump(const nlohmann::json& json) {
  // Job types come from the store: bytes that are not UTF-8 must not throw.
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Response Answer(const Request& req, http::status status, std::string body) {
  Response res = net::MakeResponse(req, status, std::move(body));
  res.set(http::field::cache_control, "no-store");
  return res;
}

Response Error(const Request& req, http::status status, std::string_view error) {
  return Answer(req, status, ErrorJson(error));
}

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
  std::string cursor;  // the last job type of the previous page; "" = from the start
};

Result<Page> ParsePage(std::string_view target) {
  auto url = urls::parse_origin_form(target);
  if (!url) return InvalidArgument("bad request target");
  Page page;
  for (auto param : url->params()) {
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

// The list envelope of DESIGN §7 over rows sorted by job_type: the page after
// `page.cursor`.
nlohmann::json ListJson(const std::vector<nlohmann::json>& rows, const Page& page) {
  nlohmann::json items = nlohmann::json::array();
  size_t i = 0;
  if (!page.cursor.empty()) {
    while (i < rows.size() && rows[i]["job_type"].get<std::string>() <= page.cursor) ++i;
  }
  for (; i < rows.size() && static_cast<int>(items.size()) < page.limit; ++i) {
    items.push_back(rows[i]);
  }
  nlohmann::json next = nullptr;
  if (i < rows.size() && !items.empty()) next = items.back()["job_type"];
  return {{"items", std::move(items)},
          {"next_cursor", std::move(next)},
          {"total_estimate", rows.size()}};
}

// What the admin listener answers outside /admin.
asio::awaitable<Response> NotAdmin(Request& req) {
  co_return Error(req, http::status::not_found, "not found (this listener serves /admin only)");
}

// One read of the queue for a request, taken on a queue thread.
struct Snapshot {
  Status status;
  std::vector<TypeDepth> depth;
  std::vector<TypeThroughput> throughput;
};

}  // namespace

struct AdminApi::Impl {
  Impl(const Config& config, Queue& q, std::string token)
      : queue(q),
        token_digest(token.empty() ? "" : Sha256Hex(token)),
        concurrency(ConfiguredConcurrency(config)) {}

  bool Authorized(const Request& req) const {
    std::string_view presented = BearerToken(req);
    if (token_digest.empty() || presented.empty()) return false;
    // Digests have one length, so the comparison does not leak the token's either.
    return ConstantTimeEquals(Sha256Hex(presented), token_digest);
  }

  asio::awaitable<Response> Handle(Request& req);
  Response Queues(const Request& req, const Snapshot& snapshot, const Page& page) const;
  Response Capacity(const Request& req, const Snapshot& snapshot, const Page& page) const;

  Queue& queue;
  const std::string token_digest;  // SHA-256 hex of the token; "" = refuse everything
  const std::map<std::string, int> concurrency;
  asio::thread_pool queue_pool{kQueueThreads};
  std::unique_ptr<net::HttpServer> listener;  // server.admin_listen
  std::once_flag stopped;
};

asio::awaitable<Response> AdminApi::Impl::Handle(Request& req) {
  const std::string path(PathOf(req.target()));
  if (!Authorized(req)) {
    log::Warn("admin request refused: missing or wrong bearer token", {{"path", path}});
    Response res = Error(req, http::status::unauthorized,
                         "unauthorized: send Authorization: Bearer <server.admin_token>");
    res.set(http::field::www_authenticate, "Bearer realm=\"firebreak admin\"");
    co_return res;
  }
  enum class Route { kQueues, kCapacity };
  Route route;
  if (path == std::string(kApiPrefix) + "/queues") {
    route = Route::kQueues;
  } else if (path == std::string(kApiPrefix) + "/capacity") {
    route = Route::kCapacity;
  } else {
    co_return Error(req, http::status::not_found, "no admin endpoint " + path);
  }
  if (req.method() != http::verb::get) {
    Response res = Error(req, http::status::method_not_allowed, "use GET");
    res.set(http::field::allow, "GET");
    co_return res;
  }
  Result<Page> page = ParsePage(req.target());
  if (!page.ok()) co_return Error(req, http::status::bad_request, page.status().message());

  const bool with_throughput = route == Route::kCapacity;
  auto read = [this, with_throughput] {
    Snapshot snapshot;
    try {
      Result<std::vector<TypeDepth>> depth = queue.Stats();
      if (!depth.ok()) {
        snapshot.status = depth.status();
        return snapshot;
      }
      snapshot.depth = std::move(depth).value();
      if (with_throughput) {
        Result<std::vector<TypeThroughput>> counts = queue.Throughput(kCapacityWindowMs);
        if (!counts.ok()) {
          snapshot.status = counts.status();
          return snapshot;
        }
        snapshot.throughput = std::move(counts).value();
      }
    } catch (const std::exception& e) {
      snapshot.status = Internal(std::string("queue read threw: ") + e.what());
    }
    return snapshot;
  };
  auto pending = net::Offload<Snapshot>(queue_pool, std::move(read));
  Snapshot snapshot = co_await std::move(pending);
  if (!snapshot.status.ok()) {
    log::Warn("admin request failed: queue unreadable",
              {{"path", path}, {"error", snapshot.status.ToString()}});
    Response res = Error(req, http::status::service_unavailable,
                         "queue unreachable: " + snapshot.status.message());
    res.set(http::field::retry_after, "5");
    co_return res;
  }
  co_return route == Route::kQueues ? Queues(req, snapshot, *page) : Capacity(req, snapshot, *page);
}

Response AdminApi::Impl::Queues(const Request& req, const Snapshot& snapshot,
                                const Page& page) const {
  // Every configured type, and every type the store has jobs of (e.g. one removed from
  // the config with jobs left).
  std::map<std::string, TypeDepth> by_type;
  for (const auto& [type, limit] : concurrency) by_type[type].type = type;
  for (const TypeDepth& d : snapshot.depth) by_type[d.type] = d;
  std::vector<nlohmann::json> rows;
  rows.reserve(by_type.size());
  for (const auto& [type, d] : by_type) {
    rows.push_back({{"job_type", type},
                    {"ready", d.ready},
                    {"delayed", d.delayed},
                    {"in_flight", d.in_flight},
                    {"dead", d.dead}});
  }
  return Answer(req, http::status::ok, Dump(ListJson(rows, page)));
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
  return Answer(req, http::status::ok, Dump(ListJson(rows, page)));
}

AdminApi::AdminApi(const Config& config, Queue& queue, std::string token)
    : impl_(std::make_unique<Impl>(config, queue, std::move(token))) {}

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
  options.max_body = 64 * 1024;  // no endpoint takes a body yet
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

std::map<std::string, int> ConfiguredConcurrency(const Config& config) {
  std::map<std::string, int> out;
  for (const JobConfig& job : config.jobs) out[job.type] = job.concurrency;
  for (const IntegrationConfig& integration : config.integrations) {
    JobConfig actions = ActionJobConfig(integration);
    out[actions.type] = actions.concurrency;
  }
  return out;
}

}  // namespace firebreak
