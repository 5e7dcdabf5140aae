#include "admin/job_routes.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <chrono>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "admin/admin_http.h"
#include "admin/job_actions.h"
#include "admin/job_view.h"
#include "common/units.h"
#include "net/offload.h"

namespace firebreak {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using admin::Answer;
using admin::Dump;
using admin::Error;
using admin::StatusError;
using net::Request;
using net::Response;

// The most dead jobs one grouped read looks at.
constexpr int64_t kMaxGroupScan = 20'000;
// /events: open streams at most, how long one lasts (the client reconnects: EventSource
// does by itself), how often it looks, and the longest silence (a comment line keeps
// proxies from closing an idle stream).
constexpr int kMaxStreams = 32;
constexpr auto kStreamLifetime = std::chrono::hours(1);
constexpr auto kStreamTick = std::chrono::seconds(1);
constexpr auto kStreamPing = std::chrono::seconds(15);

std::string SseEvent(std::string_view name, const nlohmann::json& data) {
  return "event: " + std::string(name) + "\ndata: " + Dump(data) + "\n\n";
}

// "/jobs/ID/retry" → {"jobs", "ID", "retry"}.
std::vector<std::string> Segments(std::string_view path) {
  std::vector<std::string> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    size_t end = path.find('/');
    out.emplace_back(path.substr(0, end));
    if (end == std::string_view::npos) break;
    path.remove_prefix(end);
  }
  return out;
}

Response MethodNotAllowed(const Request& req, const char* allow) {
  Response res = Error(req, http::status::method_not_allowed, std::string("use ") + allow);
  res.set(http::field::allow, allow);
  return res;
}

// A queue call's value, or its failure (also an exception in it) as a Status.
template <typename T, typename Fn>
T Guarded(Fn fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return T(Internal(std::string("queue call threw: ") + e.what()));
  }
}

nlohmann::json PageJson(nlohmann::json items, const std::string& next_cursor,
                        int64_t total_estimate) {
  return {{"items", std::move(items)},
          {"next_cursor",
           next_cursor.empty() ? nlohmann::json(nullptr) : nlohmann::json(next_cursor)},
          {"total_estimate", total_estimate}};
}

// The filter of a bulk request: the body's "filter" object, or (no body) the query.
Result<BulkRequest> ParseBulkRequest(const Request& req, BulkAction action) {
  BulkRequest request;
  request.action = action;
  std::map<std::string, std::string> params;
  const std::string& body = req.body();
  if (!body.empty()) {
    nlohmann::json json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!json.is_object()) return InvalidArgument("the body must be a JSON object");
    for (const auto& [key, value] : json.items()) {
      if (key == "filter") {
        if (!value.is_object()) return InvalidArgument("filter must be an object");
        for (const auto& [fkey, fvalue] : value.items()) {
          if (!fvalue.is_string() && !fvalue.is_number_integer()) {
            return InvalidArgument("filter." + fkey + " must be a string");
          }
          params[fkey] = fvalue.is_string() ? fvalue.get<std::string>() : fvalue.dump();
        }
      } else if (key == "dry_run") {
        if (!value.is_boolean()) return InvalidArgument("dry_run must be true or false");
        request.dry_run = value.get<bool>();
      } else if (key == "rate_per_s") {
        if (!value.is_number() || value.get<double>() < 0) {
          return InvalidArgument("rate_per_s must be a number >= 0");
        }
        request.rate_per_s = value.get<double>();
      } else {
        return InvalidArgument("unknown field \"" + key + "\" (filter, dry_run, rate_per_s)");
      }
    }
  } else {
    Result<std::map<std::string, std::string>> query = admin::QueryParams(req.target());
    if (!query.ok()) return query.status();
    params = std::move(query).value();
    if (auto it = params.find("dry_run"); it != params.end()) {
      request.dry_run = it->second == "true" || it->second == "1";
      params.erase(it);
    }
  }
  Result<DeadFilter> filter = DeadFilterFromParams(std::move(params));
  if (!filter.ok()) return filter.status();
  request.filter = std::move(filter).value();
  return request;
}

}  // namespace

JobRoutes::JobRoutes(Queue& queue, const Clock& clock, asio::thread_pool& pool)
    : queue_(queue), clock_(clock), pool_(pool), operations_(queue, clock) {}

