#include "store/sqlite/sqlite_kv.h"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>

namespace firebreak {
namespace {

constexpr int64_t kPruneChunk = 500;
constexpr std::chrono::milliseconds kOpenBusyTimeout{30'000};
constexpr int64_t kPruneEveryMs = 60'000;

// The queue keeps its schema version in PRAGMA user_version; the store's tables are
// versioned apart, in store_schema, so both can share one file.
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS kv (
  namespace TEXT NOT NULL,
  key TEXT NOT NULL,
  value BLOB NOT NULL,
  content_type TEXT NOT NULL,
  version INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (namespace, key)
);
CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_at) WHERE expires_at != 0;
CREATE TABLE IF NOT EXISTS store_schema (name TEXT PRIMARY KEY, version INTEGER NOT NULL);
INSERT OR IGNORE INTO store_schema (name, version) VALUES ('kv', 1);
)sql";

// ?1 namespace ?2 key ?3 value ?4 content type ?5 expires_at ?6 now ?7 expected version.
// A row whose expires_at has passed counts as absent everywhere.
constexpr char kLive[] = "(expires_at = 0 OR expires_at > ?6)";

}  // namespace

Result<std::unique_ptr<SqliteKvStore>> SqliteKvStore::Open(const std::string& path,
                                                           const std::string& name_space,
                                                           Clock& clock,
                                                           std::chrono::milliseconds timeout) {
  if (path.empty()) return InvalidArgument("store: sqlite path is empty");
  std::unique_ptr<SqliteKvStore> store(new SqliteKvStore(path, name_space, clock, timeout));
  if (Status s = store->Init(); !s.ok()) {
    return Status(StatusCode::kUnavailable, "store database " + path + ": " + s.message());
  }
  return store;
}

Status SqliteKvStore::Init() {
  std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) return Unavailable("cannot create directory " + parent.string() + ": " + ec.message());
  }
  // Opening waits longer for the write lock than a call does: processes started
  // together (three workers on one file) take it in turn for their schema checks, and
  // under load a turn outlasted store.timeout (2 s), so a worker exited at start.
  Result<std::unique_ptr<sqlite::Connection>> db =
      sqlite::Connection::Open(path_, static_cast<int>(std::max(timeout_, kOpenBusyTimeout).count()));
  if (!db.ok()) return db.status();
  db_ = std::move(*db);
  Result<std::string> mode = db_->QueryText("PRAGMA journal_mode = WAL");
  if (!mode.ok()) return mode.status();
  if (Status s = db_->Exec("PRAGMA synchronous = FULL"); !s.ok()) return s;
  if (Status s = db_->Exec(std::string("BEGIN IMMEDIATE;") + kSchema + "COMMIT;"); !s.ok()) {
    Status ignored = db_->Exec("ROLLBACK");
    (void)ignored;
    return s;
  }
  sqlite3_busy_timeout(db_->get(), static_cast<int>(timeout_.count()));  // a call's bound
  const std::string live = kLive;
  struct Prepared {
    sqlite::Statement* target;
    std::string sql;
  };
  const Prepared statements[] = {
      {&get_,
       "SELECT value, content_type, version, expires_at FROM kv "
       "WHERE namespace = ?1 AND key = ?2 AND " + live},
      {&upsert_,
       "INSERT INTO kv (namespace, key, value, content_type, version, expires_at) "
       "VALUES (?1, ?2, ?3, ?4, 1, ?5) ON CONFLICT (namespace, key) DO UPDATE SET "
       "value = excluded.value, content_type = excluded.content_type, "
       "version = CASE WHEN kv.expires_at != 0 AND kv.expires_at <= ?6 THEN 1 "
       "ELSE kv.version + 1 END, expires_at = excluded.expires_at RETURNING version"},
      {&create_,
       "INSERT INTO kv (namespace, key, value, content_type, version, expires_at) "
       "VALUES (?1, ?2, ?3, ?4, 1, ?5) ON CONFLICT (namespace, key) DO UPDATE SET "
       "value = excluded.value, content_type = excluded.content_type, version = 1, "
       "expires_at = excluded.expires_at WHERE kv.expires_at != 0 AND kv.expires_at <= ?6 "
       "RETURNING version"},
      {&update_if_,
       "UPDATE kv SET value = ?3, content_type = ?4, version = version + 1, expires_at = ?5 "
       "WHERE namespace = ?1 AND key = ?2 AND version = ?7 AND " + live + " RETURNING version"},
      {&delete_,
       "DELETE FROM kv WHERE namespace = ?1 AND key = ?2 RETURNING expires_at"},
      {&delete_if_,
       "DELETE FROM kv WHERE namespace = ?1 AND key = ?2 AND version = ?7 AND " + live},
      {&prune_,
       "DELETE FROM kv WHERE rowid IN (SELECT rowid FROM kv WHERE expires_at != 0 AND "
       "expires_at <= ?6 LIMIT " + std::to_string(kPruneChunk) + ")"},
  };
  for (const Prepared& p : statements) {
    Result<sqlite::Statement> statement = db_->Prepare(p.sql);
    if (!statement.ok()) return statement.status();
    *p.target = std::move(*statement);
  }
  return Status::Ok();
}

