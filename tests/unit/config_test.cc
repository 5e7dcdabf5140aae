#include "config/config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "config/webhook_presets.h"

namespace firebreak {
namespace {

using std::chrono::milliseconds;

constexpr char kFile[] = "bot.toml";

// Every section with every key set away from its default.
constexpr char kFullConfig[] = R"(# line 1
[server]
listen = "0.0.0.0:9000"
threads = 4
max_body = "2MiB"
read_timeout = "7s"
admin_token = { env = "TEST_ADMIN_TOKEN" }
admin_listen = "127.0.0.1:9090"

[queue]
backend = "redis"
path = "data/q.db"
url = "redis://:pw@10.0.0.5:6379/2"
max_depth = 5000
dedupe_ttl = "12h"
durability = "process"

[worker]
max_in_flight = 128
shutdown_grace = "45s"
sidecar = "[::1]:8181"

[store]
sessions = "redis"
sessions_url = "redis://10.0.0.5:6379/3"
state = "postgres"
state_url = "postgresql://bot:pw@db:5432/bot"

[[sources]]
name = "slack"
kind = "slack"
path = "/hooks/slack"
secret = { env = "SLACK_SIGNING_SECRET" }
job = "slack.event"

[[sources]]
name = "discord"
kind = "discord"
path = "/hooks/discord"
public_key = "e7b6f1a8c1d5a0b3e7b6f1a8c1d5a0b3e7b6f1a8c1d5a0b3e7b6f1a8c1d5a0b3"
job = "slack.event"

[[sources]]
name = "wa"
kind = "meta"
path = "/hooks/meta"
secret = { file = "/run/secrets/meta" }
verify_token = { vault = "secret/data/meta#verify" }
job = "deploy"

[[sources]]
name = "shop"
kind = "hmac"
path = "/hooks/shop"
secret = { env = "SHOP_SECRET" }
job = "deploy"
header = "X-Shop-Signature"
prefix = "sha512="
algorithm = "sha512"
dedupe = "/order/id"

[[jobs]]
type = "slack.event"
handler = { command = ["python3", "bots/echo.py", "--fast"] }
concurrency = 8
timeout = "90s"
max_attempts = 9
backoff = { base = "1s", factor = 2.5, max = "10m", jitter = "equal" }
ordering = "/event/channel"

[[jobs]]
type = "deploy"
handler = { url = "https://127.0.0.1:9000/jobs", ca_file = "/etc/firebreak/handler-ca.pem" }
backoff = { factor = 3 }

[[integrations]]
name = "slack-api"
base_url = "https://slack.com/"
auth = { bearer = { env = "SLACK_BOT_TOKEN" } }
timeout = "3s"
max_concurrency = 10
retry = { attempts = 4, backoff = ["100ms", "2s"], jitter = false }
breaker = { failure_rate = 0.25, min_calls = 5, window = "1m", open_for = "15s" }
rate_limit = { rate = "600/m", burst = 7 }

[[integrations]]
name = "crm"
base_url = "http://crm.local:8080/api"
auth = { header = { name = "X-Api-Key", value = { file = "/run/secrets/crm" } } }
rate_limit = { rate = "2.5/s" }

[telemetry]
log_format = "text"
log_level = "debug"
otlp_endpoint = "http://127.0.0.1:4318"
service_name = "bot-prod"
)";

Result<Config> Parse(const std::string& text) { return ParseConfig(text, kFile); }

// The error for `text`, which must be invalid.
std::string ErrorOf(const std::string& text) {
  Result<Config> config = Parse(text);
  EXPECT_FALSE(config.ok()) << "config unexpectedly valid:\n" << text;
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  return config.status().message();
}

// Asserts the error starts with "bot.toml:<line>:" and names `key_path` and `what`.
void ExpectError(const std::string& text, int line, const std::string& key_path,
                 const std::string& what) {
  std::string message = ErrorOf(text);
  std::string prefix = std::string(kFile) + ":" + std::to_string(line) + ":";
  EXPECT_EQ(message.rfind(prefix, 0), 0u) << message;
  EXPECT_NE(message.find(": " + key_path + ": "), std::string::npos) << message;
  EXPECT_NE(message.find(what), std::string::npos) << message;
}

// A minimal valid config that tests extend with one broken line.
constexpr char kMinimal[] = R"([[sources]]
name = "gh"
kind = "github"
path = "/hooks/gh"
secret = { env = "GH_SECRET" }
job = "push"

[[jobs]]
type = "push"
handler = { url = "http://127.0.0.1:9000/jobs" }
)";

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/config_test.XXXXXX";
    char* made = mkdtemp(pattern);
    EXPECT_NE(made, nullptr);
    path_ = made != nullptr ? made : "/tmp";
  }
  ~TempDir() {
    for (const std::string& file : files_) std::remove(file.c_str());
    rmdir(path_.c_str());
  }
  std::string Write(const std::string& name, const std::string& content) {
    std::string file = path_ + "/" + name;
    std::ofstream(file, std::ios::binary) << content;
    files_.push_back(file);
    return file;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

// Sets an environment variable for one test and restores the old state after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// ---------------------------------------------------------------------------------
// Valid configs

TEST(ConfigTest, FullConfigRoundTripsEveryField) {
  Result<Config> parsed = Parse(kFullConfig);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  const Config& config = *parsed;
  EXPECT_EQ(config.file, "bot.toml");

  EXPECT_EQ(config.server.listen, "0.0.0.0:9000");
  EXPECT_EQ(config.server.threads, 4);
  EXPECT_EQ(config.server.max_body, 2u * 1024 * 1024);
  EXPECT_EQ(config.server.read_timeout, milliseconds(7'000));
  ASSERT_TRUE(config.server.admin_token.has_value());
  EXPECT_EQ(config.server.admin_token->kind, Secret::Kind::kEnv);
  EXPECT_EQ(config.server.admin_token->ref, "TEST_ADMIN_TOKEN");
  EXPECT_EQ(config.server.admin_token->where, "bot.toml:7:15");
  EXPECT_EQ(config.server.admin_token->value, "");
  EXPECT_EQ(config.server.admin_listen, "127.0.0.1:9090");

  EXPECT_EQ(config.queue.backend, "redis");
  EXPECT_EQ(config.queue.path, "data/q.db");
  EXPECT_EQ(config.queue.url, "redis://:pw@10.0.0.5:6379/2");
  EXPECT_EQ(config.queue.max_depth, 5000);
  EXPECT_EQ(config.queue.dedupe_ttl, milliseconds(12 * 3600 * 1000));
  EXPECT_EQ(config.queue.durability, Durability::kProcess);

  EXPECT_EQ(config.worker.max_in_flight, 128);
  EXPECT_EQ(config.worker.shutdown_grace, milliseconds(45'000));
  EXPECT_EQ(config.worker.sidecar, "[::1]:8181");

  EXPECT_EQ(config.store.sessions, "redis");
  EXPECT_EQ(config.store.sessions_url, "redis://10.0.0.5:6379/3");
  EXPECT_EQ(config.store.state, "postgres");
  EXPECT_EQ(config.store.state_url, "postgresql://bot:pw@db:5432/bot");

  ASSERT_EQ(config.sources.size(), 4u);
  const SourceConfig& slack = config.sources[0];
  EXPECT_EQ(slack.name, "slack");
  EXPECT_EQ(slack.kind, SourceKind::kSlack);
  EXPECT_EQ(slack.path, "/hooks/slack");
  ASSERT_TRUE(slack.secret.has_value());
  EXPECT_EQ(slack.secret->Describe(), "env SLACK_SIGNING_SECRET");
  EXPECT_EQ(slack.job, "slack.event");
  EXPECT_EQ(slack.where, "bot.toml:29:1");
  EXPECT_EQ(slack.scheme.header, "X-Signature");  // hmac defaults stay untouched
  EXPECT_EQ(slack.scheme.algorithm, "sha256");

  const SourceConfig& discord = config.sources[1];
  EXPECT_EQ(discord.kind, SourceKind::kDiscord);
  EXPECT_FALSE(discord.secret.has_value());
  EXPECT_EQ(discord.public_key.size(), 64u);

  const SourceConfig& meta = config.sources[2];
  EXPECT_EQ(meta.kind, SourceKind::kMeta);
  ASSERT_TRUE(meta.secret.has_value());
  EXPECT_EQ(meta.secret->kind, Secret::Kind::kFile);
  EXPECT_EQ(meta.secret->ref, "/run/secrets/meta");
  ASSERT_TRUE(meta.verify_token.has_value());
  EXPECT_EQ(meta.verify_token->kind, Secret::Kind::kVault);
  EXPECT_EQ(meta.verify_token->Describe(), "vault secret/data/meta#verify");
  EXPECT_EQ(meta.job, "deploy");

  const SourceConfig& shop = config.sources[3];
  EXPECT_EQ(shop.kind, SourceKind::kHmac);
  EXPECT_EQ(shop.scheme.header, "X-Shop-Signature");
  EXPECT_EQ(shop.scheme.prefix, "sha512=");
  EXPECT_EQ(shop.scheme.algorithm, "sha512");
  EXPECT_EQ(shop.dedupe, std::vector<std::string>{"/order/id"});

  ASSERT_EQ(config.jobs.size(), 2u);
  const JobConfig& event = config.jobs[0];
  EXPECT_EQ(event.type, "slack.event");
  EXPECT_EQ(event.handler.command, (std::vector<std::string>{"python3", "bots/echo.py", "--fast"}));
  EXPECT_EQ(event.handler.url, "");
  EXPECT_EQ(event.handler.ca_file, "");
  EXPECT_EQ(event.concurrency, 8);
  EXPECT_EQ(event.timeout, milliseconds(90'000));
  EXPECT_EQ(event.max_attempts, 9);
  EXPECT_EQ(event.backoff.base, milliseconds(1'000));
  EXPECT_DOUBLE_EQ(event.backoff.factor, 2.5);
  EXPECT_EQ(event.backoff.max, milliseconds(600'000));
  EXPECT_EQ(event.backoff.jitter, Jitter::kEqual);
  EXPECT_EQ(event.key, "/event/channel");

  const JobConfig& deploy = config.jobs[1];
  EXPECT_TRUE(deploy.handler.command.empty());
  EXPECT_EQ(deploy.handler.url, "https://127.0.0.1:9000/jobs");
  EXPECT_EQ(deploy.handler.ca_file, "/etc/firebreak/handler-ca.pem");
  EXPECT_DOUBLE_EQ(deploy.backoff.factor, 3);
  EXPECT_EQ(deploy.backoff.base, milliseconds(250));  // unset backoff keys keep defaults
  EXPECT_EQ(deploy.backoff.jitter, Jitter::kFull);

  ASSERT_EQ(config.integrations.size(), 2u);
  const IntegrationConfig& api = config.integrations[0];
  EXPECT_EQ(api.name, "slack-api");
  EXPECT_EQ(api.base_url, "https://slack.com");  // trailing slash dropped
  ASSERT_TRUE(api.auth.has_value());
  EXPECT_EQ(api.auth->kind, IntegrationAuth::Kind::kBearer);
  EXPECT_EQ(api.auth->secret.Describe(), "env SLACK_BOT_TOKEN");
  EXPECT_EQ(api.timeout, milliseconds(3'000));
  EXPECT_EQ(api.max_concurrency, 10);
  EXPECT_EQ(api.retry.attempts, 4);
  EXPECT_EQ(api.retry.backoff, (std::vector<milliseconds>{milliseconds(100), milliseconds(2000)}));
  EXPECT_FALSE(api.retry.jitter);
  EXPECT_DOUBLE_EQ(api.breaker.failure_rate, 0.25);
  EXPECT_EQ(api.breaker.min_calls, 5);
  EXPECT_EQ(api.breaker.window, milliseconds(60'000));
  EXPECT_EQ(api.breaker.open_for, milliseconds(15'000));
  ASSERT_TRUE(api.rate_limit.has_value());
  EXPECT_EQ(api.rate_limit->rate, "600/m");
  EXPECT_DOUBLE_EQ(api.rate_limit->per_second, 10);
  EXPECT_EQ(api.rate_limit->burst, 7);

  const IntegrationConfig& crm = config.integrations[1];
  ASSERT_TRUE(crm.auth.has_value());
  EXPECT_EQ(crm.auth->kind, IntegrationAuth::Kind::kHeader);
  EXPECT_EQ(crm.auth->header_name, "X-Api-Key");
  EXPECT_EQ(crm.auth->secret.Describe(), "file /run/secrets/crm");
  ASSERT_TRUE(crm.rate_limit.has_value());
  EXPECT_DOUBLE_EQ(crm.rate_limit->per_second, 2.5);
  EXPECT_EQ(crm.rate_limit->burst, 1);  // default: evenly spaced
  EXPECT_EQ(crm.retry.attempts, 3);     // defaults
  EXPECT_EQ(crm.timeout, milliseconds(5'000));

  EXPECT_EQ(config.telemetry.log_format, "text");
  EXPECT_EQ(config.telemetry.log_level, "debug");
  EXPECT_EQ(config.telemetry.otlp_endpoint, "http://127.0.0.1:4318");
  EXPECT_EQ(config.telemetry.service_name, "bot-prod");

  EXPECT_EQ(config.FindJob("deploy"), &config.jobs[1]);
  EXPECT_EQ(config.FindJob("nope"), nullptr);
  EXPECT_EQ(config.FindSource("shop"), &config.sources[3]);
  EXPECT_EQ(config.FindSource("nope"), nullptr);
  EXPECT_EQ(config.FindIntegration("crm"), &config.integrations[1]);
  EXPECT_EQ(config.FindIntegration("nope"), nullptr);
}

TEST(ConfigTest, EmptyFileGivesDefaults) {
  Result<Config> parsed = Parse("");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  const Config& config = *parsed;
  Config defaults;
  EXPECT_EQ(config.server.listen, "127.0.0.1:8080");
  EXPECT_EQ(config.server.threads, 0);
  EXPECT_EQ(config.server.max_body, 1024u * 1024);
  EXPECT_EQ(config.server.read_timeout, milliseconds(10'000));
  EXPECT_FALSE(config.server.admin_token.has_value());
  EXPECT_TRUE(config.server.admin_tokens.empty());
  EXPECT_FALSE(config.server.AdminEnabled());
  EXPECT_EQ(config.server.admin_listen, "127.0.0.1:8082");  // loopback, apart from ingress
  EXPECT_EQ(config.queue.backend, "sqlite");
  EXPECT_EQ(config.queue.path, "var/firebreak.db");
  EXPECT_EQ(config.queue.max_depth, 100'000);
  EXPECT_EQ(config.queue.dedupe_ttl, milliseconds(24 * 3600 * 1000));
  EXPECT_EQ(config.queue.durability, Durability::kFsync);
  EXPECT_EQ(config.queue.timeout, milliseconds(2'000));
  EXPECT_EQ(config.queue.cache_size, 8u * 1024 * 1024);
  EXPECT_EQ(config.store.timeout, milliseconds(2'000));
  EXPECT_EQ(config.worker.max_in_flight, 64);
  EXPECT_EQ(config.worker.shutdown_grace, milliseconds(30'000));
  EXPECT_EQ(config.worker.sidecar, "127.0.0.1:8081");
  EXPECT_EQ(config.store.sessions, "sqlite");
  EXPECT_EQ(config.store.state, "sqlite");
  EXPECT_EQ(config.telemetry.log_format, "json");
  EXPECT_EQ(config.telemetry.log_level, "info");
  EXPECT_EQ(config.telemetry.service_name, "firebreak");
  EXPECT_TRUE(config.sources.empty());
  EXPECT_TRUE(config.jobs.empty());
  EXPECT_TRUE(config.integrations.empty());
}

TEST(ConfigTest, StoreTimeoutsAndCacheSize) {
  Result<Config> parsed = Parse(
      "[queue]\ntimeout = \"750ms\"\ncache_size = \"16MiB\"\n[store]\ntimeout = \"3s\"\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->queue.timeout, milliseconds(750));
  EXPECT_EQ(parsed->queue.cache_size, 16u * 1024 * 1024);
  EXPECT_EQ(parsed->store.timeout, milliseconds(3'000));
}

TEST(ConfigTest, JobAndIntegrationDefaultsWhenKeysAbsent) {
  Result<Config> parsed = Parse(std::string(kMinimal) + R"(
[[integrations]]
name = "api"
base_url = "https://api.example.com"
)");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  const JobConfig& job = parsed->jobs.at(0);
  EXPECT_EQ(job.concurrency, 20);
  EXPECT_EQ(job.timeout, milliseconds(30'000));
  EXPECT_EQ(job.max_attempts, 5);
  EXPECT_EQ(job.backoff.base, milliseconds(250));
  EXPECT_DOUBLE_EQ(job.backoff.factor, 4);
  EXPECT_EQ(job.backoff.max, milliseconds(300'000));
  EXPECT_EQ(job.backoff.jitter, Jitter::kFull);
  EXPECT_EQ(job.key, "");
  EXPECT_EQ(job.where, "bot.toml:8:1");

  const IntegrationConfig& api = parsed->integrations.at(0);
  EXPECT_FALSE(api.auth.has_value());
  EXPECT_EQ(api.timeout, milliseconds(5'000));
  EXPECT_EQ(api.max_concurrency, 40);
  EXPECT_EQ(api.retry.attempts, 3);
  EXPECT_EQ(api.retry.backoff.size(), 3u);
  EXPECT_TRUE(api.retry.jitter);
  EXPECT_DOUBLE_EQ(api.breaker.failure_rate, 0.5);
  EXPECT_EQ(api.breaker.min_calls, 20);
  EXPECT_FALSE(api.rate_limit.has_value());
}

TEST(ConfigTest, DesignExampleIsValid) {
  // The example from DESIGN §2, verbatim in its shape.
  Result<Config> parsed = Parse(R"(
[server]
listen = "127.0.0.1:8080"
threads = 0
max_body = "1MiB"
read_timeout = "10s"
admin_token = { env = "FIREBREAK_ADMIN_TOKEN" }
admin_listen = "127.0.0.1:8082"
[queue]
backend = "sqlite"
path = "var/firebreak.db"
url = "redis://127.0.0.1:6379/0"
max_depth = 100000
dedupe_ttl = "24h"
durability = "fsync"
[worker]
max_in_flight = 64
shutdown_grace = "30s"
sidecar = "127.0.0.1:8081"
[store]
sessions = "sqlite"
sessions_url = "redis://127.0.0.1:6379/1"
state = "sqlite"
state_url = "postgresql://firebreak@127.0.0.1:5432/firebreak"
[[sources]]
name = "slack"
kind = "slack"
path = "/hooks/slack"
secret = { env = "SLACK_SIGNING_SECRET" }
job = "slack.event"
[[jobs]]
type = "slack.event"
handler = { command = ["python3", "bots/echo.py"] }
concurrency = 20
timeout = "30s"
max_attempts = 5
backoff = { base = "250ms", factor = 4, max = "5m", jitter = "full" }
ordering = ""
[[integrations]]
name = "slack-api"
base_url = "https://slack.com"
auth = { bearer = { env = "SLACK_BOT_TOKEN" } }
timeout = "5s"
max_concurrency = 40
retry = { attempts = 3, backoff = ["250ms", "1s", "4s"], jitter = true }
breaker = { failure_rate = 0.5, min_calls = 20, window = "30s", open_for = "30s" }
rate_limit = { rate = "50/s", burst = 50 }
[telemetry]
log_format = "json"
log_level = "info"
otlp_endpoint = ""
service_name = "firebreak"
)");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->integrations.at(0).rate_limit->burst, 50);
}

TEST(ConfigTest, ForwardReferenceToLaterJobIsFine) {
  // [[sources]] comes before the [[jobs]] it names in kMinimal.
  EXPECT_TRUE(Parse(kMinimal).ok());
}

// ---------------------------------------------------------------------------------
// Errors: each names the file, line and key path

TEST(ConfigErrorTest, UnknownTopLevelKeyWithSuggestion) {
  ExpectError("[server]\nlisten = \"127.0.0.1:1\"\n\n[servr]\nthreads = 1\n", 4, "servr",
              "unknown key (did you mean \"server\"?)");
  ExpectError("color = 1\n", 1, "color", "unknown key");
  EXPECT_EQ(ErrorOf("color = 1\n").find("did you mean"), std::string::npos);
}

TEST(ConfigErrorTest, UnknownNestedKeyWithSuggestion) {
  EXPECT_EQ(ErrorOf("[server]\nthreads = 1\n\nlisen = \"x:1\"\n"),
            "bot.toml:4:1: server.lisen: unknown key (did you mean \"listen\"?)");
  ExpectError(std::string(kMinimal) + "concurency = 3\n", 11, "jobs[0].concurency",
              "did you mean \"concurrency\"?");
  ExpectError(std::string(kMinimal) + "backoff = { base = \"1s\", jiter = \"none\" }\n", 11,
              "jobs[0].backoff.jiter", "did you mean \"jitter\"?");
  ExpectError(std::string(kMinimal) + "handler2 = 1\n", 11, "jobs[0].handler2", "unknown key");
}

TEST(ConfigErrorTest, UnknownKeyInsideSecretAndHandler) {
  ExpectError("[server]\nadmin_token = { evn = \"X\" }\n", 2, "server.admin_token.evn",
              "unknown key (did you mean \"env\"?)");
  ExpectError(R"([[jobs]]
type = "t"
handler = { url = "http://x", shell = true }
)",
              3, "jobs[0].handler.shell", "unknown key");
  ExpectError("[[jobs]]\ntype = \"t\"\nhandler = { comand = [\"a\"] }\n", 3,
              "jobs[0].handler.comand", "unknown key (did you mean \"command\"?)");
  ExpectError(
      "[[integrations]]\nname = \"a\"\nbase_url = \"https://a\"\n"
      "auth = { baerer = { env = \"T\" } }\n",
      4, "integrations[0].auth.baerer", "unknown key (did you mean \"bearer\"?)");
}

TEST(ConfigErrorTest, ReportsTheEarliestProblemInTheFile) {
  std::string message = ErrorOf("[server]\nthreads = -1\n[queue]\nbackend = \"mysql\"\n");
  EXPECT_EQ(message.rfind("bot.toml:2:", 0), 0u) << message;
  // Later sections parsed earlier still lose to an earlier line.
  message = ErrorOf("[telemetry]\nlog_level = \"loud\"\n[server]\nthreads = -1\n");
  EXPECT_EQ(message.rfind("bot.toml:2:", 0), 0u) << message;
}

TEST(ConfigErrorTest, LiteralSecret) {
  ExpectError(R"([[sources]]
name = "gh"
kind = "github"
path = "/hooks/gh"
secret = "hunter2"
job = "push"
[[jobs]]
type = "push"
handler = { url = "http://127.0.0.1:9000/jobs" }
)",
              5, "sources[0].secret",
              "secret must be { env = \"...\" }, { file = \"...\" } or "
              "{ vault = \"PATH#FIELD\" }, not a literal");
  EXPECT_EQ(ErrorOf("[server]\nadmin_token = \"hunter2\"\n").find("hunter2"), std::string::npos);
  ExpectError("[server]\nadmin_token = 12\n", 2, "server.admin_token", "not an integer");
}

TEST(ConfigErrorTest, SecretShape) {
  ExpectError("[server]\nadmin_token = { env = \"A\", file = \"/b\" }\n", 2, "server.admin_token",
              "exactly one of env, file or vault");
  ExpectError("[server]\nadmin_token = {}\n", 2, "server.admin_token", "secret must be");
  ExpectError("[server]\nadmin_token = { env = \"\" }\n", 2, "server.admin_token.env",
              "must not be empty");
  // A token pasted where the variable name goes is not echoed back.
  ExpectError("[server]\nadmin_token = { env = \"xoxb-123-secret\" }\n", 2,
              "server.admin_token.env", "bad environment variable name");
  EXPECT_EQ(ErrorOf("[server]\nadmin_token = { env = \"xoxb-123-secret\" }\n").find("xoxb"),
            std::string::npos);
  ExpectError("[server]\nadmin_token = { vault = \"secret/x\" }\n", 2, "server.admin_token.vault",
              "PATH#FIELD");
}

TEST(ConfigErrorTest, BadDuration) {
  ExpectError("[server]\n\nread_timeout = \"5 sec\"\n", 3, "server.read_timeout",
              "bad duration \"5 sec\" (use e.g. \"250ms\", \"5s\", \"2m\", \"24h\")");
  // Control characters are escaped, not printed raw.
  ExpectError("[server]\nread_timeout = \"5\\u0007s\"\n", 2, "server.read_timeout",
              "bad duration \"5\\x07s\"");
  ExpectError(std::string(kMinimal) + "backoff = { base = \"1x\" }\n", 11, "jobs[0].backoff.base",
              "bad duration \"1x\"");
  ExpectError(std::string(kMinimal) + "timeout = 30\n", 11, "jobs[0].timeout", "expected a string");
  ExpectError(std::string(kMinimal) + "timeout = \"0s\"\n", 11, "jobs[0].timeout",
              "must be above zero");
  ExpectError(std::string(kMinimal) + R"(
[[integrations]]
name = "a"
base_url = "https://a"
retry = { backoff = ["1s", "soon"] }
)",
              15, "integrations[0].retry.backoff[1]", "bad duration \"soon\"");
}

TEST(ConfigErrorTest, BadSize) {
  ExpectError("[server]\nmax_body = \"1 MB\"\n", 2, "server.max_body", "bad size \"1 MB\"");
  ExpectError("[server]\nmax_body = 1024\n", 2, "server.max_body", "expected a string");
}

TEST(ConfigErrorTest, UndefinedJobType) {
  std::string text = R"([[jobs]]
type = "slack.event"
handler = { url = "http://127.0.0.1:9000/jobs" }

[[sources]]
name = "slack"
kind = "slack"
path = "/hooks/slack"
secret = { env = "S" }
job = "slack.evnt"
)";
  EXPECT_EQ(ErrorOf(text),
            "bot.toml:10:1: sources[0].job: undefined job type \"slack.evnt\" (did you mean "
            "\"slack.event\"?)");
  ExpectError(R"([[sources]]
name = "slack"
kind = "slack"
path = "/hooks/slack"
secret = { env = "S" }
job = "x"
)",
              6, "sources[0].job", "undefined job type \"x\" (no [[jobs]] are defined)");
}

TEST(ConfigErrorTest, BrokenJobIsReportedInsteadOfTheReferenceToIt) {
  std::string message = ErrorOf(R"([[sources]]
name = "slack"
kind = "slack"
path = "/hooks/slack"
secret = { env = "S" }
job = "t"
[[jobs]]
type = 7
handler = { url = "http://x" }
)");
  EXPECT_EQ(message.rfind("bot.toml:8:", 0), 0u) << message;
  EXPECT_NE(message.find("jobs[0].type: expected a string, not an integer"), std::string::npos);
}

TEST(ConfigErrorTest, WrongTypes) {
  ExpectError("[server]\nlisten = 8080\n", 2, "server.listen", "expected a string, not an integer");
  ExpectError("[server]\nthreads = \"4\"\n", 2, "server.threads",
              "expected an integer, not a string");
  ExpectError("[worker]\nmax_in_flight = 2.5\n", 2, "worker.max_in_flight",
              "expected an integer, not a float");
  ExpectError("server = 3\n", 1, "server", "expected a table, not an integer");
  ExpectError("[sources]\nname = \"x\"\n", 1, "sources", "expected an array of tables");
  ExpectError(R"([[jobs]]
type = "t"
handler = { command = ["a", 2] }
)",
              3, "jobs[0].handler.command[1]", "expected a string, not an integer");
  ExpectError(R"([[integrations]]
name = "a"
base_url = "https://a"
retry = { jitter = "yes" }
)",
              4, "integrations[0].retry.jitter", "expected a boolean");
}

TEST(ConfigErrorTest, DuplicateSourceNameAndPath) {
  std::string source_a = R"([[sources]]
name = "a"
kind = "github"
path = "/hooks/a"
secret = { env = "S" }
job = "push"
)";
  std::string job = R"([[jobs]]
type = "push"
handler = { url = "http://127.0.0.1:9000/jobs" }
)";
  ExpectError(source_a + source_a + job, 8, "sources[1].name",
              "duplicate source name \"a\" (first defined at bot.toml:1:1)");
  std::string source_b = R"([[sources]]
name = "b"
kind = "github"
path = "/hooks/a"
secret = { env = "S" }
job = "push"
)";
  ExpectError(source_a + source_b + job, 10, "sources[1].path",
              "path \"/hooks/a\" is already used by source \"a\"");
}

TEST(ConfigErrorTest, DuplicateJobType) {
  std::string job = "[[jobs]]\ntype = \"push\"\nhandler = { url = \"http://x\" }\n";
  ExpectError(job + job, 5, "jobs[1].type", "duplicate job type \"push\"");
}

TEST(ConfigErrorTest, HandlerNeedsExactlyOneOfCommandAndUrl) {
  ExpectError(R"([[jobs]]
type = "t"
handler = { command = ["python3"], url = "http://x" }
)",
              3, "jobs[0].handler", "exactly one of command or url, not both");
  ExpectError("[[jobs]]\ntype = \"t\"\nhandler = {}\n", 3, "jobs[0].handler",
              "handler must be { command");
  ExpectError("[[jobs]]\ntype = \"t\"\n", 1, "jobs[0].handler", "required key is missing");
  ExpectError("[[jobs]]\ntype = \"t\"\nhandler = { command = [] }\n", 3, "jobs[0].handler.command",
              "must not be empty");
  ExpectError("[[jobs]]\ntype = \"t\"\nhandler = { url = \"ftp://x\" }\n", 3, "jobs[0].handler.url",
              "expected an http:// or https:// URL");
}

// ca_file is the trust for an https url; anywhere else it would be silently unused.
// Whether the file exists is checked when the handler is made (`firebreak check`).
TEST(ConfigErrorTest, HandlerCaFileOnlyWithAnHttpsUrl) {
  ExpectError(R"([[jobs]]
type = "t"
handler = { command = ["python3"], ca_file = "ca.pem" }
)",
              3, "jobs[0].handler.ca_file",
              "only goes with url (the CAs an https:// handler url is checked against)");
  ExpectError(R"([[jobs]]
type = "t"
handler = { url = "http://127.0.0.1:9000/", ca_file = "ca.pem" }
)",
              3, "jobs[0].handler.ca_file",
              "needs an https:// url, not \"http://127.0.0.1:9000/\"");
  ExpectError(R"([[jobs]]
type = "t"
handler = { url = "https://127.0.0.1:9000/", ca_file = "" }
)",
              3, "jobs[0].handler.ca_file", "must not be empty");
  ExpectError(R"([[jobs]]
type = "t"
handler = { url = "https://127.0.0.1:9000/", ca_file = ["ca.pem"] }
)",
              3, "jobs[0].handler.ca_file", "expected a string, not an array");
  ExpectError(R"([[jobs]]
type = "t"
handler = { url = "https://127.0.0.1:9000/", ca_fle = "ca.pem" }
)",
              3, "jobs[0].handler.ca_fle", "unknown key");
  Result<Config> ok = Parse(R"([[jobs]]
type = "t"
handler = { url = "https://127.0.0.1:9000/", ca_file = "/no/such/ca.pem" }
)");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok->jobs[0].handler.ca_file, "/no/such/ca.pem");
}

TEST(ConfigErrorTest, UnknownKind) {
  ExpectError(R"([[sources]]
name = "s"
kind = "slak"
path = "/hooks/s"
secret = { env = "S" }
job = "t"
)",
              3, "sources[0].kind",
              "unknown kind \"slak\" (expected slack, discord, telegram, github, meta, hmac, "
              "stripe, standard-webhooks, svix, shopify, line, twilio, twitch, zoom, gitlab, "
              "mattermost, teams, paddle, linear, pagerduty, intercom or lemonsqueezy; did you "
              "mean \"slack\"?)");
}

TEST(ConfigErrorTest, HmacOnlyKeyOnSlackSource) {
  std::string text = R"([[sources]]
name = "s"
kind = "slack"
path = "/hooks/s"
secret = { env = "S" }
job = "t"
algorithm = "sha1"
[[jobs]]
type = "t"
handler = { url = "http://x" }
)";
  ExpectError(text, 7, "sources[0].algorithm",
              "only allowed for kind \"hmac\" (this source is kind \"slack\")");
}

TEST(ConfigTest, DiscordSigningKeyIsAnOptionalSecretOnlyForDiscord) {
  const std::string job = "[[jobs]]\ntype = \"t\"\nhandler = { url = \"http://x\" }\n";
  const std::string discord =
      "[[sources]]\nname = \"d\"\nkind = \"discord\"\npath = \"/d\"\njob = \"t\"\n"
      "public_key = \"" + std::string(64, 'a') + "\"\n";
  Result<Config> parsed = Parse(discord + "signing_key = { file = \"/run/k\" }\n" + job);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ASSERT_TRUE(parsed->sources.at(0).signing_key.has_value());
  EXPECT_EQ(parsed->sources.at(0).signing_key->ref, "/run/k");
  EXPECT_FALSE(Parse(discord + "signing_key = \"9d61b19d\"\n" + job).ok());  // literal
  ExpectError(
      "[[sources]]\nname = \"s\"\nkind = \"slack\"\npath = \"/s\"\njob = \"t\"\n"
      "secret = { env = \"S\" }\nsigning_key = { env = \"K\" }\n" + job,
      7, "sources[0].signing_key", "only allowed for kind \"discord\"");
}

TEST(ConfigErrorTest, KindSpecificRequirements) {
  std::string job = "[[jobs]]\ntype = \"t\"\nhandler = { url = \"http://x\" }\n";
  ExpectError("[[sources]]\nname = \"s\"\nkind = \"telegram\"\npath = \"/t\"\njob = \"t\"\n" + job,
              1, "sources[0].secret", "required key is missing");
  ExpectError("[[sources]]\nname = \"d\"\nkind = \"discord\"\npath = \"/d\"\njob = \"t\"\n" + job,
              1, "sources[0].public_key", "required key is missing");
  ExpectError(
      "[[sources]]\nname = \"d\"\nkind = \"discord\"\npath = \"/d\"\njob = \"t\"\n"
      "public_key = \"abc\"\n" +
          job,
      6, "sources[0].public_key", "64 hex characters");
  ExpectError(
      "[[sources]]\nname = \"m\"\nkind = \"meta\"\npath = \"/m\"\njob = \"t\"\n"
      "secret = { env = \"S\" }\n" +
          job,
      1, "sources[0].verify_token", "required key is missing");
  ExpectError(
      "[[sources]]\nname = \"g\"\nkind = \"github\"\npath = \"/g\"\njob = \"t\"\n"
      "secret = { env = \"S\" }\nverify_token = { env = \"V\" }\n" +
          job,
      7, "sources[0].verify_token", "only allowed for kind \"meta\"");
  ExpectError(
      "[[sources]]\nname = \"h\"\nkind = \"hmac\"\npath = \"/h\"\njob = \"t\"\n"
      "secret = { env = \"S\" }\nalgorithm = \"md5\"\n" +
          job,
      7, "sources[0].algorithm", "unknown algorithm \"md5\"");
  ExpectError(
      "[[sources]]\nname = \"h\"\nkind = \"hmac\"\npath = \"/h\"\njob = \"t\"\n"
      "secret = { env = \"S\" }\ndedupe = \"id\"\n" +
          job,
      7, "sources[0].dedupe", "bad JSON pointer \"id\"");
}

TEST(ConfigErrorTest, SourcePathsAndNames) {
  std::string job = "[[jobs]]\ntype = \"t\"\nhandler = { url = \"http://x\" }\n";
  auto source = [&](const std::string& name, const std::string& path) {
    return "[[sources]]\nname = \"" + name + "\"\nkind = \"github\"\npath = \"" + path +
           "\"\nsecret = { env = \"S\" }\njob = \"t\"\n" + job;
  };
  ExpectError(source("s", "hooks"), 4, "sources[0].path", "must start with '/'");
  ExpectError(source("s", "/metrics"), 4, "sources[0].path", "reserved");
  ExpectError(source("s", "/admin/x"), 4, "sources[0].path", "reserved");
  ExpectError(source("s", "/healthz"), 4, "sources[0].path", "reserved");
  ExpectError(source("my source", "/s"), 2, "sources[0].name", "bad name");
  ExpectError(source("", "/s"), 2, "sources[0].name", "must not be empty");
  EXPECT_TRUE(Parse(source("s", "/administration")).ok());
}

TEST(ConfigErrorTest, EnumsAndRanges) {
  ExpectError("[queue]\nbackend = \"mysql\"\n", 2, "queue.backend",
              "unknown backend \"mysql\" (expected sqlite or redis)");
  ExpectError("[queue]\ndurability = \"never\"\n", 2, "queue.durability", "unknown durability");
  ExpectError("[queue]\nmax_depth = 0\n", 2, "queue.max_depth", "must be at least 1, got 0");
  ExpectError("[queue]\ntimeout = \"5m\"\n", 2, "queue.timeout", "must be between 10ms and 1m");
  ExpectError("[queue]\ncache_size = \"1KiB\"\n", 2, "queue.cache_size", "at least 64KiB");
  ExpectError("[store]\ntimeout = \"1ms\"\n", 2, "store.timeout", "must be between 10ms and 1m");
  ExpectError("[worker]\nmax_in_flight = 0\n", 2, "worker.max_in_flight", "must be at least 1");
  ExpectError("[server]\nthreads = -1\n", 2, "server.threads", "must be between 0 and");
  ExpectError("[telemetry]\nlog_format = \"xml\"\n", 2, "telemetry.log_format",
              "unknown log format");
  ExpectError("[telemetry]\nlog_level = \"warning\"\n", 2, "telemetry.log_level",
              "unknown log level");
  ExpectError("[store]\nsessions = \"memcached\"\n", 2, "store.sessions", "unknown sessions store");
  ExpectError("[store]\nstate = \"mysql\"\n", 2, "store.state", "unknown state store");
  ExpectError(std::string(kMinimal) + "concurrency = 0\n", 11, "jobs[0].concurrency",
              "must be at least 1");
  ExpectError(std::string(kMinimal) + "max_attempts = 0\n", 11, "jobs[0].max_attempts",
              "must be at least 1");
  ExpectError(std::string(kMinimal) + "backoff = { factor = 0.5 }\n", 11, "jobs[0].backoff.factor",
              "must be between 1 and");
  ExpectError(std::string(kMinimal) + "backoff = { jitter = \"half\" }\n", 11,
              "jobs[0].backoff.jitter", "unknown jitter \"half\"");
  ExpectError(std::string(kMinimal) + "backoff = { base = \"10s\", max = \"1s\" }\n", 11,
              "jobs[0].backoff.max", "below base");
  ExpectError(std::string(kMinimal) + "ordering = \"event.channel\"\n", 11, "jobs[0].ordering",
              "bad JSON pointer");
  ExpectError(std::string(kMinimal) + "key = \"event channel\"\n", 11, "jobs[0].key",
              "a JSON pointer (\"/event/channel\") or a search key name");
  ExpectError(std::string(kMinimal) + "key = \"/a~2\"\n", 11, "jobs[0].key", "bad JSON pointer");
  ExpectError(std::string(kMinimal) + "ordering = \"/a\"\nkey = \"/b\"\n", 12, "jobs[0].key",
              "either key or ordering");
  ExpectError(std::string(kMinimal) + "concurrency_per_key = 2\n", 11,
              "jobs[0].concurrency_per_key", "needs key");
  ExpectError(std::string(kMinimal) + "key = \"/a\"\nconcurrency_per_key = 0\n", 12,
              "jobs[0].concurrency_per_key", "must be at least 1");
  ExpectError(std::string(kMinimal) + "ordering = \"/a\"\nconcurrency_per_key = 3\n", 12,
              "jobs[0].concurrency_per_key", "one job per key");
}

// `key` is a JSON pointer or a search key name, with concurrency_per_key jobs of a key at
// once; `ordering` is a key with one.
TEST(ConfigTest, JobKeys) {
  Result<Config> pointer =
      Parse(std::string(kMinimal) + "key = \"/repository/id\"\nconcurrency_per_key = 4\n");
  ASSERT_TRUE(pointer.ok()) << pointer.status().ToString();
  EXPECT_EQ(pointer->jobs[0].key, "/repository/id");
  EXPECT_EQ(pointer->jobs[0].concurrency_per_key, 4);
  Result<Config> search_key = Parse(std::string(kMinimal) + "key = \"github.repo\"\n");
  ASSERT_TRUE(search_key.ok()) << search_key.status().ToString();
  EXPECT_EQ(search_key->jobs[0].key, "github.repo");
  EXPECT_EQ(search_key->jobs[0].concurrency_per_key, 1);
  Result<Config> priority = Parse(std::string(kMinimal) +
                                  "priority_from = \"/priority\"\npriority_step = \"30s\"\n");
  ASSERT_TRUE(priority.ok()) << priority.status().ToString();
  EXPECT_EQ(priority->jobs[0].priority_from, "/priority");
  EXPECT_EQ(priority->jobs[0].priority_step, milliseconds(30'000));
  ExpectError(std::string(kMinimal) + "priority_from = \"priority\"\n", 11,
              "jobs[0].priority_from", "bad JSON pointer");
  ExpectError("[[sources]]\nname = \"gh\"\nkind = \"github\"\npath = \"/hooks/gh\"\n"
              "secret = { env = \"GH_SECRET\" }\njob = \"push\"\npriority = 4\n",
              7, "sources[0].priority", "must be between 0 and 3");
  Result<Config> debounce =
      Parse(std::string(kMinimal) + "debounce = { key = \"github.repo\", period = \"2s\" }\n");
  ASSERT_TRUE(debounce.ok()) << debounce.status().ToString();
  EXPECT_EQ(debounce->jobs[0].debounce_key, "github.repo");
  EXPECT_EQ(debounce->jobs[0].debounce_period, milliseconds(2000));
  ExpectError(std::string(kMinimal) + "debounce = { key = \"/chat\" }\n", 11,
              "jobs[0].debounce.period", "is required");
  ExpectError(std::string(kMinimal) + "debounce = { key = \"/chat\", period = \"2h\" }\n", 11,
              "jobs[0].debounce.period", "at most 1h");
  ExpectError(std::string(kMinimal) + "debounce = { period = \"1s\" }\n", 11,
              "jobs[0].debounce.key", "");
  Result<Config> global = Parse(std::string(kMinimal) + "global_concurrency = 10\n");
  ASSERT_TRUE(global.ok()) << global.status().ToString();
  EXPECT_EQ(global->jobs[0].global_concurrency, 10);
  EXPECT_EQ(Parse(kMinimal)->jobs[0].global_concurrency, 0);  // no cap unless asked
  ExpectError(std::string(kMinimal) + "global_concurrency = 0\n", 11,
              "jobs[0].global_concurrency", "must be at least 1");
  // throttle = { per_key = "<runs>/<period>" }, on a keyed job.
  for (const auto& [rate, runs, period_ms] :
       std::vector<std::tuple<std::string, int, int64_t>>{
           {"5/10s", 5, 10'000}, {"1/s", 1, 1000}, {"100/m", 100, 60'000}, {"3/500ms", 3, 500}}) {
    Result<Config> throttle = Parse(std::string(kMinimal) + "key = \"/chat\"\nthrottle = { per_key = \"" +
                                    rate + "\" }\n");
    ASSERT_TRUE(throttle.ok()) << rate << ": " << throttle.status().ToString();
    EXPECT_EQ(throttle->jobs[0].throttle_per_key, runs) << rate;
    EXPECT_EQ(throttle->jobs[0].throttle_period, milliseconds(period_ms)) << rate;
  }
  ExpectError(std::string(kMinimal) + "throttle = { per_key = \"5/10s\" }\n", 11,
              "jobs[0].throttle", "per_key needs key");
  for (const char* bad : {"5", "/10s", "0/s", "five/s", "5/10", "5/0s", "5/10y", "-1/s"}) {
    ExpectError(std::string(kMinimal) + "key = \"/chat\"\nthrottle = { per_key = \"" + bad +
                    "\" }\n",
                12, "jobs[0].throttle.per_key", "bad throttle");
  }
  ExpectError(std::string(kMinimal) + "key = \"/chat\"\nthrottle = { per_key = \"1/2d\" }\n", 12,
              "jobs[0].throttle.per_key", "");
  ExpectError(std::string(kMinimal) + "key = \"/chat\"\nthrottle = { rate = \"1/s\" }\n", 12,
              "jobs[0].throttle.per_key", "required key is missing");
  Result<Config> paused = Parse(std::string(kMinimal) + "paused = true\n");
  ASSERT_TRUE(paused.ok()) << paused.status().ToString();
  EXPECT_TRUE(paused->jobs[0].paused);
  ExpectError(std::string(kMinimal) + "paused = \"yes\"\n", 11, "jobs[0].paused", "");
  Result<Config> ordering = Parse(std::string(kMinimal) + "ordering = \"/ref\"\n");
  ASSERT_TRUE(ordering.ok()) << ordering.status().ToString();
  EXPECT_EQ(ordering->jobs[0].key, "/ref");
  EXPECT_EQ(ordering->jobs[0].concurrency_per_key, 1);
}

TEST(ConfigErrorTest, ListenAddresses) {
  ExpectError("[server]\nlisten = \"localhost\"\n", 2, "server.listen", "host:port");
  ExpectError("[server]\nlisten = \"127.0.0.1:0\"\n", 2, "server.listen", "1 to 65535");
  ExpectError("[server]\nlisten = \"127.0.0.1:70000\"\n", 2, "server.listen", "1 to 65535");
  ExpectError("[server]\nlisten = \"::1:8080\"\n", 2, "server.listen", "brackets");
  ExpectError("[server]\nadmin_token = { env = \"T\" }\nadmin_listen = \"127.0.0.1:8080\"\n", 3,
              "server.admin_listen", "takes the port of server.listen");
  ExpectError("[worker]\nsidecar = \"0.0.0.0:8081\"\n", 2, "worker.sidecar", "loopback");
  EXPECT_TRUE(Parse("[server]\nlisten = \"[::1]:8080\"\n").ok());
}

TEST(ConfigErrorTest, IntegrationShape) {
  std::string head = "[[integrations]]\nname = \"a\"\nbase_url = \"https://a\"\n";
  ExpectError(head + "auth = { bearer = \"tok\" }\n", 4, "integrations[0].auth.bearer",
              "not a literal");
  ExpectError(head + "auth = { header = { name = \"X-Key\", value = \"tok\" } }\n", 4,
              "integrations[0].auth.header.value", "not a literal");
  ExpectError(head + "auth = { header = { value = { env = \"K\" } } }\n", 4,
              "integrations[0].auth.header.name", "required key is missing");
  ExpectError(head + "auth = {}\n", 4, "integrations[0].auth",
              "exactly one of bearer, header or path");
  ExpectError(head + "auth = { bearer = { env = \"T\" }, path = { value = { env = \"T\" } } }\n",
              4, "integrations[0].auth", "not several");
  ExpectError(head + "auth = { path = { prefix = \"bot\", value = { env = \"T\" } } }\n", 4,
              "integrations[0].auth.path.prefix", "must start with '/'");
  ExpectError(head + "auth = { path = { prefix = \"/bot\" } }\n", 4,
              "integrations[0].auth.path.value", "required key is missing");
  auto telegram = Parse(head + "auth = { path = { prefix = \"/bot\", value = { env = \"TG\" } } }\n");
  ASSERT_TRUE(telegram.ok()) << telegram.status().message();
  const IntegrationAuth& auth = *telegram->integrations[0].auth;
  EXPECT_EQ(auth.kind, IntegrationAuth::Kind::kPath);
  EXPECT_EQ(auth.path_prefix, "/bot");
  EXPECT_EQ(auth.secret.Describe(), "env TG");
  ExpectError(head + "breaker = { failure_rate = 1.5 }\n", 4,
              "integrations[0].breaker.failure_rate", "must be above 0");
  ExpectError(head + "rate_limit = { rate = \"50 per second\" }\n", 4,
              "integrations[0].rate_limit.rate", "bad rate");
  ExpectError(head + "rate_limit = { burst = 5 }\n", 4, "integrations[0].rate_limit.rate",
              "required key is missing");
  ExpectError(head + "retry = { backoff = [] }\n", 4, "integrations[0].retry.backoff",
              "at least one duration");
  ExpectError(head + "retry = { attempts = 0 }\n", 4, "integrations[0].retry.attempts",
              "must be between 1 and 100");
  ExpectError("[[integrations]]\nname = \"a\"\nbase_url = \"slack.com\"\n", 3,
              "integrations[0].base_url", "http:// or https://");
  ExpectError(head + head, 5, "integrations[1].name", "duplicate integration name \"a\"");
}

TEST(ConfigTest, SchedulesParseWithTheirPayloadAsJson) {
  Result<Config> config = ParseConfig(R"(
[[jobs]]
type = "digest"
handler = { command = ["true"] }

[[schedules]]
name = "standup"
cron = "30 9 * * MON-FRI"
time_zone = "Europe/Berlin"
job = "digest"
payload = { channel = "C1", n = 3 }
missed = "all"
catch_up = "30m"

[[schedules]]
name = "tick"
cron = "*/5 * * * * *"
job = "digest"
)",
                                      "bot.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_EQ(config->schedules.size(), 2u);
  const ScheduleConfig& standup = config->schedules[0];
  EXPECT_EQ(standup.cron, "30 9 * * MON-FRI");
  EXPECT_EQ(standup.time_zone, "Europe/Berlin");
  EXPECT_EQ(nlohmann::json::parse(standup.payload_json), (nlohmann::json{{"channel", "C1"}, {"n", 3}}));
  EXPECT_EQ(standup.missed, MissedTicks::kAll);
  EXPECT_EQ(standup.catch_up, std::chrono::minutes(30));
  const ScheduleConfig& tick = config->schedules[1];
  EXPECT_EQ(tick.time_zone, "UTC");
  EXPECT_EQ(tick.payload_json, "{}");
  EXPECT_EQ(tick.missed, MissedTicks::kLast);
  EXPECT_EQ(tick.catch_up, std::chrono::hours(1));
}

TEST(ConfigErrorTest, SchedulesNameTheKeyAndTheField) {
  const std::string jobs = "[[jobs]]\ntype = \"d\"\nhandler = { command = [\"true\"] }\n";
  const std::string head = jobs + "[[schedules]]\nname = \"s\"\njob = \"d\"\n";
  ExpectError(head + "cron = \"61 * * * *\"\n", 7, "schedules[0].cron",
              "minute field \"61\": values must be 0..59");
  ExpectError(head + "cron = \"0 0 30 2 *\"\n", 7, "schedules[0].cron", "never runs");
  ExpectError(head + "cron = \"* * * * *\"\ntime_zone = \"Mars/Olympus\"\n", 8,
              "schedules[0].time_zone", "unknown time zone \"Mars/Olympus\"");
  ExpectError(head + "cron = \"* * * * *\"\nmissed = \"some\"\n", 8, "schedules[0].missed",
              "unknown policy for missed ticks \"some\"");
  ExpectError(head + "cron = \"* * * * *\"\ncatch_up = \"25h\"\n", 8, "schedules[0].catch_up",
              "must not exceed queue.dedupe_ttl");
  ExpectError(head + "cron = \"* * * * *\"\npayload = \"x\"\n", 8, "schedules[0].payload",
              "expected a table");
  ExpectError(jobs + "[[schedules]]\nname = \"s\"\ncron = \"* * * * *\"\njob = \"nope\"\n", 7,
              "schedules[0].job", "undefined job type \"nope\"");
  ExpectError(jobs + "[[schedules]]\nname = \"s\"\njob = \"d\"\n", 4, "schedules[0].cron",
              "required key is missing");
}

TEST(ConfigErrorTest, TomlSyntaxError) {
  std::string message = ErrorOf("[server]\nlisten = \"127.0.0.1:8080\"\nthreads = \n");
  EXPECT_EQ(message.rfind("bot.toml:3:", 0), 0u) << message;
  EXPECT_NE(message.find("expected"), std::string::npos) << message;
}

TEST(ConfigLoadTest, LoadsFromDiskAndNamesTheFile) {
  TempDir dir;
  std::string path = dir.Write("good.toml", kMinimal);
  Result<Config> loaded = LoadConfig(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->file, path);
  EXPECT_EQ(loaded->sources.at(0).where, path + ":1:1");

  std::string bad = dir.Write("bad.toml", "[server]\nlisen = \"x\"\n");
  Result<Config> failed = LoadConfig(bad);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().message(), bad +
                                           ":2:1: server.lisen: unknown key (did you mean "
                                           "\"listen\"?)");
}

TEST(ConfigLoadTest, UnreadableFile) {
  TempDir dir;
  std::string missing = dir.path() + "/missing.toml";
  Result<Config> loaded = LoadConfig(missing);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(loaded.status().message(), missing + ": cannot read: No such file or directory");

  Result<Config> directory = LoadConfig(dir.path());
  ASSERT_FALSE(directory.ok());
  EXPECT_EQ(directory.status().message(), dir.path() + ": cannot read: Is a directory");
}

// ---------------------------------------------------------------------------------
// Secrets

Config ConfigWithSecrets(const std::string& admin_token, const std::string& source_secret) {
  Result<Config> parsed = Parse("[server]\nadmin_token = " + admin_token + R"(
[[sources]]
name = "gh"
kind = "github"
path = "/hooks/gh"
secret = )" + source_secret + R"(
job = "push"
[[jobs]]
type = "push"
handler = { url = "http://127.0.0.1:9000/jobs" }
)");
  EXPECT_TRUE(parsed.ok()) << parsed.status().message();
  return parsed.ok() ? *parsed : Config{};
}

TEST(SecretsTest, ResolvesFromEnvAndFileTrimmingTrailingWhitespace) {
  TempDir dir;
  std::string secret_file = dir.Write("gh_secret", "s3cr3t-from-file\r\n\n");
  ScopedEnv env("FIREBREAK_TEST_ADMIN", "admin-token-value");
  Config config =
      ConfigWithSecrets("{ env = \"FIREBREAK_TEST_ADMIN\" }", "{ file = \"" + secret_file + "\" }");
  Status status = ResolveSecrets(config);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(config.server.admin_token->value, "admin-token-value");
  EXPECT_EQ(config.sources[0].secret->value, "s3cr3t-from-file");
}

TEST(SecretsTest, ResolvesIntegrationAndMetaSecrets) {
  TempDir dir;
  std::string key_file = dir.Write("crm", "crm-key\n");
  ScopedEnv bot("FIREBREAK_TEST_BOT", "xoxb-1");
  ScopedEnv app("FIREBREAK_TEST_APP", "app-secret");
  ScopedEnv verify("FIREBREAK_TEST_VERIFY", "verify-me");
  Result<Config> parsed = Parse(R"([[sources]]
name = "wa"
kind = "meta"
path = "/hooks/meta"
secret = { env = "FIREBREAK_TEST_APP" }
verify_token = { env = "FIREBREAK_TEST_VERIFY" }
job = "t"
[[jobs]]
type = "t"
handler = { url = "http://x" }
[[integrations]]
name = "slack-api"
base_url = "https://slack.com"
auth = { bearer = { env = "FIREBREAK_TEST_BOT" } }
[[integrations]]
name = "crm"
base_url = "https://crm"
auth = { header = { name = "X-Key", value = { file = ")" +
                                key_file + R"(" } } }
)");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ASSERT_TRUE(ResolveSecrets(*parsed).ok());
  EXPECT_EQ(parsed->sources[0].secret->value, "app-secret");
  EXPECT_EQ(parsed->sources[0].verify_token->value, "verify-me");
  EXPECT_EQ(parsed->integrations[0].auth->secret.value, "xoxb-1");
  EXPECT_EQ(parsed->integrations[1].auth->secret.value, "crm-key");
}

TEST(SecretsTest, MissingOrEmptyEnvNamesLocationAndVariable) {
  ScopedEnv unset("FIREBREAK_TEST_UNSET", nullptr);
  Config config = ConfigWithSecrets("{ env = \"FIREBREAK_TEST_UNSET\" }", "{ env = \"X\" }");
  Status status = ResolveSecrets(config);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "bot.toml:2:15: server.admin_token: environment variable FIREBREAK_TEST_UNSET is "
            "not set");

  ScopedEnv empty("FIREBREAK_TEST_EMPTY", "");
  ScopedEnv admin("FIREBREAK_TEST_ADMIN", "admin-token-value");
  config =
      ConfigWithSecrets("{ env = \"FIREBREAK_TEST_ADMIN\" }", "{ env = \"FIREBREAK_TEST_EMPTY\" }");
  status = ResolveSecrets(config);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("bot.toml:7:10: sources[0].secret: environment variable "
                                  "FIREBREAK_TEST_EMPTY is not set"),
            std::string::npos)
      << status.message();
  EXPECT_EQ(status.message().find("admin-token-value"), std::string::npos);
}

TEST(SecretsTest, UnreadableOrEmptyFile) {
  TempDir dir;
  std::string missing = dir.path() + "/nope";
  ScopedEnv admin("FIREBREAK_TEST_ADMIN", "admin-token-value");
  Config config =
      ConfigWithSecrets("{ env = \"FIREBREAK_TEST_ADMIN\" }", "{ file = \"" + missing + "\" }");
  Status status = ResolveSecrets(config);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.message(), "bot.toml:7:10: sources[0].secret: cannot read secret file \"" +
                                  missing + "\": No such file or directory");

  std::string blank = dir.Write("blank", " \n");
  config = ConfigWithSecrets("{ env = \"FIREBREAK_TEST_ADMIN\" }", "{ file = \"" + blank + "\" }");
  status = ResolveSecrets(config);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("is empty"), std::string::npos) << status.message();
}

TEST(SecretsTest, VaultIsNotSupportedYet) {
  ScopedEnv admin("FIREBREAK_TEST_ADMIN", "admin-token-value");
  Config config = ConfigWithSecrets("{ env = \"FIREBREAK_TEST_ADMIN\" }",
                                    "{ vault = \"secret/data/gh#signing\" }");
  Status status = ResolveSecrets(config);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message().rfind("bot.toml:7:10: sources[0].secret: vault secrets are not "
                                   "supported by this build yet (",
                                   0),
            0u)
      << status.message();
  EXPECT_NE(status.message().find("secret/data/gh#signing"), std::string::npos);
}

TEST(SecretsTest, DescribeNeverShowsTheValue) {
  Secret secret;
  secret.kind = Secret::Kind::kFile;
  secret.ref = "/run/secrets/x";
  secret.value = "top-secret-value";
  EXPECT_EQ(secret.Describe(), "file /run/secrets/x");
  secret.kind = Secret::Kind::kEnv;
  secret.ref = "X";
  EXPECT_EQ(secret.Describe(), "env X");
}

// ---------------------------------------------------------------------------------
// Summary and addresses

TEST(SummaryTest, ShowsReferencesButNeverValues) {
  TempDir dir;
  std::string meta_file = dir.Write("meta", "meta-app-secret-value\n");
  std::string crm_file = dir.Write("crm", "crm-api-key-value\n");
  std::string text = kFullConfig;
  text.replace(text.find("/run/secrets/meta"), std::string("/run/secrets/meta").size(), meta_file);
  text.replace(text.find("/run/secrets/crm"), std::string("/run/secrets/crm").size(), crm_file);
  text.replace(text.find("{ vault = \"secret/data/meta#verify\" }"),
               std::string("{ vault = \"secret/data/meta#verify\" }").size(),
               "{ env = \"TEST_VERIFY\" }");
  Result<Config> parsed = Parse(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  ScopedEnv admin("TEST_ADMIN_TOKEN", "admin-token-value");
  ScopedEnv slack("SLACK_SIGNING_SECRET", "slack-signing-value");
  ScopedEnv shop("SHOP_SECRET", "shop-secret-value");
  ScopedEnv bot("SLACK_BOT_TOKEN", "xoxb-bot-token-value");
  ScopedEnv verify("TEST_VERIFY", "verify-token-value");
  Status status = ResolveSecrets(*parsed);
  ASSERT_TRUE(status.ok()) << status.message();

  std::string summary = Summarize(*parsed);
  for (const char* value :
       {"admin-token-value", "slack-signing-value", "shop-secret-value", "xoxb-bot-token-value",
        "verify-token-value", "meta-app-secret-value", "crm-api-key-value"}) {
    EXPECT_EQ(summary.find(value), std::string::npos) << value << " leaked:\n" << summary;
  }
  // URL passwords are masked too.
  EXPECT_EQ(summary.find(":pw@"), std::string::npos) << summary;
  EXPECT_NE(summary.find("redis://:***@10.0.0.5:6379/2"), std::string::npos) << summary;

  for (const std::string& expected :
       {std::string("listen 0.0.0.0:9000"), std::string("redis"), std::string("durability process"),
        std::string("token env TEST_ADMIN_TOKEN"),
        std::string("kind slack, path /hooks/slack -> job slack.event, secret env "
                    "SLACK_SIGNING_SECRET"),
        std::string("secret file " + meta_file), std::string("verify_token env TEST_VERIFY"),
        std::string("algorithm sha512"),
        std::string("handler command [python3 bots/echo.py --fast], concurrency 8, timeout "
                    "90s"),
        std::string("max_attempts 9, backoff 1s x2.5 up to 10m jitter equal"),
        std::string("handler url https://127.0.0.1:9000/jobs (ca_file "
                    "/etc/firebreak/handler-ca.pem), concurrency"),
        std::string("auth bearer env SLACK_BOT_TOKEN"),
        std::string("auth header X-Api-Key file " + crm_file),
        std::string("rate limit 600/m burst 7")}) {
    EXPECT_NE(summary.find(expected), std::string::npos) << expected << "\n" << summary;
  }
}

TEST(SummaryTest, DefaultsSummaryIsReadable) {
  Result<Config> parsed = Parse("");
  ASSERT_TRUE(parsed.ok());
  std::string summary = Summarize(*parsed);
  EXPECT_NE(summary.find("listen 127.0.0.1:8080"), std::string::npos) << summary;
  EXPECT_NE(summary.find("sqlite var/firebreak.db, durability fsync"), std::string::npos)
      << summary;
  EXPECT_NE(summary.find("admin      off"), std::string::npos) << summary;
  EXPECT_NE(summary.find("sources (0)"), std::string::npos) << summary;
}

TEST(ListenAddressTest, SplitsHostAndPort) {
  auto v4 = ParseListenAddress("127.0.0.1:8080");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->first, "127.0.0.1");
  EXPECT_EQ(v4->second, 8080);
  auto v6 = ParseListenAddress("[::1]:65535");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->first, "::1");
  EXPECT_EQ(v6->second, 65535);
  auto name = ParseListenAddress("localhost:1");
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(name->first, "localhost");
  EXPECT_EQ(name->second, 1);

  for (const char* bad : {"", "8080", ":8080", "host:", "host:0", "host:65536", "host:80a",
                          "host:-1", "[::1]8080", "[::1", "[]:80", "::1:80", "host:0080000"}) {
    auto parsed = ParseListenAddress(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(SourceKindTest, Names) {
  EXPECT_STREQ(SourceKindName(SourceKind::kSlack), "slack");
  EXPECT_STREQ(SourceKindName(SourceKind::kDiscord), "discord");
  EXPECT_STREQ(SourceKindName(SourceKind::kTelegram), "telegram");
  EXPECT_STREQ(SourceKindName(SourceKind::kGithub), "github");
  EXPECT_STREQ(SourceKindName(SourceKind::kMeta), "meta");
  EXPECT_STREQ(SourceKindName(SourceKind::kHmac), "hmac");
}

// ---------------------------------------------------------------------------------
// Signature schemes: provider presets and kind = "hmac" with a scheme table

// A source of `kind` whose `extra` lines start at line 7, and the job it names.
std::string SchemeSourceToml(const std::string& kind, const std::string& extra = "") {
  return "[[sources]]\nname = \"s\"\nkind = \"" + kind +
         "\"\npath = \"/hooks/s\"\nsecret = { env = \"S\" }\njob = \"t\"\n" + extra +
         "[[jobs]]\ntype = \"t\"\nhandler = { url = \"http://127.0.0.1:9000/jobs\" }\n";
}

TEST(ConfigTest, SchemePresetSourceIsOneLine) {
  for (const WebhookPreset& preset : WebhookPresets()) {
    SCOPED_TRACE(preset.name);
    Result<Config> parsed = Parse(SchemeSourceToml(preset.name));
    ASSERT_TRUE(parsed.ok()) << parsed.status().message();
    const SourceConfig& source = parsed->sources.at(0);
    EXPECT_EQ(source.kind, SourceKind::kHmac);
    EXPECT_EQ(source.preset, &preset);
    EXPECT_EQ(source.KindName(), preset.name);
    EXPECT_EQ(source.scheme.header, preset.scheme.header);
    EXPECT_EQ(source.scheme.prefix, preset.scheme.prefix);
    EXPECT_EQ(source.scheme.signed_template, preset.scheme.signed_template);
    EXPECT_EQ(source.scheme.mode, preset.scheme.mode);
    EXPECT_EQ(source.tolerance, preset.tolerance);
    EXPECT_EQ(source.dedupe, preset.dedupe);
    EXPECT_EQ(source.headers, preset.headers);
    EXPECT_TRUE(source.public_url.empty());
  }
  Result<Config> stripe = Parse(SchemeSourceToml("stripe"));
  ASSERT_TRUE(stripe.ok()) << stripe.status().message();
  const SourceConfig& source = stripe->sources.at(0);
  EXPECT_EQ(source.scheme.header, "Stripe-Signature");
  EXPECT_EQ(source.scheme.prefix, "v1=");
  EXPECT_EQ(source.scheme.separator, ",");
  EXPECT_EQ(source.scheme.timestamp_entry, "t=");
  EXPECT_EQ(source.scheme.signed_template, "{timestamp}.{body}");
  EXPECT_EQ(source.scheme.encoding, SignatureScheme::Encoding::kHex);
  EXPECT_EQ(source.scheme.secret_encoding, SignatureScheme::SecretEncoding::kRaw);
  EXPECT_EQ(source.tolerance, milliseconds(300'000));
  EXPECT_EQ(source.dedupe, std::vector<std::string>{"/id"});
  EXPECT_FALSE(source.previous_secret.has_value());
}

TEST(ConfigTest, SchemePresetTakesRotationToleranceDedupeAndHeaders) {
  Result<Config> parsed = Parse(SchemeSourceToml(
      "shopify",
      "previous_secret = { env = \"S_OLD\" }\n"
      "dedupe = [\"header:X-Shopify-Event-Id\", \"header:X-Shopify-Webhook-Id\", \"body\"]\n"
      "headers = [\"x-shopify-topic\", \"X-Shopify-Name\"]\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  const SourceConfig& shopify = parsed->sources.at(0);
  ASSERT_TRUE(shopify.previous_secret.has_value());
  EXPECT_EQ(shopify.previous_secret->ref, "S_OLD");
  EXPECT_EQ(shopify.dedupe, (std::vector<std::string>{"header:X-Shopify-Event-Id",
                                                      "header:X-Shopify-Webhook-Id", "body"}));
  // The preset's headers, then the new ones; a name it already has is not repeated.
  std::vector<std::string> headers = FindWebhookPreset("shopify")->headers;
  headers.push_back("X-Shopify-Name");
  EXPECT_EQ(shopify.headers, headers);

  parsed = Parse(SchemeSourceToml("twitch", "tolerance = \"2m\"\ndedupe = \"body\"\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->sources.at(0).tolerance, milliseconds(120'000));
  EXPECT_EQ(parsed->sources.at(0).dedupe, std::vector<std::string>{"body"});

  parsed = Parse(SchemeSourceToml("twilio", "public_url = \"https://bot.example.com/twilio\"\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->sources.at(0).public_url, "https://bot.example.com/twilio");
}

TEST(ConfigTest, SchemeCustomTableParses) {
  Result<Config> parsed = Parse(SchemeSourceToml(
      "hmac",
      "scheme = { header = \"X-Sig\", prefix = \"v1=\", separator = \",\", algorithm = "
      "\"sha512\", encoding = \"base64\", secret_encoding = \"base64\", secret_prefix = \"sk_\", "
      "signed = \"{header:X-Id}.{timestamp}.{body}\", timestamp_header = \"X-Ts\", "
      "timestamp_format = \"unix_ms\" }\n"
      "tolerance = \"2m\"\n"
      "dedupe = [\"header:X-Id\", \"/id\", \"body\"]\n"
      "headers = [\"X-Id\"]\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  const SourceConfig& source = parsed->sources.at(0);
  EXPECT_EQ(source.kind, SourceKind::kHmac);
  EXPECT_EQ(source.preset, nullptr);
  EXPECT_EQ(source.KindName(), "hmac");
  const SignatureScheme& scheme = source.scheme;
  EXPECT_EQ(scheme.mode, SignatureScheme::Mode::kHmac);
  EXPECT_EQ(scheme.header, "X-Sig");
  EXPECT_EQ(scheme.prefix, "v1=");
  EXPECT_EQ(scheme.separator, ",");
  EXPECT_EQ(scheme.algorithm, "sha512");
  EXPECT_EQ(scheme.encoding, SignatureScheme::Encoding::kBase64);
  EXPECT_EQ(scheme.secret_encoding, SignatureScheme::SecretEncoding::kBase64);
  EXPECT_EQ(scheme.secret_prefix, "sk_");
  EXPECT_EQ(scheme.signed_template, "{header:X-Id}.{timestamp}.{body}");
  EXPECT_EQ(scheme.timestamp_header, "X-Ts");
  EXPECT_EQ(scheme.timestamp_format, SignatureScheme::TimestampFormat::kUnixMillis);
  EXPECT_EQ(source.tolerance, milliseconds(120'000));
  EXPECT_EQ(source.dedupe, (std::vector<std::string>{"header:X-Id", "/id", "body"}));
  EXPECT_EQ(source.headers, std::vector<std::string>{"X-Id"});

  // As a sub-table, with the timestamp in the body.
  parsed = Parse(
      "[[sources]]\nname = \"s\"\nkind = \"hmac\"\npath = \"/hooks/s\"\nsecret = { env = \"S\" "
      "}\njob = \"t\"\n[sources.scheme]\nheader = \"X-Sig\"\ntimestamp_field = \"/sent_at\"\n"
      "timestamp_format = \"rfc3339\"\n"
      "[[jobs]]\ntype = \"t\"\nhandler = { url = \"http://127.0.0.1:9000/jobs\" }\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->sources.at(0).scheme.timestamp_field, "/sent_at");
  EXPECT_EQ(parsed->sources.at(0).scheme.timestamp_format,
            SignatureScheme::TimestampFormat::kRfc3339);
  EXPECT_EQ(parsed->sources.at(0).scheme.signed_template, "{body}");

  // Token mode, in a header or a body field.
  parsed = Parse(SchemeSourceToml("hmac", "scheme = { mode = \"token\", header = \"X-Token\" }\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->sources.at(0).scheme.mode, SignatureScheme::Mode::kToken);
  EXPECT_EQ(parsed->sources.at(0).scheme.header, "X-Token");
  parsed =
      Parse(SchemeSourceToml("hmac", "scheme = { mode = \"token\", token_field = \"/auth\" }\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->sources.at(0).scheme.token_field, "/auth");
}

TEST(ConfigErrorTest, SchemeEnumsNameTheKey) {
  ExpectError(SchemeSourceToml("hmac", "scheme = { encoding = \"b64\" }\n"), 7,
              "sources[0].scheme.encoding", "unknown encoding \"b64\" (expected hex or base64)");
  ExpectError(SchemeSourceToml("hmac", "scheme = { mode = \"sig\" }\n"), 7,
              "sources[0].scheme.mode", "unknown mode \"sig\" (expected hmac or token)");
  ExpectError(SchemeSourceToml("hmac", "scheme = { secret_encoding = \"hex\" }\n"), 7,
              "sources[0].scheme.secret_encoding",
              "unknown secret encoding \"hex\" (expected raw or base64)");
  ExpectError(SchemeSourceToml("hmac",
                               "scheme = { timestamp_header = \"X-Ts\", "
                               "timestamp_format = \"iso8601\" }\n"),
              7, "sources[0].scheme.timestamp_format",
              "unknown timestamp format \"iso8601\" (expected unix, unix_ms or rfc3339)");
  ExpectError(SchemeSourceToml("hmac", "scheme = { algorithm = \"sha384\" }\n"), 7,
              "sources[0].scheme.algorithm", "unknown algorithm \"sha384\"");
  ExpectError(SchemeSourceToml("hmac", "scheme = { header = \"X Sig\" }\n"), 7,
              "sources[0].scheme.header", "bad header name \"X Sig\"");
  ExpectError(SchemeSourceToml("hmac", "scheme = { heder = \"X-Sig\" }\n"), 7,
              "sources[0].scheme.heder", "unknown key");
  ExpectError(SchemeSourceToml("hmac", "header = \"X-A\"\nscheme = { header = \"X-B\" }\n"), 8,
              "sources[0].scheme.header", "also set as sources[0].header; set it in one place");
}

TEST(ConfigErrorTest, SchemeKeysOnAPresetAreRefused) {
  for (const char* line : {"header = \"X-Sig\"", "prefix = \"v2=\"", "algorithm = \"sha1\"",
                           "scheme = { encoding = \"base64\" }"}) {
    const std::string key = line;
    SCOPED_TRACE(key);
    const std::string name = key.substr(0, key.find(' '));
    ExpectError(SchemeSourceToml("stripe", key + "\n"), 7, "sources[0]." + name,
                "kind \"stripe\" has a fixed signature scheme; write your own with kind = "
                "\"hmac\"");
  }
  ExpectError(SchemeSourceToml("slack", "scheme = { encoding = \"base64\" }\n"), 7,
              "sources[0].scheme",
              "only allowed for kind \"hmac\" (this source is kind \"slack\")");
  ExpectError(SchemeSourceToml("slack", "dedupe = \"/id\"\n"), 7, "sources[0].dedupe",
              "only allowed for kind \"hmac\" and the provider presets");
  ExpectError(SchemeSourceToml("github", "previous_secret = { env = \"OLD\" }\n"), 7,
              "sources[0].previous_secret",
              "only allowed for kind \"hmac\" and the provider presets");
}

TEST(ConfigErrorTest, SchemeToleranceNeedsASignedTimestamp) {
  ExpectError(SchemeSourceToml("shopify", "tolerance = \"5m\"\n"), 7, "sources[0].tolerance",
              "this scheme has no signed timestamp to check it against");
  ExpectError(SchemeSourceToml("hmac", "tolerance = \"5m\"\n"), 7, "sources[0].tolerance",
              "this scheme has no signed timestamp to check it against");
  ExpectError(SchemeSourceToml("slack", "tolerance = \"5m\"\n"), 7, "sources[0].tolerance",
              "only allowed for kind \"hmac\" and the provider presets");
  Result<Config> parsed = Parse(
      SchemeSourceToml("hmac", "scheme = { timestamp_header = \"X-Ts\" }\ntolerance = \"90s\"\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->sources.at(0).tolerance, milliseconds(90'000));
}

TEST(ConfigErrorTest, SchemeBadDedupeEntryNamesItsIndex) {
  ExpectError(SchemeSourceToml("hmac", "dedupe = [\"/id\", \"nope\"]\n"), 7, "sources[0].dedupe[1]",
              "bad JSON pointer \"nope\"");
  ExpectError(SchemeSourceToml("stripe", "dedupe = [\"body\", \"/id\"]\n"), 7,
              "sources[0].dedupe[0]", "\"body\" is always present: put it last");
  ExpectError(SchemeSourceToml("hmac", "dedupe = [\"/id\", \"header:Bad Name\"]\n"), 7,
              "sources[0].dedupe[1]", "bad header name \"Bad Name\"");
  ExpectError(SchemeSourceToml("hmac", "dedupe = [\"/id\", 7]\n"), 7, "sources[0].dedupe[1]",
              "expected a string");
  ExpectError(SchemeSourceToml("hmac", "dedupe = []\n"), 7, "sources[0].dedupe",
              "must not be empty");
}

TEST(ConfigErrorTest, SchemeEnvelopeHeadersNeverCarrySecrets) {
  ExpectError(SchemeSourceToml("stripe", "headers = [\"Stripe-Signature\"]\n"), 7,
              "sources[0].headers[0]", "carries a signature or credential");
  ExpectError(SchemeSourceToml("stripe", "headers = [\"X-Ok\", \"authorization\"]\n"), 7,
              "sources[0].headers[1]", "carries a signature or credential");
  ExpectError(SchemeSourceToml("gitlab", "headers = [\"x-gitlab-token\"]\n"), 7,
              "sources[0].headers[0]", "carries a signature or credential");
  ExpectError(SchemeSourceToml("standard-webhooks", "headers = [\"Webhook-Signature\"]\n"), 7,
              "sources[0].headers[0]", "carries a signature or credential");
  ExpectError(SchemeSourceToml("hmac",
                               "scheme = { header = \"X-My-Sig\" }\n"
                               "headers = [\"X-Id\", \"x-my-sig\"]\n"),
              8, "sources[0].headers[1]", "carries a signature or credential");
  ExpectError(SchemeSourceToml("slack", "headers = [\"X-Slack-Signature\"]\n"), 7,
              "sources[0].headers[0]", "carries a signature or credential");
  ExpectError(SchemeSourceToml("stripe", "headers = [\"Bad Header\"]\n"), 7,
              "sources[0].headers[0]", "bad header name \"Bad Header\"");
}

TEST(ConfigErrorTest, SchemeSignedTemplateMustCoverTheBody) {
  ExpectError(SchemeSourceToml("hmac",
                               "scheme = { signed = \"{timestamp}\", timestamp_header = "
                               "\"X-Ts\" }\n"),
              7, "sources[0].scheme.signed", "must include {body}");
  ExpectError(SchemeSourceToml("hmac", "scheme = { signed = \"{bdy}\" }\n"), 7,
              "sources[0].scheme.signed", "unknown placeholder {bdy}");
  ExpectError(SchemeSourceToml("hmac", "scheme = { signed = \"{timestamp}.{body}\" }\n"), 7,
              "sources[0].scheme.signed",
              "uses {timestamp} but the scheme has no timestamp_header or timestamp_entry");
  ExpectError(SchemeSourceToml("hmac",
                               "scheme = { timestamp_header = \"X-Ts\", timestamp_entry "
                               "= \"t=\" }\n"),
              7, "sources[0].scheme.timestamp_header", "give the timestamp one place");
  ExpectError(SchemeSourceToml("hmac", "scheme = { timestamp_field = \"sent_at\" }\n"), 7,
              "sources[0].scheme.timestamp_field", "bad JSON pointer \"sent_at\"");
}

TEST(ConfigErrorTest, SchemeTokenModeKeys) {
  ExpectError(SchemeSourceToml("hmac", "scheme = { mode = \"token\", signed = \"{body}\" }\n"), 7,
              "sources[0].scheme.signed", "only for mode \"hmac\" (this scheme is mode \"token\")");
  ExpectError(SchemeSourceToml("hmac",
                               "scheme = { mode = \"token\", header = \"X-T\", "
                               "token_field = \"/t\" }\n"),
              7, "sources[0].scheme.token_field",
              "the token comes from a header or a body field, not both");
  ExpectError(SchemeSourceToml("hmac", "scheme = { token_field = \"/t\" }\n"), 7,
              "sources[0].scheme.token_field", "only for mode \"token\"");
}

TEST(ConfigErrorTest, SchemePublicUrlOnlyWhereTheUrlIsSigned) {
  ExpectError(SchemeSourceToml("stripe", "public_url = \"https://bot.example.com\"\n"), 7,
              "sources[0].public_url", "only used by schemes that sign the request URL");
  ExpectError(SchemeSourceToml("twilio", "public_url = \"https://bot.example.com/\"\n"), 7,
              "sources[0].public_url", "expected the origin the provider calls");
  ExpectError(SchemeSourceToml("twilio", "public_url = \"bot.example.com\"\n"), 7,
              "sources[0].public_url", "expected the origin the provider calls");
}

TEST(ConfigTest, AdminTokensWithScopes) {
  Result<Config> parsed = Parse(R"([server]
admin_token = { env = "ROOT" }
admin_listen = "ingress"
[[server.admin_tokens]]
name = "grafana"
token = { file = "/run/secrets/grafana" }
scope = "read"
[[server.admin_tokens]]
name = "oncall"
token = { env = "ONCALL_TOKEN" }
scope = "operate"
)");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  const ServerConfig& server = parsed->server;
  EXPECT_TRUE(server.AdminEnabled());
  EXPECT_TRUE(server.AdminOnIngress());
  ASSERT_EQ(server.admin_tokens.size(), 2u);
  EXPECT_EQ(server.admin_tokens[0].name, "grafana");
  EXPECT_EQ(server.admin_tokens[0].scope, AdminScope::kRead);
  EXPECT_EQ(server.admin_tokens[0].token.kind, Secret::Kind::kFile);
  EXPECT_EQ(server.admin_tokens[0].where, "bot.toml:4:1");
  EXPECT_EQ(server.admin_tokens[1].scope, AdminScope::kOperate);
  EXPECT_NE(Summarize(*parsed).find("token \"oncall\" (operate) env ONCALL_TOKEN"),
            std::string::npos)
      << Summarize(*parsed);

  // Tokens alone (no admin_token) turn the API on.
  Result<Config> only = Parse(
      "[[server.admin_tokens]]\nname = \"admin\"\ntoken = { env = \"T\" }\nscope = \"admin\"\n");
  ASSERT_TRUE(only.ok()) << only.status().message();
  EXPECT_TRUE(only->server.AdminEnabled());
}

TEST(ConfigTest, AdminTokenErrorsNameFileLineAndKey) {
  const std::string entry = "[[server.admin_tokens]]\n";
  ExpectError(entry + "name = \"a\"\ntoken = { env = \"A\" }\nscope = \"root\"\n", 4,
              "server.admin_tokens[0].scope", "unknown scope \"root\"");
  ExpectError(entry + "name = \"a\"\ntoken = { env = \"A\" }\n", 1,
              "server.admin_tokens[0].scope", "required key is missing");
  ExpectError(entry + "name = \"a\"\nscope = \"read\"\n", 1, "server.admin_tokens[0].token",
              "required key is missing");
  ExpectError(entry + "name = \"a\"\ntoken = \"hunter2\"\nscope = \"read\"\n", 3,
              "server.admin_tokens[0].token", "not a literal");
  const std::string literal = entry + "name = \"a\"\ntoken = \"hunter2\"\nscope = \"read\"\n";
  EXPECT_EQ(ErrorOf(literal).find("hunter2"), std::string::npos);
  ExpectError(entry + "name = \"a b\"\ntoken = { env = \"A\" }\nscope = \"read\"\n", 2,
              "server.admin_tokens[0].name", "bad name");
  ExpectError(entry + "name = \"a\"\ntoken = { env = \"A\" }\nscope = \"read\"\n" + entry +
                  "name = \"a\"\ntoken = { env = \"B\" }\nscope = \"read\"\n",
              6, "server.admin_tokens[1].name", "duplicate admin token name \"a\"");
  ExpectError("[server]\nadmin_token = { env = \"R\" }\n" + entry +
                  "name = \"admin\"\ntoken = { env = \"A\" }\nscope = \"read\"\n",
              4, "server.admin_tokens[0].name", "server.admin_token's name");
  ExpectError(entry + "name = \"a\"\ntoken = { env = \"A\" }\nscope = \"read\"\nexpires = 1\n", 5,
              "server.admin_tokens[0].expires", "unknown key");
  ExpectError("[server]\nadmin_listen = \"\"\n", 2, "server.admin_listen", "\"ingress\"");
  ExpectError("[server]\nadmin_listen = \"127.0.0.1\"\n", 2, "server.admin_listen", "host:port");
  // The default admin address must not take a port already in use.
  ExpectError("[server]\nlisten = \"0.0.0.0:8082\"\nadmin_token = { env = \"R\" }\n", 1,
              "server.admin_listen", "takes the port of server.listen");
  ExpectError("[server]\nadmin_token = { env = \"R\" }\nadmin_listen = \"127.0.0.1:8081\"\n", 3,
              "server.admin_listen", "takes the port of worker.sidecar");
  // ...which does not matter while the API is off, or on the ingress listener.
  EXPECT_TRUE(Parse("[server]\nlisten = \"0.0.0.0:8082\"\n").ok());
  EXPECT_TRUE(
      Parse("[server]\nlisten = \"0.0.0.0:8082\"\nadmin_token = { env = \"R\" }\nadmin_listen = "
            "\"ingress\"\n")
          .ok());
}

TEST(SecretsTest, AdminTokensResolveAndMustBeDistinct) {
  ScopedEnv root("FIREBREAK_TEST_ROOT", "root-token");
  ScopedEnv one("FIREBREAK_TEST_ONE", "token-one");
  ScopedEnv same("FIREBREAK_TEST_SAME", "token-one");
  auto config = [](const std::string& second) {
    Result<Config> parsed = Parse(R"([server]
admin_token = { env = "FIREBREAK_TEST_ROOT" }
[[server.admin_tokens]]
name = "one"
token = { env = "FIREBREAK_TEST_ONE" }
scope = "read"
[[server.admin_tokens]]
name = "two"
token = { env = ")" + second + R"(" }
scope = "operate"
)");
    EXPECT_TRUE(parsed.ok()) << parsed.status().message();
    return parsed.ok() ? *parsed : Config{};
  };
  Config distinct = config("FIREBREAK_TEST_ROOT");
  Status status = ResolveSecrets(distinct);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.message(),
            "bot.toml:9:9: server.admin_tokens[1].token: the same token as server.admin_token; "
            "every admin token must be distinct");
  Config twice = config("FIREBREAK_TEST_SAME");
  status = ResolveSecrets(twice);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("server.admin_tokens[1].token: the same token as "
                                  "server.admin_tokens[0] (\"one\")"),
            std::string::npos)
      << status.message();
  EXPECT_EQ(status.message().find("token-one"), std::string::npos);
  ScopedEnv other("FIREBREAK_TEST_OTHER", "token-two");
  Config fine = config("FIREBREAK_TEST_OTHER");
  ASSERT_TRUE(ResolveSecrets(fine).ok());
  EXPECT_EQ(fine.server.admin_tokens[1].token.value, "token-two");
}

}  // namespace
}  // namespace firebreak

namespace firebreak {
namespace {

TEST(ConfigTest, SearchKeysArePointersForEveryKindAndReplaceAPresetsDefaults) {
  Result<Config> parsed = Parse(
      SchemeSourceToml("hmac", "search_keys = [\"/data/object/customer\", \"/user/id\"]\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->sources.at(0).search_keys,
            (std::vector<std::string>{"/data/object/customer", "/user/id"}));
  // A preset carries its defaults until the source sets its own; [] sets none.
  for (const WebhookPreset& preset : WebhookPresets()) {
    SCOPED_TRACE(preset.name);
    parsed = Parse(SchemeSourceToml(preset.name));
    ASSERT_TRUE(parsed.ok()) << parsed.status().message();
    EXPECT_EQ(parsed->sources.at(0).search_keys, preset.search_keys);
  }
  EXPECT_EQ(FindWebhookPreset("stripe")->search_keys,
            (std::vector<std::string>{"/data/object/customer", "/account"}));
  parsed = Parse(SchemeSourceToml("stripe", "search_keys = [\"/data/object/id\"]\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->sources.at(0).search_keys, std::vector<std::string>{"/data/object/id"});
  parsed = Parse(SchemeSourceToml("stripe", "search_keys = []\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_TRUE(parsed->sources.at(0).search_keys.empty());
  // A platform kind takes them on top of its own keys; without any it has none configured.
  parsed = Parse(SchemeSourceToml("slack", "search_keys = [\"/event/thread_ts\"]\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->sources.at(0).search_keys, std::vector<std::string>{"/event/thread_ts"});
  parsed = Parse(SchemeSourceToml("telegram"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_TRUE(parsed->sources.at(0).search_keys.empty());
}

TEST(ConfigErrorTest, SearchKeysErrorsNameTheEntry) {
  ExpectError(SchemeSourceToml("hmac", "search_keys = \"/id\"\n"), 7, "sources[0].search_keys",
              "expected an array of strings");
  ExpectError(SchemeSourceToml("hmac", "search_keys = [\"/id\", 7]\n"), 7,
              "sources[0].search_keys[1]", "expected a string");
  ExpectError(SchemeSourceToml("stripe", "search_keys = [\"/id\", \"user/id\"]\n"), 7,
              "sources[0].search_keys[1]", "bad JSON pointer \"user/id\"");
  ExpectError(SchemeSourceToml("slack", "search_keys = [\"/a~2\"]\n"), 7,
              "sources[0].search_keys[0]", "bad JSON pointer \"/a~2\"");
  ExpectError(SchemeSourceToml("hmac", "search_keys = [\"\"]\n"), 7, "sources[0].search_keys[0]",
              "the whole payload is not a key");
  ExpectError(SchemeSourceToml("hmac", "search_keys = [\"/a:b\"]\n"), 7,
              "sources[0].search_keys[0]", "cannot hold ':'");
  ExpectError(SchemeSourceToml("hmac", "search_keys = [\"/a b\"]\n"), 7,
              "sources[0].search_keys[0]", "cannot hold ':' (it ends the name) or blanks");
  ExpectError(SchemeSourceToml("hmac", "search_keys = [\"/id\", \"/user\", \"/id\"]\n"), 7,
              "sources[0].search_keys[2]", "\"/id\" is listed twice");
  ExpectError(SchemeSourceToml("mattermost", "search_keys = [\"/user_id\", \"/token\"]\n"), 7,
              "sources[0].search_keys[1]", "points at the token that authenticates the request");
  std::string many = "search_keys = [";
  for (int i = 0; i <= 16; ++i) many += (i == 0 ? "\"/k" : ", \"/k") + std::to_string(i) + "\"";
  ExpectError(SchemeSourceToml("hmac", many + "]\n"), 7, "sources[0].search_keys",
              "at most 16 pointers");
}

}  // namespace
}  // namespace firebreak