bool JobRoutes::Serves(std::string_view api_path) {
  std::vector<std::string> s = Segments(api_path);
  if (s.empty()) return false;
  if (s[0] == "jobs" || s[0] == "dead" || s[0] == "operations" || s[0] == "audit") return true;
  if ((s[0] == "events" || s[0] == "history") && s.size() == 1) return true;
  return s[0] == "queues" && s.size() == 3 && (s[2] == "pause" || s[2] == "resume");
}

asio::awaitable<Response> JobRoutes::Handle(Request& req, std::string api_path,
                                            std::string actor) {
  const std::vector<std::string> s = Segments(api_path);
  const http::verb method = req.method();
  const bool get = method == http::verb::get;
  const bool post = method == http::verb::post;
  const bool del = method == http::verb::delete_;
  if (!get) {
    // A change here may move dead jobs without changing their count (one replayed, one
    // died): the next look groups afresh.
    std::lock_guard lock(groups_mu_);
    groups_.clear();
  }

  if (s[0] == "jobs" && s.size() == 1) {
    if (!get) co_return MethodNotAllowed(req, "GET");
    co_return co_await Jobs(req);
  }
  if (s[0] == "jobs" && s.size() == 2) {
    if (!get) co_return MethodNotAllowed(req, "GET");
    co_return co_await Job(req, s[1]);
  }
  if (s[0] == "jobs" && s.size() == 3 && (s[2] == "retry" || s[2] == "cancel")) {
    if (!post) co_return MethodNotAllowed(req, "POST");
    const std::string id = s[1];
    if (s[2] == "retry") {
      auto pending = net::Offload<Result<RetryOutcome>>(pool_, [this, id, actor] {
        return Guarded<Result<RetryOutcome>>([&] { return RetryJob(queue_, id, actor); });
      });
      Result<RetryOutcome> retried = co_await std::move(pending);
      if (!retried.ok()) co_return StatusError(req, retried.status());
      co_return Answer(req, http::status::ok,
                       Dump({{"ok", true}, {"job_id", retried->job_id}, {"rerun", retried->rerun}}));
    }
    auto pending = net::Offload<Status>(pool_, [this, id, actor] {
      return Guarded<Status>([&] { return CancelJob(queue_, id, actor); });
    });
    Status cancelled = co_await std::move(pending);
    if (!cancelled.ok()) co_return StatusError(req, cancelled);
    co_return Answer(req, http::status::ok, Dump({{"ok", true}, {"job_id", id}}));
  }
  if (s[0] == "dead" && s.size() == 1) {
    if (get) co_return co_await Dead(req);
    if (del) co_return co_await StartBulk(req, BulkAction::kDelete, actor);
    co_return MethodNotAllowed(req, "GET, DELETE");
  }
  if (s[0] == "dead" && s.size() == 2 && s[1] == "replay") {
    if (!post) co_return MethodNotAllowed(req, "POST");
    co_return co_await StartBulk(req, BulkAction::kReplay, actor);
  }
  if (s[0] == "dead" && (s.size() == 2 || (s.size() == 3 && s[2] == "replay"))) {
    const std::string id = s[1];
    const bool replay = s.size() == 3;
    if (replay ? !post : !del) co_return MethodNotAllowed(req, replay ? "POST" : "DELETE");
    auto pending = net::Offload<Result<RetryOutcome>>(pool_, [this, id, actor, replay] {
      return Guarded<Result<RetryOutcome>>([&]() -> Result<RetryOutcome> {
        if (!replay) {
          Status st = DeleteDeadJob(queue_, id, actor);
          if (!st.ok()) return st;
          return RetryOutcome{id, false};
        }
        Result<firebreak::Job> job = queue_.GetJob(id);
        if (job.ok() && job->state != JobState::kDead) return NotFound("no dead job " + id);
        return RetryJob(queue_, id, actor);
      });
    });
    Result<RetryOutcome> done = co_await std::move(pending);
    if (!done.ok()) co_return StatusError(req, done.status());
    nlohmann::json body = {{"ok", true}, {"job_id", done->job_id}};
    if (replay) body["replay_of"] = id;
    co_return Answer(req, http::status::ok, Dump(body));
  }
  if (s[0] == "operations") {
    if (s.size() == 1) {
      if (!get) co_return MethodNotAllowed(req, "GET");
      nlohmann::json items = nlohmann::json::array();
      for (const OperationView& op : operations_.List()) items.push_back(OperationJson(op));
      const int64_t count = static_cast<int64_t>(items.size());
      co_return Answer(req, http::status::ok, Dump(PageJson(std::move(items), "", count)));
    }
    if (s.size() == 2) {
      if (!get) co_return MethodNotAllowed(req, "GET");
      std::optional<OperationView> op = operations_.Get(s[1]);
      if (!op) {
        co_return Error(req, http::status::not_found,
                        "no operation " + s[1] + " in this process (operations are kept in the "
                                                 "memory of the process that started them)");
      }
      co_return Answer(req, http::status::ok, Dump(OperationJson(*op)));
    }
    if (s.size() == 3 && s[2] == "cancel") {
      if (!post) co_return MethodNotAllowed(req, "POST");
      if (!operations_.Cancel(s[1])) {
        co_return Error(req, http::status::not_found, "no operation " + s[1]);
      }
      co_return Answer(req, http::status::ok, Dump(OperationJson(*operations_.Get(s[1]))));
    }
  }
  if (s[0] == "history" && s.size() == 1) {
    if (!get) co_return MethodNotAllowed(req, "GET");
    co_return co_await History(req);
  }
  if (s[0] == "audit" && s.size() == 1) {
    if (!get) co_return MethodNotAllowed(req, "GET");
    Result<std::map<std::string, std::string>> params = admin::QueryParams(req.target());
    int limit = 0;
    std::string cursor;
    Status page_ok = params.ok() ? admin::TakePage(*params, limit, cursor) : params.status();
    if (!page_ok.ok()) co_return Error(req, http::status::bad_request, page_ok.message());
    auto pending = net::Offload<Result<AuditPage>>(pool_, [this, limit, cursor] {
      return Guarded<Result<AuditPage>>([&] { return queue_.ListAudit(limit, cursor); });
    });
    Result<AuditPage> page = co_await std::move(pending);
    if (!page.ok()) co_return StatusError(req, page.status());
    nlohmann::json items = nlohmann::json::array();
    for (const AuditEntry& e : page->items) {
      nlohmann::json detail = nlohmann::json::parse(e.detail_json, nullptr, false);
      items.push_back({{"at", FormatTimestampMs(e.at_ms)},
                       {"actor", e.actor},
                       {"action", e.action},
                       {"target", e.target},
                       {"count", e.count},
                       {"detail", detail.is_discarded() ? nlohmann::json(e.detail_json) : detail}});
    }
    const int64_t count = static_cast<int64_t>(items.size());
    co_return Answer(req, http::status::ok, Dump(PageJson(std::move(items), page->next_cursor,
                                                          count)));
  }
  if (s[0] == "events") {
    if (!get) co_return MethodNotAllowed(req, "GET");
    if (streams_.fetch_add(1) >= kMaxStreams) {
      --streams_;
      co_return Error(req, http::status::too_many_requests,
                      std::to_string(kMaxStreams) + " event streams are open already");
    }
    // The slot is given back when the stream ends or is never started (the connection
    // failed before it): the handler lives as long as the request.
    std::shared_ptr<void> slot(nullptr, [this](void*) { --streams_; });
    req.stream = [this, slot](net::EventStream& out) -> asio::awaitable<void> {
      co_await StreamEvents(out);
    };
    Response res = Answer(req, http::status::ok, "");
    res.set(http::field::content_type, "text/event-stream");
    res.set("X-Accel-Buffering", "no");  // nginx in front: do not buffer the stream
    co_return res;
  }
  if (s[0] == "queues" && s.size() == 3) {
    if (!post) co_return MethodNotAllowed(req, "POST");
    const std::string type = s[1];
    const bool paused = s[2] == "pause";
    auto pending = net::Offload<Status>(pool_, [this, type, paused, actor] {
      return Guarded<Status>([&] { return PauseJobType(queue_, type, paused, actor); });
    });
    Status changed = co_await std::move(pending);
    if (!changed.ok()) co_return StatusError(req, changed);
    co_return Answer(req, http::status::ok,
                     Dump({{"ok", true}, {"job_type", type}, {"paused", paused}}));
  }
  co_return Error(req, http::status::not_found, "no admin endpoint /admin/api/v1" + api_path);
}

