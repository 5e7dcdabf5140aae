// A thin RAII layer over libpq (blocking; one thread at a time per connection): results
// freed on scope exit, errors as Status. libpqxx 6.4 from Debian is old; libpq is all the
// store needs.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

struct pg_conn;
struct pg_result;

namespace firebreak::pg {

struct ResultDeleter {
  void operator()(pg_result* result) const;
};
using PgResult = std::unique_ptr<pg_result, ResultDeleter>;

// One parameter: text, or bytes sent in binary format (bytea); nullopt is SQL NULL.
struct Param {
  std::optional<std::string> value;
  bool binary = false;
};

class Connection {
 public:
  // `url` is a postgresql:// URI or a conninfo string; connect_timeout, keepalives and a
  // statement_timeout are added unless the URL sets them. kUnavailable on failure (the
  // message never carries the password).
  static Result<std::unique_ptr<Connection>> Open(const std::string& url);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one statement (or several, without parameters). Errors: kUnavailable for
  // connection and server-availability failures, kInternal for SQL errors.
  Result<PgResult> Exec(const std::string& sql, const std::vector<Param>& params = {});
  bool broken() const;
  std::string Describe() const;  // host:port/db

 private:
  explicit Connection(pg_conn* conn) : conn_(conn) {}
  pg_conn* conn_;
};

// Text of a result cell; "" for NULL or out of range.
std::string Text(const pg_result* result, int row, int column);
// A bytea cell, unescaped.
std::string Bytes(const pg_result* result, int row, int column);
int Rows(const pg_result* result);

}  // namespace firebreak::pg
