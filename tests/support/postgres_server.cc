#include "support/postgres_server.h"

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "support/process.h"

namespace firebreak::testing {
namespace {

constexpr char kUser[] = "postgres";  // the OS user postgres runs as, when we are root

std::string RunUser() { return geteuid() == 0 ? kUser : ""; }

}  // namespace

std::string PostgresBinDir() {
  std::error_code ec;
  std::string best;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    std::string bin = entry.path().string() + "/bin";
    if (std::filesystem::exists(bin + "/initdb") && bin > best) best = bin;
  }
  return best;
}

PostgresServer::PostgresServer() {
  char pattern[] = "/tmp/firebreak-pg-XXXXXX";
  const char* made = mkdtemp(pattern);
  dir_ = made ? made : "/tmp";
  if (geteuid() == 0) {
    if (passwd* pw = getpwnam(kUser)) {
      if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) perror("chown");
    }
  }
}

PostgresServer::~PostgresServer() {
  if (pid_ > 0) {
    kill(pid_, SIGQUIT);  // immediate shutdown: the children go with the postmaster
    if (!WaitExit(pid_, std::chrono::seconds(5))) {
      kill(pid_, SIGKILL);
      WaitExit(pid_, std::chrono::seconds(5));
    }
  }
  std::error_code ignored;
  if (dir_ != "/tmp") std::filesystem::remove_all(dir_, ignored);
}

std::string PostgresServer::Url() const {
  return "postgresql://firebreak@127.0.0.1:" + std::to_string(port_) + "/firebreak";
}

std::string PostgresServer::Log() const {
  std::ifstream in(dir_ + "/postgres.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string PostgresServer::Query(const std::string& sql) const {
  std::string command = "psql -X -A -t -q -h 127.0.0.1 -p " + std::to_string(port_) + " -U firebreak -d firebreak -c '";
  for (char c : sql) command += c == '\'' ? std::string("'\\''") : std::string(1, c);
  command += "' 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return "";
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  if (pclose(pipe) != 0) return "";
  return out;
}

bool PostgresServer::Start() {
  if (pid_ > 0) return true;
  const std::string bin = PostgresBinDir();
  if (bin.empty()) return false;
  const std::string data = dir_ + "/data";
  const std::string log = dir_ + "/postgres.log";
  if (!initialized_) {
    // -N: no fsync during initdb (a throwaway cluster); trust auth on loopback only.
    int rc = RunToCompletion({bin + "/initdb", "-D", data, "-U", "firebreak", "-A", "trust",
                              "-E", "UTF8", "--locale=C", "-N"},
                             log, RunUser(), std::chrono::seconds(120));
    if (rc != 0) return false;
    initialized_ = true;
  }
  for (int tries = 0; tries < 5; ++tries) {
    if (port_ == 0 || tries > 0) port_ = PickFreePort();
    pid_ = Spawn({bin + "/postgres", "-D", data, "-p", std::to_string(port_), "-k", dir_, "-c",
                  "listen_addresses=127.0.0.1", "-c", "max_connections=40", "-c",
                  "shared_buffers=16MB", "-c", "fsync=off", "-c", "synchronous_commit=off"},
                 log, RunUser());
    if (pid_ < 0) return false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    bool up = false;
    while (std::chrono::steady_clock::now() < deadline) {
      if (WaitExit(pid_, std::chrono::milliseconds(1))) break;  // exited: port taken?
      if (RunToCompletion({bin + "/pg_isready", "-q", "-h", "127.0.0.1", "-p",
                           std::to_string(port_)},
                          "", "", std::chrono::seconds(5)) == 0) {
        up = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (up) {
      // The database may exist already (a restart); the error is then ignored.
      RunToCompletion({bin + "/createdb", "-h", "127.0.0.1", "-p", std::to_string(port_), "-U",
                       "firebreak", "firebreak"},
                      log, "", std::chrono::seconds(30));
      return true;
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      WaitExit(pid_, std::chrono::seconds(5));
    }
    pid_ = -1;
  }
  return false;
}

void PostgresServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGINT);  // fast shutdown: clean, what a deploy or reboot does
  if (!WaitExit(pid_, std::chrono::seconds(30))) {
    kill(pid_, SIGKILL);
    WaitExit(pid_, std::chrono::seconds(5));
  }
  pid_ = -1;
}

}  // namespace firebreak::testing
