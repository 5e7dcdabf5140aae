// KvStore on the embedded SQLite file (the queue's own file by default): table
// `kv(namespace, key, value, content_type, version, expires_at_ms)`, one namespace per
// store ("sessions", "state"). Writes are fsynced (synchronous = FULL): state must
// survive a crash. Expired keys are ignored at once and deleted in bounded chunks.
// A call waits at most `timeout` (store.timeout) for another process's write lock; a
// disk that hangs in the kernel cannot be interrupted (the sidecar answers 503 anyway).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "common/sqlite_db.h"
#include "store/kv_store.h"

namespace firebreak {

class SqliteKvStore final : public KvStore {
 public:
  // Opens or creates `path` (WAL; shared with the queue is fine) and the table.
  static Result<std::unique_ptr<SqliteKvStore>> Open(const std::string& path,
                                                     const std::string& name_space, Clock& clock,
                                                     std::chrono::milliseconds timeout);

  Result<std::optional<StoredValue>> Get(const std::string& key) override;
  Result<int64_t> Put(const std::string& key, const std::string& value,
                      const std::string& content_type, const PutOptions& options) override;
  Result<bool> Delete(const std::string& key, std::optional<int64_t> if_version) override;
  Status Ping() override;
  std::string Describe() const override { return "sqlite " + path_; }

 private:
  SqliteKvStore(std::string path, std::string name_space, Clock& clock,
                std::chrono::milliseconds timeout)
      : path_(std::move(path)),
        namespace_(std::move(name_space)),
        clock_(clock),
        timeout_(timeout) {}
  Status Init();
  Status Fail(const Status& status) const;
  void PruneExpired(int64_t now_ms);

  const std::string path_;
  const std::string namespace_;
  Clock& clock_;
  const std::chrono::milliseconds timeout_;

  std::mutex mu_;  // guards everything below
  std::unique_ptr<sqlite::Connection> db_;
  sqlite::Statement get_;
  sqlite::Statement upsert_;
  sqlite::Statement create_;
  sqlite::Statement update_if_;
  sqlite::Statement delete_;
  sqlite::Statement delete_if_;
  sqlite::Statement prune_;
  int64_t next_prune_ms_ = 0;
};

}  // namespace firebreak