// Events, each `event: <name>` with one JSON object as `data`:
//   queue      a job type's depth whenever it changed (and every type at the start)
//   operation  a bulk operation's view whenever its progress or state changed
//   audit      each new audit log entry
//   error      the store could not be read this second
// Per-job state changes are not streamed: the store keeps no change feed, and the
// aggregate is what a live overview needs.
asio::awaitable<void> JobRoutes::StreamEvents(net::EventStream& out) {
  struct Look {
    Status status;
    std::vector<TypeDepth> depth;
    std::vector<AuditEntry> audit;  // newest first
  };
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor);
  std::map<std::string, std::string> last_queue;      // type -> its last data line
  std::map<std::string, std::string> last_operation;  // id -> its last data line
  int64_t last_audit_seq = -1;  // -1: not read yet (old entries are not replayed)
  const auto end = std::chrono::steady_clock::now() + kStreamLifetime;
  auto last_sent = std::chrono::steady_clock::now();
  if (!co_await out.Send("retry: 3000\n: firebreak admin events\n\n")) co_return;
  while (std::chrono::steady_clock::now() < end && !out.stopping()) {
    auto pending = net::Offload<Look>(pool_, [this] {
      Look look;
      try {
        Result<std::vector<TypeDepth>> depth = queue_.Stats();
        Result<AuditPage> audit = queue_.ListAudit(50, "");
        look.status = !depth.ok() ? depth.status() : audit.status();
        if (depth.ok()) look.depth = std::move(depth).value();
        if (audit.ok()) look.audit = std::move(audit->items);
      } catch (const std::exception& e) {
        look.status = Internal(std::string("queue read threw: ") + e.what());
      }
      return look;
    });
    Look look = co_await std::move(pending);
    std::string batch;
    if (!look.status.ok()) {
      batch += SseEvent("error", {{"error", "queue unreachable: " + look.status.message()}});
    }
    for (const TypeDepth& d : look.depth) {
      nlohmann::json data = {{"job_type", d.type},       {"ready", d.ready},
                             {"delayed", d.delayed},     {"in_flight", d.in_flight},
                             {"dead", d.dead},           {"succeeded", d.succeeded},
                             {"cancelled", d.cancelled}, {"replayed", d.replayed},
                             {"paused", d.paused}};
      std::string line = Dump(data);
      if (last_queue[d.type] != line) {
        last_queue[d.type] = line;
        batch += "event: queue\ndata: " + line + "\n\n";
      }
    }
    for (auto it = look.audit.rbegin(); it != look.audit.rend(); ++it) {
      if (last_audit_seq >= 0 && it->seq > last_audit_seq) {
        nlohmann::json detail = nlohmann::json::parse(it->detail_json, nullptr, false);
        batch += SseEvent("audit", {{"at", FormatTimestampMs(it->at_ms)},
                                    {"actor", it->actor},
                                    {"action", it->action},
                                    {"target", it->target},
                                    {"count", it->count},
                                    {"detail", detail.is_discarded() ? nlohmann::json()
                                                                     : detail}});
      }
    }
    if (look.status.ok()) {
      last_audit_seq = look.audit.empty() ? std::max<int64_t>(last_audit_seq, 0)
                                          : std::max(last_audit_seq, look.audit.front().seq);
    }
    for (const OperationView& op : operations_.List()) {
      std::string line = Dump(OperationJson(op));
      if (last_operation[op.id] != line) {
        last_operation[op.id] = line;
        batch += "event: operation\ndata: " + line + "\n\n";
      }
    }
    const auto now = std::chrono::steady_clock::now();
    if (batch.empty() && now - last_sent >= kStreamPing) batch = ": ping\n\n";
    if (!batch.empty()) {
      if (!co_await out.Send(std::move(batch))) co_return;
      last_sent = now;
    }
    timer.expires_after(kStreamTick);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
  }
}

