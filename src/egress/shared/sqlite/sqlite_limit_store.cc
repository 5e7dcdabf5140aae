#include "egress/shared/sqlite/sqlite_limit_store.h"

#include <charconv>

namespace firebreak::egress {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

constexpr char kSchema[] = R"SQL(
CREATE TABLE IF NOT EXISTS leases(
  integration TEXT NOT NULL, token TEXT NOT NULL, expires_ms INTEGER NOT NULL,
  PRIMARY KEY(integration, token)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rate(integration TEXT PRIMARY KEY, tat_us INTEGER NOT NULL)
  WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS breaker(
  integration TEXT PRIMARY KEY, state INTEGER NOT NULL, open_until_ms INTEGER NOT NULL,
  probe_until_ms INTEGER NOT NULL, buckets TEXT NOT NULL) WITHOUT ROWID;
)SQL";

int64_t SystemNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string EncodeBuckets(const SharedBreakerRow& row) {
  std::string out;
  for (const SharedBreakerRow::Bucket& b : row.buckets) {
    out += std::to_string(b.start_ms) + "," + std::to_string(b.calls) + "," +
           std::to_string(b.failures) + ";";
  }
  return out;
}

void DecodeBuckets(const std::string& text, SharedBreakerRow& row) {
  row.buckets = {};
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (SharedBreakerRow::Bucket& b : row.buckets) {
    int64_t* fields[] = {&b.start_ms, &b.calls, &b.failures};
    for (int64_t* field : fields) {
      auto [next, ec] = std::from_chars(p, end, *field);
      if (ec != std::errc()) {
        row.buckets = {};  // unreadable: an empty window rather than a wrong one
        return;
      }
      p = next < end ? next + 1 : next;  // skip ',' or ';'
    }
  }
}

struct SqliteLimitStore::Statements {
  sqlite::Statement begin, commit, rollback;
  sqlite::Statement drop_expired, count_live, insert_lease, delete_lease, renew_lease;
  sqlite::Statement get_tat, put_tat;
  sqlite::Statement get_breaker, put_breaker;
};

SqliteLimitStore::SqliteLimitStore(std::string path, milliseconds timeout,
                                   std::function<int64_t()> now_us)
    : path_(std::move(path)),
      timeout_(timeout),
      now_us_(now_us ? std::move(now_us) : std::function<int64_t()>(SystemNowUs)) {}

SqliteLimitStore::~SqliteLimitStore() {
  statements_.reset();  // statements before their connection
  db_.reset();
}

Status SqliteLimitStore::Open() {
  auto db = sqlite::Connection::Open(path_, static_cast<int>(timeout_.count()));
  if (!db.ok()) return Unavailable("shared limits " + path_ + ": " + db.status().message());
  std::unique_ptr<sqlite::Connection> conn = std::move(db).value();
  auto fail = [&](const Status& s) {
    return Unavailable("shared limits " + path_ + ": " + s.message());
  };
  if (auto mode = conn->QueryText("PRAGMA journal_mode = WAL"); !mode.ok()) return fail(mode.status());
  // No fsync at all: the file holds only state that dies with the processes (leases,
  // the rate's next slot, the breaker's window). A killed process loses nothing (the
  // writes are in the OS); an OS crash may damage the file, and the store then fails
  // over to per-process limits (logged, exported) until the file is removed
  // (docs/egress.md). NORMAL's checkpoint fsyncs were the sidecar's p99 at one
  // connection: 9.1 ms, 0.54 ms without (docs/benchmarks.md).
  if (Status s = conn->Exec("PRAGMA synchronous = OFF"); !s.ok()) return fail(s);
  if (Status s = conn->Exec(kSchema); !s.ok()) return fail(s);
  auto st = std::make_unique<Statements>();
  struct Item {
    sqlite::Statement* statement;
    const char* sql;
  } items[] = {
      {&st->begin, "BEGIN IMMEDIATE"},
      {&st->commit, "COMMIT"},
      {&st->rollback, "ROLLBACK"},
      {&st->drop_expired, "DELETE FROM leases WHERE integration = ?1 AND expires_ms <= ?2"},
      {&st->count_live, "SELECT count(*) FROM leases WHERE integration = ?1"},
      {&st->insert_lease,
       "INSERT OR REPLACE INTO leases(integration, token, expires_ms) VALUES (?1, ?2, ?3)"},
      {&st->delete_lease, "DELETE FROM leases WHERE integration = ?1 AND token = ?2"},
      {&st->renew_lease,
       "UPDATE leases SET expires_ms = ?3 WHERE integration = ?1 AND token = ?2 AND "
       "expires_ms > ?4"},
      {&st->get_tat, "SELECT tat_us FROM rate WHERE integration = ?1"},
      {&st->put_tat, "INSERT OR REPLACE INTO rate(integration, tat_us) VALUES (?1, ?2)"},
      {&st->get_breaker,
       "SELECT state, open_until_ms, probe_until_ms, buckets FROM breaker WHERE integration = ?1"},
      {&st->put_breaker,
       "INSERT OR REPLACE INTO breaker(integration, state, open_until_ms, probe_until_ms, "
       "buckets) VALUES (?1, ?2, ?3, ?4, ?5)"},
  };
  for (Item& item : items) {
    auto prepared = conn->Prepare(item.sql);
    if (!prepared.ok()) return fail(prepared.status());
    *item.statement = std::move(prepared).value();
  }
  statements_ = std::move(st);
  db_ = std::move(conn);
  return Status::Ok();
}

Status SqliteLimitStore::Transaction(const std::function<Status()>& body) {
  if (!db_) {
    if (steady_clock::now() < retry_at_) return last_error_;
    if (Status s = Open(); !s.ok()) {
      statements_.reset();
      db_.reset();
      last_error_ = s;
      retry_at_ = steady_clock::now() + kLimitStoreCoolDown;
      return s;
    }
  }
  if (steady_clock::now() < retry_at_) return last_error_;
  Status status = sqlite::Query(statements_->begin).Run();
  if (status.ok()) {
    status = body();
    if (status.ok()) {
      status = sqlite::Query(statements_->commit).Run();
    }
    if (!status.ok()) (void)sqlite::Query(statements_->rollback).Run();
  }
  if (!status.ok()) {
    last_error_ = Unavailable("shared limits " + path_ + ": " + status.message());
    retry_at_ = steady_clock::now() + kLimitStoreCoolDown;
    return last_error_;
  }
  return status;
}

Result<int> SqliteLimitStore::LiveLeases(const std::string& integration, int64_t now_ms) {
  if (Status s = sqlite::Query(statements_->drop_expired).Bind(1, integration).Bind(2, now_ms).Run();
      !s.ok()) {
    return s;
  }
  sqlite::Query count(statements_->count_live);
  count.Bind(1, integration);
  auto row = count.Next();
  if (!row.ok()) return row.status();
  return static_cast<int>(*row ? count.Int(0) : 0);
}

Result<SharedBreakerRow> SqliteLimitStore::LoadBreaker(const std::string& integration) {
  sqlite::Query get(statements_->get_breaker);
  get.Bind(1, integration);
  auto row = get.Next();
  if (!row.ok()) return row.status();
  SharedBreakerRow out;
  if (*row) {
    const int64_t state = get.Int(0);
    out.state = state >= 0 && state <= 2 ? static_cast<BreakerState>(state) : BreakerState::kClosed;
    out.open_until_ms = get.Int(1);
    out.probe_until_ms = get.Int(2);
    DecodeBuckets(get.Text(3), out);
  }
  return out;
}

Status SqliteLimitStore::SaveBreaker(const std::string& integration, const SharedBreakerRow& row) {
  const std::string buckets = EncodeBuckets(row);
  return sqlite::Query(statements_->put_breaker)
      .Bind(1, integration)
      .Bind(2, static_cast<int64_t>(row.state))
      .Bind(3, row.open_until_ms)
      .Bind(4, row.probe_until_ms)
      .Bind(5, std::string_view(buckets))
      .Run();
}

Result<LeaseGrant> SqliteLimitStore::Acquire(const std::string& integration, int max,
                                             int64_t lease_ms,
                                             const std::vector<std::string>& tokens) {
  LeaseGrant grant;
  Status s = Transaction([&]() -> Status {
    const int64_t now_ms = now_us_() / 1000;
    auto live = LiveLeases(integration, now_ms);
    if (!live.ok()) return live.status();
    grant.granted = LeasesGrantable(*live, max, static_cast<int>(tokens.size()));
    for (int i = 0; i < grant.granted; ++i) {
      Status insert = sqlite::Query(statements_->insert_lease)
                          .Bind(1, integration)
                          .Bind(2, std::string_view(tokens[static_cast<size_t>(i)]))
                          .Bind(3, LeaseExpiry(now_ms, lease_ms))
                          .Run();
      if (!insert.ok()) return insert;
    }
    grant.in_flight = *live + grant.granted;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return grant;
}

Result<int> SqliteLimitStore::Release(const std::string& integration,
                                      const std::vector<std::string>& tokens) {
  int live = 0;
  Status s = Transaction([&]() -> Status {
    for (const std::string& token : tokens) {
      Status del = sqlite::Query(statements_->delete_lease)
                       .Bind(1, integration)
                       .Bind(2, std::string_view(token))
                       .Run();
      if (!del.ok()) return del;
    }
    auto n = LiveLeases(integration, now_us_() / 1000);
    if (!n.ok()) return n.status();
    live = *n;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return live;
}

Result<int> SqliteLimitStore::Renew(const std::string& integration, int64_t lease_ms,
                                    const std::vector<std::string>& tokens) {
  int renewed = 0;
  Status s = Transaction([&]() -> Status {
    const int64_t now_ms = now_us_() / 1000;
    for (const std::string& token : tokens) {
      sqlite::Query update(statements_->renew_lease);
      update.Bind(1, integration)
          .Bind(2, std::string_view(token))
          .Bind(3, LeaseExpiry(now_ms, lease_ms))
          .Bind(4, now_ms);
      if (Status run = update.Run(); !run.ok()) return run;
      renewed += static_cast<int>(update.Changes());
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return renewed;
}

Result<TokenReservation> SqliteLimitStore::Reserve(const std::string& integration,
                                                   const GcraParams& params,
                                                   int64_t max_wait_us) {
  TokenReservation out;
  Status s = Transaction([&]() -> Status {
    const int64_t now = now_us_();
    int64_t tat = 0;
    {
      sqlite::Query get(statements_->get_tat);
      get.Bind(1, integration);
      auto row = get.Next();
      if (!row.ok()) return row.status();
      if (*row) tat = get.Int(0);
    }
    GcraDecision decision = GcraReserve(tat, now, params, max_wait_us);
    out = {decision.allowed, decision.wait_us};
    if (!decision.allowed) return Status::Ok();
    return sqlite::Query(statements_->put_tat).Bind(1, integration).Bind(2, decision.new_tat_us).Run();
  });
  if (!s.ok()) return s;
  return out;
}

Result<SharedBreakerView> SqliteLimitStore::Record(const std::string& integration,
                                                   const CircuitBreakerConfig& config,
                                                   CallVerdict verdict, bool probe) {
  SharedBreakerView view;
  Status s = Transaction([&]() -> Status {
    auto row = LoadBreaker(integration);
    if (!row.ok()) return row.status();
    view = SharedBreakerRecord(*row, config, now_us_() / 1000, verdict, probe);
    return SaveBreaker(integration, *row);
  });
  if (!s.ok()) return s;
  return view;
}

Result<SharedBreakerView> SqliteLimitStore::ClaimProbe(const std::string& integration,
                                                       int64_t probe_lease_ms) {
  SharedBreakerView view;
  Status s = Transaction([&]() -> Status {
    auto row = LoadBreaker(integration);
    if (!row.ok()) return row.status();
    view = SharedBreakerClaimProbe(*row, now_us_() / 1000, probe_lease_ms);
    return view.probe ? SaveBreaker(integration, *row) : Status::Ok();
  });
  if (!s.ok()) return s;
  return view;
}

Result<SharedLimitsView> SqliteLimitStore::Read(const std::string& integration,
                                                const CircuitBreakerConfig& config,
                                                const GcraParams* gcra) {
  SharedLimitsView view;
  Status s = Transaction([&]() -> Status {
    const int64_t now = now_us_();
    auto live = LiveLeases(integration, now / 1000);
    if (!live.ok()) return live.status();
    view.in_flight = *live;
    auto row = LoadBreaker(integration);
    if (!row.ok()) return row.status();
    view.breaker = SharedBreakerRead(*row, config, now / 1000);
    if (gcra != nullptr) {
      sqlite::Query get(statements_->get_tat);
      get.Bind(1, integration);
      auto found = get.Next();
      if (!found.ok()) return found.status();
      view.tokens = GcraTokens(*found ? get.Int(0) : 0, now, *gcra);
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return view;
}

}  // namespace firebreak::egress
