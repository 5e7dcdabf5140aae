#include "store/postgres/postgres_kv.h"

#include <array>

namespace firebreak {
namespace {

constexpr int64_t kPruneEveryMs = 60'000;
constexpr std::chrono::seconds kStartTimeout{60};

struct Migration {
  int version;
  const char* sql;
};

// Append only: a deployed migration is never edited, a change is a new entry.
constexpr std::array<Migration, kPostgresSchemaVersion> kMigrations = {{
    {1, R"sql(
CREATE TABLE firebreak_kv (
  namespace text NOT NULL,
  key text NOT NULL,
  value bytea NOT NULL,
  content_type text NOT NULL,
  version bigint NOT NULL,
  expires_at_ms bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (namespace, key)
);
CREATE INDEX firebreak_kv_expiry ON firebreak_kv (expires_at_ms) WHERE expires_at_ms <> 0;
)sql"},
}};

pg::Param Text(std::string value) { return {std::move(value), false}; }
pg::Param Number(int64_t value) { return {std::to_string(value), false}; }
pg::Param Bytes(const std::string& value) { return {value, true}; }

}  // namespace

Result<std::unique_ptr<PostgresKvStore>> PostgresKvStore::Open(const std::string& url,
                                                               const std::string& name_space,
                                                               Clock& clock,
                                                               std::chrono::milliseconds timeout) {
  std::unique_ptr<PostgresKvStore> store(new PostgresKvStore(url, name_space, clock, timeout));
  // Connecting and migrating at start may wait for another process's migration (the
  // advisory lock): a minute, not the per-call timeout.
  const pg::Deadline deadline = std::chrono::steady_clock::now() + kStartTimeout;
  auto connection = pg::Connection::Open(url, deadline);
  if (!connection.ok()) return connection.status();
  store->connection_ = std::move(connection).value();
  store->where_ = store->connection_->Describe();
  if (Status s = store->Migrate(deadline); !s.ok()) {
    return Status(StatusCode::kUnavailable, "state store " + store->where_ + ": " + s.message());
  }
  return store;
}

Status PostgresKvStore::Migrate(pg::Deadline deadline) {
  std::lock_guard lock(mu_);
  pg::Connection& db = *connection_;
  auto exec = [&](const std::string& sql, const std::vector<pg::Param>& params = {}) {
    return db.Exec(sql, params, deadline);
  };
  if (auto r = exec("BEGIN"); !r.ok()) return r.status();
  auto rollback = [&](Status status) {
    Result<pg::PgResult> ignored = exec("ROLLBACK");
    (void)ignored;
    return status;
  };
  // One process migrates at a time; the others wait here, then find nothing to do.
  if (auto r = exec("SELECT pg_advisory_xact_lock(7346839261)"); !r.ok()) {
    return rollback(r.status());
  }
  if (auto r = exec(
          "CREATE TABLE IF NOT EXISTS firebreak_schema_migrations (version integer PRIMARY KEY, "
          "applied_at timestamptz NOT NULL DEFAULT now())");
      !r.ok()) {
    return rollback(r.status());
  }
  auto current = exec("SELECT COALESCE(MAX(version), 0) FROM firebreak_schema_migrations");
  if (!current.ok()) return rollback(current.status());
  const int version = std::atoi(pg::Text(current->get(), 0, 0).c_str());
  if (version > kPostgresSchemaVersion) {
    return rollback(Unavailable("schema version " + std::to_string(version) +
                                " is newer than this build supports (" +
                                std::to_string(kPostgresSchemaVersion) + ")"));
  }
  for (const Migration& migration : kMigrations) {
    if (migration.version <= version) continue;
    if (auto r = exec(migration.sql); !r.ok()) return rollback(r.status());
    if (auto r = exec("INSERT INTO firebreak_schema_migrations (version) VALUES ($1)",
                      {Number(migration.version)});
        !r.ok()) {
      return rollback(r.status());
    }
  }
  if (auto r = exec("COMMIT"); !r.ok()) return r.status();
  return Status::Ok();
}

Result<std::unique_lock<std::timed_mutex>> PostgresKvStore::Lock(pg::Deadline deadline) {
  std::unique_lock lock(mu_, deadline);
  if (!lock.owns_lock()) {
    return Unavailable("state store " + where_ +
                       ": busy with an earlier call that has not finished (store.timeout)");
  }
  return lock;
}

Result<pg::PgResult> PostgresKvStore::Run(const std::string& sql,
                                          const std::vector<pg::Param>& params,
                                          pg::Deadline deadline) {
  if (!connection_ || connection_->broken()) {
    auto connection = pg::Connection::Open(url_, deadline);
    if (!connection.ok()) return connection.status();
    connection_ = std::move(connection).value();
  }
  Result<pg::PgResult> result = connection_->Exec(sql, params, deadline);
  if (result.ok() || !connection_->broken() ||
      result.status().code() == StatusCode::kDeadlineExceeded) {
    return result;
  }
  // The server restarted or the connection dropped: one more try on a new connection.
  // Each statement is its own transaction, so a lost reply means it either committed or
  // not; a versioned write then answers with a version mismatch, never twice applied.
  auto connection = pg::Connection::Open(url_, deadline);
  if (!connection.ok()) return connection.status();
  connection_ = std::move(connection).value();
  return connection_->Exec(sql, params, deadline);
}

Result<std::optional<StoredValue>> PostgresKvStore::Get(const std::string& key) {
  if (Status s = CheckStoreKey(key); !s.ok()) return s;
  const pg::Deadline deadline = std::chrono::steady_clock::now() + timeout_;
  auto lock = Lock(deadline);
  if (!lock.ok()) return lock.status();
  auto result = Run(
      "SELECT value, content_type, version, expires_at_ms FROM firebreak_kv "
      "WHERE namespace = $1 AND key = $2 AND (expires_at_ms = 0 OR expires_at_ms > $3)",
      {Text(namespace_), Text(key), Number(clock_.NowMs())}, deadline);
  if (!result.ok()) return result.status();
  if (pg::Rows(result->get()) == 0) return std::optional<StoredValue>();
  StoredValue value;
  value.value = pg::Bytes(result->get(), 0, 0);
  value.content_type = pg::Text(result->get(), 0, 1);
  value.version = std::atoll(pg::Text(result->get(), 0, 2).c_str());
  value.expires_at_ms = std::atoll(pg::Text(result->get(), 0, 3).c_str());
  return std::optional<StoredValue>(std::move(value));
}

Result<int64_t> PostgresKvStore::Put(const std::string& key, const std::string& value,
                                     const std::string& content_type, const PutOptions& options) {
  if (Status s = CheckStoreKey(key); !s.ok()) return s;
  if (Status s = CheckStoreValue(value); !s.ok()) return s;
  const pg::Deadline deadline = std::chrono::steady_clock::now() + timeout_;
  auto lock = Lock(deadline);
  if (!lock.ok()) return lock.status();
  const int64_t now = clock_.NowMs();
  const int64_t expires_at = ExpiresAt(options, now);
  std::string sql;
  std::vector<pg::Param> params = {Text(namespace_), Text(key), Bytes(value), Text(content_type),
                                   Number(expires_at), Number(now)};
  if (!options.if_version) {
    sql =
        "INSERT INTO firebreak_kv AS kv (namespace, key, value, content_type, version, "
        "expires_at_ms) VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (namespace, key) DO UPDATE "
        "SET value = EXCLUDED.value, content_type = EXCLUDED.content_type, version = CASE WHEN "
        "kv.expires_at_ms <> 0 AND kv.expires_at_ms <= $6 THEN 1 ELSE kv.version + 1 END, "
        "expires_at_ms = EXCLUDED.expires_at_ms, updated_at = now() RETURNING version";
  } else if (*options.if_version == 0) {
    sql =
        "INSERT INTO firebreak_kv AS kv (namespace, key, value, content_type, version, "
        "expires_at_ms) VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (namespace, key) DO UPDATE "
        "SET value = EXCLUDED.value, content_type = EXCLUDED.content_type, version = 1, "
        "expires_at_ms = EXCLUDED.expires_at_ms, updated_at = now() "
        "WHERE kv.expires_at_ms <> 0 AND kv.expires_at_ms <= $6 RETURNING version";
  } else {
    sql =
        "UPDATE firebreak_kv SET value = $3, content_type = $4, version = version + 1, "
        "expires_at_ms = $5, updated_at = now() WHERE namespace = $1 AND key = $2 AND "
        "version = $7 AND (expires_at_ms = 0 OR expires_at_ms > $6) RETURNING version";
    params.push_back(Number(*options.if_version));
  }
  auto written = Run(sql, params, deadline);
  if (!written.ok()) return written.status();
  if (pg::Rows(written->get()) == 0) {
    return FailedPrecondition("key " + key + " is not at version " +
                              std::to_string(*options.if_version) +
                              (*options.if_version == 0 ? " (it exists)" : ""));
  }
  const int64_t version = std::atoll(pg::Text(written->get(), 0, 0).c_str());
  if (now >= next_prune_ms_) {
    next_prune_ms_ = now + kPruneEveryMs;
    auto ignored = Run(
        "DELETE FROM firebreak_kv WHERE ctid IN (SELECT ctid FROM firebreak_kv WHERE "
        "expires_at_ms <> 0 AND expires_at_ms <= $1 LIMIT 500)",
        {Number(now)}, deadline);
    (void)ignored;  // best effort: expired rows are invisible anyway
  }
  return version;
}

Result<bool> PostgresKvStore::Delete(const std::string& key, std::optional<int64_t> if_version) {
  if (Status s = CheckStoreKey(key); !s.ok()) return s;
  const pg::Deadline deadline = std::chrono::steady_clock::now() + timeout_;
  auto lock = Lock(deadline);
  if (!lock.ok()) return lock.status();
  const int64_t now = clock_.NowMs();
  if (if_version) {
    auto result = Run(
        "DELETE FROM firebreak_kv WHERE namespace = $1 AND key = $2 AND version = $3 AND "
        "(expires_at_ms = 0 OR expires_at_ms > $4) RETURNING version",
        {Text(namespace_), Text(key), Number(*if_version), Number(now)}, deadline);
    if (!result.ok()) return result.status();
    if (pg::Rows(result->get()) == 0) {
      return FailedPrecondition("key " + key + " is not at version " + std::to_string(*if_version));
    }
    return true;
  }
  auto result = Run(
      "DELETE FROM firebreak_kv WHERE namespace = $1 AND key = $2 RETURNING expires_at_ms",
      {Text(namespace_), Text(key)}, deadline);
  if (!result.ok()) return result.status();
  if (pg::Rows(result->get()) == 0) return false;
  const int64_t expires_at = std::atoll(pg::Text(result->get(), 0, 0).c_str());
  return expires_at == 0 || expires_at > now;
}

Status PostgresKvStore::Ping() {
  const pg::Deadline deadline = std::chrono::steady_clock::now() + timeout_;
  auto lock = Lock(deadline);
  if (!lock.ok()) return lock.status();
  auto result = Run("SELECT 1", {}, deadline);
  return result.ok() ? Status::Ok() : result.status();
}

}  // namespace firebreak
