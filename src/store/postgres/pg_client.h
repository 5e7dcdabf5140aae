// A thin RAII layer over libpq (one thread at a time per connection): results freed on
// scope exit, errors as Status, and every call bounded by a deadline. libpq's blocking
// calls wait forever on a server that is hung but still holds its sockets (SIGSTOP, a
// stalled host: the kernel keeps ACKing, so no TCP timeout fires), so connect and exec
// use libpq's non-blocking API and poll the socket until the deadline. libpqxx 6.4 from
// Debian is old and has no such API; libpq is all the store needs.
#pragma once

#include <chrono>
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

using Deadline = std::chrono::steady_clock::time_point;

class Connection {
 public:
  // `url` is a postgresql:// URI or a conninfo string; keepalives and a statement_timeout
  // are added unless the URL sets them. Gives up at `deadline`. kUnavailable on failure
  // (the message never carries the password).
  static Result<std::unique_ptr<Connection>> Open(const std::string& url, Deadline deadline);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one statement (or several, without parameters). Errors: kUnavailable for
  // connection and server-availability failures, kDeadlineExceeded when no answer came by
  // `deadline` (the connection is then broken: a statement left running on a hung server
  // cannot be picked up again), kInternal for SQL errors.
  Result<PgResult> Exec(const std::string& sql, const std::vector<Param>& params,
                        Deadline deadline);
  bool broken() const;
  std::string Describe() const;  // host:port/db

 private:
  explicit Connection(pg_conn* conn) : conn_(conn) {}
  // Waits until the socket is readable (and writable when `write`), or the deadline.
  bool WaitSocket(bool write, Deadline deadline);
  Status Fail(std::string what);  // kUnavailable with libpq's message

  pg_conn* conn_;
  bool abandoned_ = false;  // a call ran out of time mid-exchange
};

// Text of a result cell; "" for NULL or out of range.
std::string Text(const pg_result* result, int row, int column);
// A bytea cell, unescaped.
std::string Bytes(const pg_result* result, int row, int column);
int Rows(const pg_result* result);

}  // namespace firebreak::pg