Status SqliteKvStore::Fail(const Status& status) const {
  return Status(status.code(), "store database " + path_ + ": " + status.message());
}

Result<std::optional<StoredValue>> SqliteKvStore::Get(const std::string& key) {
  if (Status s = CheckStoreKey(key); !s.ok()) return s;
  std::lock_guard lock(mu_);
  sqlite::Query query(get_);
  query.Bind(1, namespace_).Bind(2, key).Bind(6, clock_.NowMs());
  Result<bool> row = query.Next();
  if (!row.ok()) return Fail(row.status());
  if (!*row) return std::optional<StoredValue>();
  StoredValue value;
  value.value = query.Blob(0);
  value.content_type = query.Text(1);
  value.version = query.Int(2);
  value.expires_at_ms = query.Int(3);
  return std::optional<StoredValue>(std::move(value));
}

Result<int64_t> SqliteKvStore::Put(const std::string& key, const std::string& value,
                                   const std::string& content_type, const PutOptions& options) {
  if (Status s = CheckStoreKey(key); !s.ok()) return s;
  if (Status s = CheckStoreValue(value); !s.ok()) return s;
  std::lock_guard lock(mu_);
  const int64_t now = clock_.NowMs();
  const int64_t expires_at = ExpiresAt(options, now);
  sqlite::Statement& statement = !options.if_version       ? upsert_
                                 : *options.if_version == 0 ? create_
                                                            : update_if_;
  int64_t version = 0;
  {
    sqlite::Query query(statement);
    query.Bind(1, namespace_).Bind(2, key).BindBlob(3, value).Bind(4, content_type);
    query.Bind(5, expires_at).Bind(6, now);
    if (options.if_version && *options.if_version > 0) query.Bind(7, *options.if_version);
    Result<bool> row = query.Next();
    if (!row.ok()) return Fail(row.status());
    if (!*row) {
      return FailedPrecondition("key " + key + " is not at version " +
                                std::to_string(*options.if_version) +
                                (*options.if_version == 0 ? " (it exists)" : ""));
    }
    version = query.Int(0);
    Result<bool> done = query.Next();  // finish the statement so it commits
    if (!done.ok()) return Fail(done.status());
  }
  PruneExpired(now);
  return version;
}

Result<bool> SqliteKvStore::Delete(const std::string& key, std::optional<int64_t> if_version) {
  if (Status s = CheckStoreKey(key); !s.ok()) return s;
  std::lock_guard lock(mu_);
  const int64_t now = clock_.NowMs();
  if (if_version) {
    sqlite::Query query(delete_if_);
    query.Bind(1, namespace_).Bind(2, key).Bind(6, now).Bind(7, *if_version);
    if (Status s = query.Run(); !s.ok()) return Fail(s);
    if (query.Changes() == 0) {
      return FailedPrecondition("key " + key + " is not at version " + std::to_string(*if_version));
    }
    return true;
  }
  sqlite::Query query(delete_);
  query.Bind(1, namespace_).Bind(2, key);
  Result<bool> row = query.Next();
  if (!row.ok()) return Fail(row.status());
  if (!*row) return false;
  const int64_t expires_at = query.Int(0);
  Result<bool> done = query.Next();
  if (!done.ok()) return Fail(done.status());
  return expires_at == 0 || expires_at > now;
}

void SqliteKvStore::PruneExpired(int64_t now_ms) {
  if (now_ms < next_prune_ms_) return;
  next_prune_ms_ = now_ms + kPruneEveryMs;
  sqlite::Query query(prune_);
  query.Bind(6, now_ms);
  Status ignored = query.Run();  // best effort: expired rows are invisible anyway
  (void)ignored;
  if (query.Changes() >= kPruneChunk) next_prune_ms_ = now_ms;  // more to do next time
}

Status SqliteKvStore::Ping() {
  std::lock_guard lock(mu_);
  Result<std::string> one = db_->QueryText("SELECT 1");
  return one.ok() ? Status::Ok() : Fail(one.status());
}

}  // namespace firebreak
