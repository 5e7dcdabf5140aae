// A real redis-server for tests: started on a free loopback port in its own temp dir,
// stopped by PID. Tests never mock the store (STYLE: "never mock a database").
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace firebreak::testing {

struct RedisServerOptions {
  // "no" = no persistence at all; "everysec" / "always" = AOF with that appendfsync.
  std::string appendfsync = "always";
  std::string bind = "127.0.0.1";
  std::vector<std::string> extra_args;  // e.g. {"--maxmemory", "10mb"}
};

class RedisServer {
 public:
  explicit RedisServer(RedisServerOptions options = {});
  ~RedisServer();  // SIGKILL by PID if still running; removes the temp dir
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts redis-server and waits until it answers PING (false on failure; see Log()).
  // The port is picked on the first Start and kept across restarts.
  bool Start();
  // SIGKILL (like a crash or power cut of the Redis host; the AOF keeps what it fsynced).
  void Kill9();
  // SIGTERM and wait for exit (Redis flushes the AOF on a clean shutdown).
  void Stop();
  bool running() const { return pid_ > 0; }

  uint16_t port() const { return port_; }
  // "redis://127.0.0.1:PORT/0", ready for [queue] url.
  std::string Url(int db = 0) const;
  const std::string& dir() const { return dir_; }
  std::string Log() const;
  pid_t pid() const { return pid_; }

  // Runs one command through redis-cli and returns its raw output (tests' own checks,
  // e.g. {"CONFIG", "GET", "appendfsync"}); "" when redis-cli fails.
  std::string Cli(const std::vector<std::string>& args) const;

 private:
  RedisServerOptions options_;
  std::string dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// True when redis-server is on PATH (tests that need it fail loudly otherwise).
bool RedisServerAvailable();

}  // namespace firebreak::testing
