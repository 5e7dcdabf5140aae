#include "store/postgres/pg_client.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace firebreak::pg {

void ResultDeleter::operator()(pg_result* result) const { PQclear(result); }

namespace {

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// Waits for `events` on `fd` until `deadline`; false on timeout or a poll error.
bool PollUntil(int fd, short events, Deadline deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    const int ready = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 60'000)));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return false;
  }
}

}  // namespace

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& url, Deadline deadline) {
  // Defaults come first: settings in the URL itself override them (expand_dbname).
  const char* keywords[] = {"keepalives_idle", "keepalives_interval", "keepalives_count",
                            "tcp_user_timeout", "application_name", "options", "dbname",
                            nullptr};
  const char* values[] = {"10", "5", "3", "10000", "firebreak", "-c statement_timeout=10000",
                          url.c_str(), nullptr};
  pg_conn* conn = PQconnectStartParams(keywords, values, /*expand_dbname=*/1);
  if (conn == nullptr) return Unavailable("postgres: out of memory");
  auto fail = [conn](std::string why) {
    PQfinish(conn);
    return Unavailable("postgres: cannot connect: " + why);
  };
  if (PQstatus(conn) == CONNECTION_BAD) return fail(Trimmed(PQerrorMessage(conn)));
  // The polling loop of libpq's non-blocking connect (see PQconnectStartParams).
  PostgresPollingStatusType polling = PGRES_POLLING_WRITING;
  for (;;) {
    if (polling == PGRES_POLLING_OK) break;
    if (polling == PGRES_POLLING_FAILED) return fail(Trimmed(PQerrorMessage(conn)));
    const short events = polling == PGRES_POLLING_READING ? POLLIN : POLLOUT;
    if (!PollUntil(PQsocket(conn), events, deadline)) {
      return fail("no answer from the server in time");
    }
    polling = PQconnectPoll(conn);
  }
  // Sends never block either (a hung server's full receive buffer must not hang us).
  if (PQsetnonblocking(conn, 1) != 0) return fail(Trimmed(PQerrorMessage(conn)));
  // NOTICEs ("relation already exists, skipping") are not errors: keep them off stderr.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<Connection>(new Connection(conn));
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::broken() const { return abandoned_ || PQstatus(conn_) != CONNECTION_OK; }

std::string Connection::Describe() const {
  const char* host = PQhost(conn_);
  const char* port = PQport(conn_);
  const char* db = PQdb(conn_);
  return std::string(host ? host : "?") + ":" + (port ? port : "?") + "/" + (db ? db : "?");
}

bool Connection::WaitSocket(bool write, Deadline deadline) {
  return PollUntil(PQsocket(conn_), static_cast<short>(POLLIN | (write ? POLLOUT : 0)), deadline);
}

Status Connection::Fail(std::string what) {
  return Unavailable("postgres: " + what + ": " + Trimmed(PQerrorMessage(conn_)));
}

Result<PgResult> Connection::Exec(const std::string& sql, const std::vector<Param>& params,
                                  Deadline deadline) {
  if (abandoned_) return Unavailable("postgres: connection abandoned after a timeout");
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  for (const Param& p : params) {
    values.push_back(p.value ? p.value->data() : nullptr);
    lengths.push_back(p.value ? static_cast<int>(p.value->size()) : 0);
    formats.push_back(p.binary ? 1 : 0);
  }
  const int sent = params.empty()
                       ? PQsendQuery(conn_, sql.c_str())
                       : PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(params.size()),
                                           nullptr, values.data(), lengths.data(),
                                           formats.data(), 0);
  if (sent == 0) return Fail("cannot send");
  auto timed_out = [this] {
    abandoned_ = true;
    return Status(StatusCode::kDeadlineExceeded, "postgres: no answer in time (store.timeout)");
  };
  // Send what the socket would not take at once, reading meanwhile as libpq asks.
  for (;;) {
    const int flushed = PQflush(conn_);
    if (flushed == 0) break;
    if (flushed < 0) return Fail("cannot send");
    if (!WaitSocket(/*write=*/true, deadline)) return timed_out();
    if (PQconsumeInput(conn_) == 0) return Fail("connection lost");
  }
  // Every result of the statement(s): like PQexec, the first error or else the last one.
  PgResult kept;
  bool kept_error = false;
  for (;;) {
    while (PQisBusy(conn_) != 0) {
      if (!WaitSocket(/*write=*/false, deadline)) return timed_out();
      if (PQconsumeInput(conn_) == 0) return Fail("connection lost");
    }
    PgResult next(PQgetResult(conn_));
    if (!next) break;
    if (kept_error) continue;  // drained, not kept
    const ExecStatusType kind = PQresultStatus(next.get());
    kept_error = kind != PGRES_COMMAND_OK && kind != PGRES_TUPLES_OK;
    kept = std::move(next);
  }
  PgResult result = std::move(kept);
  ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  std::string error = Trimmed(result ? PQresultErrorMessage(result.get()) : PQerrorMessage(conn_));
  const char* state = result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = state ? state : "";
  // Class 08 (connection), 57 (operator intervention: shutdown, timeout), 53 (resources)
  // and a dead connection are "try again later"; anything else is a bug or bad schema.
  if (broken() || sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("57", 0) == 0 ||
      sqlstate.rfind("53", 0) == 0) {
    return Unavailable("postgres: " + error);
  }
  return Internal("postgres: " + error + (sqlstate.empty() ? "" : " (SQLSTATE " + sqlstate + ")"));
}

std::string Text(const pg_result* result, int row, int column) {
  if (row >= PQntuples(result) || column >= PQnfields(result) ||
      PQgetisnull(result, row, column)) {
    return "";
  }
  return std::string(PQgetvalue(result, row, column),
                     static_cast<size_t>(PQgetlength(result, row, column)));
}

std::string Bytes(const pg_result* result, int row, int column) {
  if (row >= PQntuples(result) || column >= PQnfields(result) ||
      PQgetisnull(result, row, column)) {
    return "";
  }
  size_t length = 0;
  unsigned char* raw =
      PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(result, row, column)),
                      &length);
  if (raw == nullptr) return "";
  std::string out(reinterpret_cast<const char*>(raw), length);
  PQfreemem(raw);
  return out;
}

int Rows(const pg_result* result) { return PQntuples(result); }

}  // namespace firebreak::pg