asio::awaitable<Response> JobRoutes::History(Request& req) {
  constexpr int64_t kHourMs = 3600 * 1000;
  constexpr int64_t kFreshMs = 30 * 1000;
  Result<std::map<std::string, std::string>> params = admin::QueryParams(req.target());
  if (!params.ok()) co_return Error(req, http::status::bad_request, params.status().message());
  int hours = 24;
  if (auto it = params->find("hours"); it != params->end()) {
    const std::string& v = it->second;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), hours);
    if (ec != std::errc() || end != v.data() + v.size() || hours < 1 || hours > 168) {
      co_return Error(req, http::status::bad_request, "hours must be 1..168");
    }
  }
  const int64_t now_ms = clock_.NowMs();
  {
    std::lock_guard lock(history_mu_);
    auto cached = history_.find(hours);
    if (cached != history_.end() && now_ms - cached->second.at_ms < kFreshMs) {
      co_return Answer(req, http::status::ok, cached->second.body);
    }
  }
  // Whole hours, the last one the current hour so far.
  const int64_t from_ms = (now_ms / kHourMs - (hours - 1)) * kHourMs;
  auto pending = net::Offload<Result<std::vector<HistoryBucket>>>(pool_, [this, from_ms, hours] {
    return Guarded<Result<std::vector<HistoryBucket>>>(
        [&] { return queue_.History(from_ms, kHourMs, hours); });
  });
  Result<std::vector<HistoryBucket>> buckets = co_await std::move(pending);
  if (!buckets.ok()) co_return StatusError(req, buckets.status());
  nlohmann::json items = nlohmann::json::array();
  for (const HistoryBucket& bucket : *buckets) {
    items.push_back({{"start", FormatTimestampMs(bucket.start_ms)},
                     {"finished", bucket.finished},
                     {"dead", bucket.dead}});
  }
  std::string body = Dump({{"bucket_seconds", kHourMs / 1000},
                           {"generated_at", FormatTimestampMs(now_ms)},
                           {"items", std::move(items)}});
  {
    std::lock_guard lock(history_mu_);
    history_[hours] = {now_ms, body};
  }
  co_return Answer(req, http::status::ok, std::move(body));
}

