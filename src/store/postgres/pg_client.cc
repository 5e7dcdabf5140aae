#include "store/postgres/pg_client.h"

#include <libpq-fe.h>

#include <cstdlib>
#include <cstring>

namespace firebreak::pg {

void ResultDeleter::operator()(pg_result* result) const { PQclear(result); }

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& url) {
  // Defaults come first: settings in the URL itself override them (expand_dbname).
  const char* keywords[] = {"connect_timeout", "keepalives_idle", "keepalives_interval",
                            "keepalives_count", "tcp_user_timeout", "application_name",
                            "options", "dbname", nullptr};
  const char* values[] = {"3", "10", "5", "3", "10000", "firebreak",
                          "-c statement_timeout=10000", url.c_str(), nullptr};
  pg_conn* conn = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  if (conn == nullptr) return Unavailable("postgres: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string error = PQerrorMessage(conn);
    while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
    PQfinish(conn);
    return Unavailable("postgres: cannot connect: " + error);
  }
  // NOTICEs ("relation already exists, skipping") are not errors: keep them off stderr.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<Connection>(new Connection(conn));
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::broken() const { return PQstatus(conn_) != CONNECTION_OK; }

std::string Connection::Describe() const {
  const char* host = PQhost(conn_);
  const char* port = PQport(conn_);
  const char* db = PQdb(conn_);
  return std::string(host ? host : "?") + ":" + (port ? port : "?") + "/" + (db ? db : "?");
}

Result<PgResult> Connection::Exec(const std::string& sql, const std::vector<Param>& params) {
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  for (const Param& p : params) {
    values.push_back(p.value ? p.value->data() : nullptr);
    lengths.push_back(p.value ? static_cast<int>(p.value->size()) : 0);
    formats.push_back(p.binary ? 1 : 0);
  }
  PgResult result(params.empty()
                      ? PQexec(conn_, sql.c_str())
                      : PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                                     values.data(), lengths.data(), formats.data(), 0));
  ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  std::string error = result ? PQresultErrorMessage(result.get()) : PQerrorMessage(conn_);
  while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
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
