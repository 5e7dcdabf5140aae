// Thin RAII wrappers over the SQLite C API (queue and store): a connection,
// cached prepared statements, and a scoped use of a statement that always resets it
// (an un-reset SELECT would pin its read snapshot and keep the WAL from checkpointing).
//
// Not thread-safe: a Connection and its statements are used by one thread at a time
// (the queue's writer thread, or callers holding the read connection's mutex).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace firebreak::sqlite {

// Maps an SQLite result code to our vocabulary: busy/locked/IO/full/cannot-open are
// kUnavailable (retry later), constraint violations kAlreadyExists, corruption and
// misuse kInternal. `what` says what failed; SQLite's own message is appended.
Status ErrorStatus(sqlite3* db, int rc, std::string_view what);

// A prepared statement, finalized on destruction. Prepared once and reused.
class Statement {
 public:
  Statement() = default;
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  Statement(Statement&& other) noexcept : stmt_(other.stmt_) { other.stmt_ = nullptr; }
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// One execution of a cached statement. Binds parameters, steps through rows and
// resets the statement (and clears its bindings) when it goes out of scope.
// Text is bound without copying: a bound string must outlive the Query.
class Query {
 public:
  explicit Query(const Statement& statement);
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  ~Query();

  Query& Bind(int index, int64_t value);
  Query& Bind(int index, std::string_view value);
  Query& BindBlob(int index, std::string_view bytes);  // any bytes, NULs included

  // Steps once: true when a row is available, false when the statement is done.
  Result<bool> Next();
  // Steps to completion, ignoring any rows (for statements without RETURNING).
  Status Run();

  int64_t Int(int column) const;
  std::string Text(int column) const;
  std::string Blob(int column) const;

  // Rows changed by the last Run()/Next() of this connection (sqlite3_changes).
  int64_t Changes() const;

 private:
  sqlite3_stmt* stmt_;
  int bind_error_ = SQLITE_OK;
};

// An open database connection, closed on destruction (after its statements).
class Connection {
 public:
  // Opens (creating if needed) the database file at `path` with `busy_timeout_ms`
  // installed before anything else touches the file. Errors are kUnavailable. Error
  // messages of this class do not repeat the path: callers add it once.
  static Result<std::unique_ptr<Connection>> Open(const std::string& path, int busy_timeout_ms);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Runs one or more statements that return no rows we need.
  Status Exec(const std::string& sql);
  // Prepares a statement meant to be kept and reused.
  Result<Statement> Prepare(std::string_view sql);
  // Runs a single-row, single-column query (e.g. a PRAGMA) and returns the value as text.
  Result<std::string> QueryText(const std::string& sql);

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  Connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  sqlite3* db_;
  std::string path_;
};

}  // namespace firebreak::sqlite
