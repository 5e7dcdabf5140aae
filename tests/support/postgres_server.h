// A real PostgreSQL server for tests: a cluster initialised (initdb) in its own temp dir,
// started on a free loopback port, stopped by PID. As root, initdb and postgres run as
// the `postgres` user (PostgreSQL refuses root).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace firebreak::testing {

class PostgresServer {
 public:
  PostgresServer();
  ~PostgresServer();  // immediate shutdown by PID; removes the temp dir
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // initdb on first use, then starts postgres and waits until it accepts connections
  // and the database "firebreak" exists. False on failure (see Log()).
  bool Start();
  void Stop();  // fast shutdown (SIGINT), waits
  bool running() const { return pid_ > 0; }

  uint16_t port() const { return port_; }
  // postgresql://firebreak@127.0.0.1:PORT/firebreak
  std::string Url() const;
  std::string Log() const;
  pid_t pid() const { return pid_; }
  // Runs one SQL statement through psql and returns its unaligned output ("" on failure).
  std::string Query(const std::string& sql) const;

 private:
  std::string dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  bool initialized_ = false;
};

// The directory holding initdb and postgres, or "" when PostgreSQL is not installed.
std::string PostgresBinDir();

}  // namespace firebreak::testing
