#include "harness.h"

#include "support/process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <strings.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace firebreak::testing {

TempDir::TempDir() {
  char tmpl[] = "/tmp/firebreak-it-XXXXXX";
  char* dir = mkdtemp(tmpl);
  if (!dir) throw std::runtime_error("mkdtemp failed");
  path_ = dir;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Write(const std::string& name, const std::string& content) const {
  std::string p = File(name);
  std::ofstream(p, std::ios::binary) << content;
  return p;
}

std::string FirebreakBin() {
  const char* bin = std::getenv("FIREBREAK_BIN");
  return bin ? bin : FIREBREAK_DEFAULT_BIN;
}

std::string SchemaErrors(const std::string& schema, const std::string& path) {
  static constexpr char kValidate[] = R"PY(
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft202012Validator(schema)
bad = 0
for n, line in enumerate(open(sys.argv[2]), 1):
    for error in validator.iter_errors(json.loads(line)):
        bad += 1
        print(f"line {n}: {error.json_path}: {error.message}")
sys.exit(1 if bad else 0)
)PY";
  const std::string report = path + ".schema-report";
  int status = RunToCompletion(
      {"/usr/bin/python3", "-c", kValidate, SourceDir() + "/schemas/" + schema + ".schema.json", path},
      report, "", std::chrono::milliseconds(30'000));
  return status == 0 ? "" : "exit " + std::to_string(status) + ": " + ReadFile(report);
}

double LatencyScale() {
  const char* scale = std::getenv("FIREBREAK_TEST_LATENCY_SCALE");
  const double value = scale ? std::atof(scale) : 1.0;
  return value >= 1.0 ? value : 1.0;
}

std::string ReplaceAll(std::string text, const std::string& from, const std::string& to) {
  for (size_t pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

std::string SourceDir() {
  const char* dir = std::getenv("FIREBREAK_SOURCE_DIR");
  return dir ? dir : FIREBREAK_DEFAULT_SOURCE_DIR;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

uint16_t FreePort() { return PickFreePort(); }

namespace {

// The firebreak binary with `args`, output appended to `out_path`.
pid_t SpawnFirebreak(const std::vector<std::string>& args, const std::string& out_path) {
  std::vector<std::string> argv = {FirebreakBin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return Spawn(argv, out_path);
}

int WaitPid(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

}  // namespace

CommandResult RunFirebreak(const std::vector<std::string>& args, std::chrono::seconds timeout) {
  TempDir dir;
  std::string out = dir.File("out.txt");
  pid_t pid = SpawnFirebreak(args, out);
  CommandResult result;
  result.exit_code = WaitPid(pid, timeout);
  if (result.exit_code == -1) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  result.out = ReadFile(out);
  return result;
}

FirebreakProcess::FirebreakProcess(std::string role, std::string config_path, std::string log_path,
                                   uint16_t port)
    : role_(std::move(role)),
      config_path_(std::move(config_path)),
      log_path_(std::move(log_path)),
      port_(port) {}

FirebreakProcess::~FirebreakProcess() {
  if (pid_ > 0) Kill9();
}

bool FirebreakProcess::Start(std::chrono::seconds timeout) {
  pid_ = SpawnFirebreak({role_, "-c", config_path_}, log_path_);
  if (role_ == "worker") {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return waitpid(pid_, nullptr, WNOHANG) == 0;
  }
  return WaitFor(
             [this] {
               if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
                 pid_ = -1;
                 return true;  // exited: stop waiting, report failure below
               }
               HttpRequest req;
               req.method = "GET";
               req.url = "http://127.0.0.1:" + std::to_string(port_) + "/healthz";
               req.timeout = std::chrono::milliseconds(500);
               auto res = HttpCall(req);
               return res.ok() && res->status == 200 && ListensOn(pid_, port_);
             },
             timeout) &&
         pid_ > 0;
}

void FirebreakProcess::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int FirebreakProcess::Terminate(std::chrono::seconds timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int code = WaitPid(pid_, timeout);
  if (code == -1) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  pid_ = -1;
  return code;
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}

std::string Hex(const unsigned char* data, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 15]);
  }
  return out;
}

std::string HmacSha256Hex(const std::string& key, const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &len);
  return Hex(digest, len);
}

namespace {

std::string Unhex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return out;
}

EVP_PKEY* Ed25519Key(const std::string& seed_hex) {
  std::string seed = Unhex(seed_hex);
  return EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), seed.size());
}

}  // namespace

std::string Ed25519PublicHex(const std::string& seed_hex) {
  EVP_PKEY* key = Ed25519Key(seed_hex);
  unsigned char pub[32];
  size_t len = sizeof pub;
  EVP_PKEY_get_raw_public_key(key, pub, &len);
  EVP_PKEY_free(key);
  return Hex(pub, len);
}