asio::awaitable<Response> JobRoutes::Jobs(Request& req) {
  Result<std::map<std::string, std::string>> params = admin::QueryParams(req.target());
  if (!params.ok()) co_return Error(req, http::status::bad_request, params.status().message());
  int limit = 0;
  std::string cursor;
  if (Status st = admin::TakePage(*params, limit, cursor); !st.ok()) {
    co_return Error(req, http::status::bad_request, st.message());
  }
  Result<JobFilter> filter = JobFilterFromParams(*params);
  if (!filter.ok()) co_return Error(req, http::status::bad_request, filter.status().message());
  auto pending = net::Offload<Result<JobPage>>(pool_, [this, f = *filter, limit, cursor] {
    return Guarded<Result<JobPage>>([&] { return queue_.ListJobs(f, limit, cursor); });
  });
  Result<JobPage> page = co_await std::move(pending);
  if (!page.ok()) co_return StatusError(req, page.status());
  nlohmann::json items = nlohmann::json::array();
  for (const firebreak::Job& job : page->items) items.push_back(JobSummaryJson(job));
  co_return Answer(req, http::status::ok,
                   Dump(PageJson(std::move(items), page->next_cursor, page->total_estimate)));
}

asio::awaitable<Response> JobRoutes::Job(Request& req, std::string id) {
  auto pending = net::Offload<Result<nlohmann::json>>(pool_, [this, id] {
    return Guarded<Result<nlohmann::json>>([&] { return JobStoryJson(queue_, id); });
  });
  Result<nlohmann::json> job = co_await std::move(pending);
  if (!job.ok()) co_return StatusError(req, job.status());
  co_return Answer(req, http::status::ok, Dump(*job));
}

