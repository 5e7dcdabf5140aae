#include "support/redis_server.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/process.h"

namespace firebreak::testing {

bool RedisServerAvailable() { return std::system("command -v redis-server >/dev/null 2>&1") == 0; }

RedisServer::RedisServer(RedisServerOptions options) : options_(std::move(options)) {
  char pattern[] = "/tmp/firebreak-redis-XXXXXX";
  const char* made = mkdtemp(pattern);
  dir_ = made ? made : "/tmp";
}

RedisServer::~RedisServer() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    WaitExit(pid_, std::chrono::seconds(5));
  }
  std::error_code ignored;
  if (dir_ != "/tmp") std::filesystem::remove_all(dir_, ignored);
}

std::string RedisServer::Url(int db) const {
  return "redis://" + options_.bind + ":" + std::to_string(port_) + "/" + std::to_string(db);
}

std::string RedisServer::Log() const {
  std::ifstream in(dir_ + "/redis.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool RedisServer::Start() {
  if (pid_ > 0) return true;
  for (int tries = 0; tries < 5; ++tries) {
    if (port_ == 0 || tries > 0) port_ = PickFreePort();
    std::vector<std::string> args = {"redis-server", "--port", std::to_string(port_),
                                     "--bind", options_.bind, "--dir", dir_, "--save", "",
                                     "--daemonize", "no", "--logfile", dir_ + "/redis.log"};
    if (options_.appendfsync == "no") {
      args.insert(args.end(), {"--appendonly", "no"});
    } else {
      args.insert(args.end(), {"--appendonly", "yes", "--appendfsync", options_.appendfsync});
    }
    args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());

    pid_t pid = Spawn(args, "");
    if (pid < 0) return false;
    pid_ = pid;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;  // exited (port taken?): try another port
      }
      if (Cli({"PING"}).rfind("PONG", 0) == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      WaitExit(pid_, std::chrono::seconds(5));
      pid_ = -1;
    }
  }
  return false;
}

void RedisServer::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  WaitExit(pid_, std::chrono::seconds(10));
  pid_ = -1;
}

void RedisServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  if (!WaitExit(pid_, std::chrono::seconds(20))) {
    kill(pid_, SIGKILL);
    WaitExit(pid_, std::chrono::seconds(5));
  }
  pid_ = -1;
}

std::string RedisServer::Cli(const std::vector<std::string>& args) const {
  std::string command = "redis-cli -h " + options_.bind + " -p " + std::to_string(port_);
  for (const std::string& a : args) {
    std::string quoted = "'";
    for (char c : a) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    command += " " + quoted + "'";
  }
  command += " 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return "";
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  if (pclose(pipe) != 0) return "";
  return out;
}

}  // namespace firebreak::testing
