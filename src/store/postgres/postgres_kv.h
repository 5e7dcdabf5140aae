// KvStore on PostgreSQL, for durable bot state shared by many worker hosts: table
// firebreak_kv (namespace, key) → value bytea, content_type, version, expires_at_ms.
// firebreak creates and migrates its schema at start (firebreak_schema_migrations, under
// an advisory lock so many processes starting at once apply each migration once).
//
// Every call returns within `timeout` (store.timeout) whatever the server does: calls
// take turns on one connection (a call that cannot start in time fails kUnavailable),
// and one that gets no answer in time fails kDeadlineExceeded and drops the connection.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "store/kv_store.h"
#include "store/postgres/pg_client.h"

namespace firebreak {

// The newest schema version this build knows (firebreak_schema_migrations.version).
inline constexpr int kPostgresSchemaVersion = 1;

class PostgresKvStore final : public KvStore {
 public:
  // Connects and migrates. kUnavailable when the server cannot be reached or its schema
  // is newer than this build.
  static Result<std::unique_ptr<PostgresKvStore>> Open(const std::string& url,
                                                       const std::string& name_space,
                                                       Clock& clock,
                                                       std::chrono::milliseconds timeout);

  Result<std::optional<StoredValue>> Get(const std::string& key) override;
  Result<int64_t> Put(const std::string& key, const std::string& value,
                      const std::string& content_type, const PutOptions& options) override;
  Result<bool> Delete(const std::string& key, std::optional<int64_t> if_version) override;
  Status Ping() override;
  std::string Describe() const override { return "postgres " + where_; }

 private:
  PostgresKvStore(std::string url, std::string name_space, Clock& clock,
                  std::chrono::milliseconds timeout)
      : url_(std::move(url)), namespace_(std::move(name_space)), clock_(clock),
        timeout_(timeout) {}
  Status Migrate(pg::Deadline deadline);
  // Takes mu_ unless `deadline` passes first.
  Result<std::unique_lock<std::timed_mutex>> Lock(pg::Deadline deadline);
  // Runs `sql`, reconnecting once if the connection is gone. Caller holds mu_.
  Result<pg::PgResult> Run(const std::string& sql, const std::vector<pg::Param>& params,
                           pg::Deadline deadline);

  const std::string url_;
  const std::string namespace_;
  Clock& clock_;
  const std::chrono::milliseconds timeout_;
  std::string where_;

  std::timed_mutex mu_;
  std::unique_ptr<pg::Connection> connection_;  // guarded by mu_
  int64_t next_prune_ms_ = 0;                   // guarded by mu_
};

}  // namespace firebreak