asio::awaitable<Response> JobRoutes::Dead(Request& req) {
  Result<std::map<std::string, std::string>> params = admin::QueryParams(req.target());
  if (!params.ok()) co_return Error(req, http::status::bad_request, params.status().message());
  int limit = 0;
  std::string cursor;
  if (Status st = admin::TakePage(*params, limit, cursor); !st.ok()) {
    co_return Error(req, http::status::bad_request, st.message());
  }
  bool grouped = false;
  if (auto it = params->find("group"); it != params->end()) {
    if (it->second != "fingerprint") {
      co_return Error(req, http::status::bad_request, "group must be \"fingerprint\"");
    }
    grouped = true;
    params->erase(it);
  }
  Result<DeadFilter> filter = DeadFilterFromParams(*params);
  if (!filter.ok()) co_return Error(req, http::status::bad_request, filter.status().message());
  if (grouped) {
    struct Groups {
      Status status;
      std::vector<DeadGroup> groups;
      int64_t scanned = 0;
      int64_t dead_total = 0;
      std::optional<std::string> cached;
    };
    std::string cache_key;
    for (const auto& [key, value] : *params) cache_key += key + "=" + value + "&";
    const int64_t now_ms = clock_.NowMs();
    auto pending = net::Offload<Groups>(pool_, [this, f = *filter, cache_key, now_ms] {
      constexpr int64_t kFreshMs = 10'000;
      Groups out;
      try {
        // The dead count (from indexes: ~1 ms) tells whether a cached answer still holds.
        Result<std::vector<TypeDepth>> depth = queue_.Stats();
        if (!depth.ok()) {
          out.status = depth.status();
          return out;
        }
        for (const TypeDepth& d : *depth) out.dead_total += d.dead;
        {
          std::lock_guard lock(groups_mu_);
          auto it = groups_.find(cache_key);
          if (it != groups_.end() && now_ms - it->second.at_ms < kFreshMs &&
              it->second.dead_total == out.dead_total) {
            out.cached = it->second.body;
            return out;
          }
        }
        out.status = GroupDead(queue_, f, kMaxGroupScan, out.groups, out.scanned);
      } catch (const std::exception& e) {
        out.status = Internal(std::string("queue call threw: ") + e.what());
      }
      return out;
    });
    Groups groups = co_await std::move(pending);
    if (!groups.status.ok()) co_return StatusError(req, groups.status);
    if (groups.cached) co_return Answer(req, http::status::ok, std::move(*groups.cached));
    nlohmann::json items = nlohmann::json::array();
    for (const DeadGroup& g : groups.groups) {
      items.push_back({{"fingerprint", g.fingerprint},
                       {"count", g.count},
                       {"sample_error", g.sample_error},
                       {"sample_job_id", g.sample_job_id},
                       {"newest_at", FormatTimestampMs(g.newest_at_ms)},
                       {"oldest_at", FormatTimestampMs(g.oldest_at_ms)},
                       {"job_types", g.types}});
    }
    nlohmann::json body = PageJson(std::move(items), "", groups.scanned);
    body["scanned"] = groups.scanned;
    body["complete"] = groups.scanned < kMaxGroupScan;
    std::string text = Dump(body);
    {
      std::lock_guard lock(groups_mu_);
      if (groups_.size() >= 64) groups_.clear();  // many filters: keep memory bounded
      groups_[cache_key] = {now_ms, groups.dead_total, text};
    }
    co_return Answer(req, http::status::ok, std::move(text));
  }
  // A list page: the dead jobs of the filter; a fingerprint is checked per job.
  auto pending = net::Offload<Result<JobPage>>(pool_, [this, f = *filter, limit, cursor] {
    return Guarded<Result<JobPage>>([&]() -> Result<JobPage> {
      Result<JobPage> page = queue_.ListJobs(f.jobs, limit, cursor);
      if (!page.ok() || f.fingerprint.empty()) return page;
      std::erase_if(page->items, [&](const firebreak::Job& job) {
        return ErrorFingerprint(job.last_error) != f.fingerprint;
      });
      return page;
    });
  });
  Result<JobPage> page = co_await std::move(pending);
  if (!page.ok()) co_return StatusError(req, page.status());
  nlohmann::json items = nlohmann::json::array();
  for (const firebreak::Job& job : page->items) items.push_back(JobSummaryJson(job));
  co_return Answer(req, http::status::ok,
                   Dump(PageJson(std::move(items), page->next_cursor, page->total_estimate)));
}

asio::awaitable<Response> JobRoutes::StartBulk(Request& req, BulkAction action,
                                               std::string actor) {
  Result<BulkRequest> request = ParseBulkRequest(req, action);
  if (!request.ok()) co_return Error(req, http::status::bad_request, request.status().message());
  request->actor = std::move(actor);
  Result<OperationView> op = operations_.Start(std::move(request).value());
  if (!op.ok()) co_return StatusError(req, op.status());
  Response res = Answer(req, http::status::accepted, Dump(OperationJson(*op)));
  res.set(http::field::location, "/admin/api/v1/operations/" + op->id);
  co_return res;
}

}  // namespace firebreak