std::string Ed25519SignHex(const std::string& seed_hex, const std::string& message) {
  EVP_PKEY* key = Ed25519Key(seed_hex);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char sig[64];
  size_t len = sizeof sig;
  EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key);
  EVP_DigestSign(ctx, sig, &len, reinterpret_cast<const unsigned char*>(message.data()),
                 message.size());
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return Hex(sig, len);
}

Result<HttpResponse> PostTo(uint16_t port, const std::string& path, const std::string& body,
                            std::vector<std::pair<std::string, std::string>> headers) {
  HttpRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(port) + path;
  const bool typed = std::any_of(headers.begin(), headers.end(), [](const auto& header) {
    return strcasecmp(header.first.c_str(), "Content-Type") == 0;
  });
  if (!typed) headers.emplace_back("Content-Type", "application/json");
  req.headers = std::move(headers);
  req.body = body;
  return HttpCall(req);
}

int PostStatus(uint16_t port, const std::string& path, const std::string& body,
               std::vector<std::pair<std::string, std::string>> headers) {
  auto res = PostTo(port, path, body, std::move(headers));
  return res.ok() ? res->status : 0;
}

Result<HttpResponse> PostHmacSigned(uint16_t port, const std::string& path,
                                    const std::string& secret, const std::string& body) {
  return PostTo(port, path, body, {{"X-Signature", HmacSha256Hex(secret, body)}});
}

std::vector<std::pair<std::string, std::string>> SlackHeaders(const std::string& secret,
                                                              const std::string& body,
                                                              int64_t timestamp,
                                                              const std::string& content_type) {
  std::string ts = std::to_string(timestamp);
  return {{"X-Slack-Request-Timestamp", ts},
          {"X-Slack-Signature", "v0=" + HmacSha256Hex(secret, "v0:" + ts + ":" + body)},
          {"Content-Type", content_type}};
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double MetricValue(const std::string& scrape, const std::string& name,
                   const std::vector<std::string>& label_matchers) {
  double total = 0;
  std::istringstream in(scrape);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind(name, 0) != 0) continue;
    char next = line.size() > name.size() ? line[name.size()] : ' ';
    if (next != '{' && next != ' ') continue;
    bool match = true;
    for (const auto& m : label_matchers) {
      if (line.find(m) == std::string::npos) match = false;
    }
    if (!match) continue;
    total += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return total;
}

bool HasMetric(const std::string& scrape, const std::string& name) {
  std::istringstream in(scrape);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.rfind(name, 0) != 0) continue;
    char next = line.size() > name.size() ? line[name.size()] : ' ';
    if (next == '{' || next == ' ') return true;
  }
  return false;
}

std::string ScrapeMetrics(uint16_t port) {
  auto res = HttpCall({"GET",
                       "http://127.0.0.1:" + std::to_string(port) + "/metrics",
                       {},
                       "",
                       std::chrono::seconds(5)});
  return res.ok() && res->status == 200 ? res->body : "";
}

int GetStatus(uint16_t port, const std::string& path) {
  auto res = HttpCall(
      {"GET", "http://127.0.0.1:" + std::to_string(port) + path, {}, "", std::chrono::seconds(5)});
  return res.ok() ? res->status : 0;
}

int64_t QueuedJobs(const std::string& config_path, const std::string& job_type) {
  auto result =
      RunFirebreak({"queue", "stats", "--json", "-c", config_path}, std::chrono::seconds(20));
  if (result.exit_code != 0) return -1;
  auto stats = nlohmann::json::parse(result.out, nullptr, false);
  if (!stats.is_array()) return -1;
  int64_t n = 0;
  for (const auto& row : stats) {
    if (!job_type.empty() && row["job_type"] != job_type) continue;
    n += row["ready"].get<int64_t>() + row["delayed"].get<int64_t>() +
         row["in_flight"].get<int64_t>();
  }
  return n;
}

QueueBackend::QueueBackend(std::string name, const TempDir& dir, RedisServerOptions redis_options)
    : name_(std::move(name)), sqlite_path_(dir.File("queue.db")) {
  if (is_redis()) redis_ = std::make_unique<RedisServer>(std::move(redis_options));
}

bool QueueBackend::Start() {
  if (!is_redis()) return true;
  if (!RedisServerAvailable()) return false;
  return redis_->Start();
}

std::string QueueBackend::QueueToml(const std::string& extra_keys) const {
  std::string where = is_redis() ? "backend = \"redis\"\nurl = \"" + redis_->Url() + "\"\n"
                                 : "path = \"" + sqlite_path_ + "\"\n";
  return "[queue]\n" + where + extra_keys;
}

std::string QueueBackend::Describe() const {
  if (!is_redis()) return "sqlite at " + sqlite_path_;
  if (!RedisServerAvailable()) return "redis: redis-server is not on PATH";
  return "redis at " + redis_->Url() + "; redis log:\n" + redis_->Log();
}

std::vector<std::string> AllBackends() { return {"sqlite", "redis"}; }

std::string BackendName(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

}  // namespace firebreak::testing
