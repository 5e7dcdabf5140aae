// Issue 4, acceptance 1: for every platform kind, the real binary accepts a genuine
// event once (signed here with the platform's algorithm through OpenSSL directly, not
// with firebreak's signing code), folds the same event again into it, and refuses a
// tampered body, a wrong secret or key, a missing header and a stale timestamp with
// 401, storing nothing. The platforms' handshakes are answered as they expect.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "harness.h"

namespace firebreak::testing {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr char kSlackSecret[] = "slack-secret-platforms";
constexpr char kGithubSecret[] = "github-secret-platforms";
constexpr char kTelegramSecret[] = "telegram_secret-token-1";
constexpr char kMetaSecret[] = "meta-app-secret-platforms";
constexpr char kMetaVerifyToken[] = "meta-verify-platforms";
constexpr char kHmacSecret[] = "hmac-secret-platforms";
// RFC 8032 §7.1 TEST 2 key pair (any valid Ed25519 pair would do).
constexpr char kDiscordSeed[] = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
constexpr char kOtherSeed[] = "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7";

// One platform: how to sign a body (with the right or a wrong secret), and a body
// with a fresh event id.
struct Platform {
  std::string kind;
  std::string path;
  std::string job;
  std::function<std::string(const std::string& id)> event;
  std::function<Headers(const std::string& body, bool right_secret, int64_t ts)> sign;
  std::vector<std::string> signature_headers;  // removing any of them → 401
  bool has_timestamp = false;
  // Telegram's secret token authenticates the sender, not the body: no tamper check.
  bool body_signed = true;
};

std::vector<Platform> Platforms() {
  auto json = Headers{{"Content-Type", "application/json"}};
  auto with = [json](Headers extra) {
    extra.insert(extra.end(), json.begin(), json.end());
    return extra;
  };
  return {
      {"slack",
       "/hooks/slack",
       "slack.event",
       [](const std::string& id) {
         return R"({"type":"event_callback","team_id":"T1","event_id":"Ev)" + id +
                R"(","event":{"type":"app_mention","text":"hi","channel":"C1"}})";
       },
       [](const std::string& body, bool right, int64_t ts) {
         return SlackHeaders(right ? kSlackSecret : "wrong", body, ts, "application/json");
       },
       {"X-Slack-Signature", "X-Slack-Request-Timestamp"},
       true},
      {"discord",
       "/hooks/discord",
       "discord.interaction",
       [](const std::string& id) {
         return R"({"type":2,"id":"9)" + id +
                R"(","application_id":"1","token":"t",)"
                R"("data":{"name":"hello"}})";
       },
       [with](const std::string& body, bool right, int64_t ts) {
         std::string t = std::to_string(ts);
         return with(
             {{"X-Signature-Ed25519", Ed25519SignHex(right ? kDiscordSeed : kOtherSeed, t + body)},
              {"X-Signature-Timestamp", t}});
       },
       {"X-Signature-Ed25519", "X-Signature-Timestamp"},
       true},
      {"telegram",
       "/hooks/telegram",
       "telegram.update",
       [](const std::string& id) {
         return R"({"update_id":7)" + id + R"(,"message":{"message_id":1,"text":"hi"}})";
       },
       [with](const std::string&, bool right, int64_t) {
         return with({{"X-Telegram-Bot-Api-Secret-Token", right ? kTelegramSecret : "wrong"}});
       },
       {"X-Telegram-Bot-Api-Secret-Token"},
       false,
       false},
      {"github",
       "/hooks/github",
       "github.event",
       [](const std::string& id) { return R"({"ref":"refs/heads/main","after":")" + id + "\"}"; },
       [with](const std::string& body, bool right, int64_t) {
         // X-GitHub-Delivery is the dedupe key: derived from the body here so the same
         // event re-sent carries the same delivery id, as GitHub's redeliveries do.
         return with({{"X-Hub-Signature-256",
                       "sha256=" + HmacSha256Hex(right ? kGithubSecret : "wrong", body)},
                      {"X-GitHub-Event", "push"},
                      {"X-GitHub-Delivery", "d-" + HmacSha256Hex("delivery", body).substr(0, 16)}});
       },
       {"X-Hub-Signature-256"}},
      {"meta",
       "/hooks/meta",
       "meta.message",
       [](const std::string& id) {
         return R"({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[)"
                R"({"field":"messages","value":{"messages":[{"id":"wamid.)" +
                id + R"(","type":"text","text":{"body":"hi"}}]}}]}]})";
       },
       [with](const std::string& body, bool right, int64_t) {
         return with({{"X-Hub-Signature-256",
                       "sha256=" + HmacSha256Hex(right ? kMetaSecret : "wrong", body)}});
       },
       {"X-Hub-Signature-256"}},
      {"hmac",
       "/hooks/hmac",
       "hmac.event",
       [](const std::string& id) { return R"({"id":"h)" + id + R"(","x":1})"; },
       [with](const std::string& body, bool right, int64_t) {
         return with({{"X-Signature", HmacSha256Hex(right ? kHmacSecret : "wrong", body)}});
       },
       {"X-Signature"}},
  };
}

class PlatformsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = FreePort();
    for (auto [name, value] :
         std::vector<std::pair<std::string, std::string>>{{"slack", kSlackSecret},
                                                          {"github", kGithubSecret},
                                                          {"telegram", kTelegramSecret},
                                                          {"meta", kMetaSecret},
                                                          {"meta_verify", kMetaVerifyToken},
                                                          {"hmac", kHmacSecret},
                                                          {"discord_signing", kDiscordSeed}}) {
      dir_.Write(name + ".secret", value);
    }
    std::string config = R"([server]
listen = "127.0.0.1:)" + std::to_string(port_) +
                         R"("
[queue]
path = ")" + dir_.File("q.db") +
                         R"("
[worker]
sidecar = "127.0.0.1:0"  # tests run in parallel: any free port
)";
    auto source = [&](const std::string& kind, const std::string& job, const std::string& keys) {
      config += "[[sources]]\nname = \"" + kind + "\"\nkind = \"" + kind + "\"\npath = \"/hooks/" +
                kind + "\"\njob = \"" + job + "\"\n" + keys + "\n";
      jobs_ += "[[jobs]]\ntype = \"" + job + "\"\nhandler = { command = [\"cat\"] }\n";
    };
    auto secret = [&](const std::string& name) {
      return "secret = { file = \"" + dir_.File(name + ".secret") + "\" }\n";
    };
    source("slack", "slack.event", secret("slack"));
    source("discord", "discord.interaction",
           "public_key = \"" + Ed25519PublicHex(kDiscordSeed) + "\"\n" +
               "signing_key = { file = \"" + dir_.File("discord_signing.secret") + "\" }\n");
    source("telegram", "telegram.update", secret("telegram"));
    source("github", "github.event", secret("github"));
    source(
        "meta", "meta.message",
        secret("meta") + "verify_token = { file = \"" + dir_.File("meta_verify.secret") + "\" }\n");
    source("hmac", "hmac.event", secret("hmac") + "dedupe = \"/id\"\n");
    config_ = dir_.Write("firebreak.toml", config + jobs_);
    // ingest only: stored jobs stay in the queue and can be counted.
    process_ = std::make_unique<FirebreakProcess>("ingest", config_, dir_.File("log.txt"), port_);
    ASSERT_TRUE(process_->Start()) << process_->Log();
    connection_ = std::make_unique<HttpConnection>("127.0.0.1", port_);
  }

  HttpResponse Send(const std::string& method, const std::string& path, const Headers& headers,
                    const std::string& body) {
    auto res = connection_->Send(method, path, headers, body);
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : HttpResponse{};
  }

  TempDir dir_;
  uint16_t port_ = 0;
  std::string jobs_;
  std::string config_;
  std::unique_ptr<FirebreakProcess> process_;
  std::unique_ptr<HttpConnection> connection_;
};

TEST_F(PlatformsTest, EveryKindAcceptsGenuineOnceAndRefusesForgeries) {
  int n = 0;
  std::vector<std::string> signatures_sent;
  for (const Platform& p : Platforms()) {
    SCOPED_TRACE(p.kind);
    const std::string id = std::to_string(100000 + ++n);
    const std::string body = p.event(id);
    const int64_t now = NowSeconds();

    for (const auto& [name, value] : p.sign(body, true, now)) {
      if (name.find("Timestamp") == std::string::npos && name != "Content-Type" &&
          name != "X-GitHub-Event" && name != "X-GitHub-Delivery") {
        signatures_sent.push_back(value);
      }
    }
    HttpResponse res = Send("POST", p.path, p.sign(body, true, now), body);
    EXPECT_EQ(res.status, 200) << res.body;
    EXPECT_EQ(QueuedJobs(config_, p.job), 1);
    res = Send("POST", p.path, p.sign(body, true, NowSeconds()), body);
    EXPECT_EQ(res.status, 200) << "the same event again: " << res.body;
    EXPECT_EQ(QueuedJobs(config_, p.job), 1) << "a duplicate made a second job";

    const std::string other = p.event(id + "7");
    std::string tampered = other;
    tampered.replace(tampered.find(id), id.size(), id.substr(0, id.size() - 1) + "9");
    if (p.body_signed) {
      EXPECT_EQ(Send("POST", p.path, p.sign(other, true, now), tampered).status, 401) << "tampered";
    }
    EXPECT_EQ(Send("POST", p.path, p.sign(other, false, now), other).status, 401)
        << "wrong secret or key";
    for (const std::string& header : p.signature_headers) {
      Headers headers = p.sign(other, true, now);
      std::erase_if(headers, [&](const auto& h) { return h.first == header; });
      EXPECT_EQ(Send("POST", p.path, headers, other).status, 401) << "without " << header;
    }
    if (p.has_timestamp) {
      EXPECT_EQ(Send("POST", p.path, p.sign(other, true, now - 3600), other).status, 401)
          << "an hour-old timestamp";
    }
    EXPECT_EQ(QueuedJobs(config_, p.job), 1) << "a refused request stored a job";
  }
  // No secret or signature in the log (issue 4, acceptance 5).
  const std::string log = process_->Log();
  for (const char* secret : {kSlackSecret, kGithubSecret, kTelegramSecret, kMetaSecret,
                             kMetaVerifyToken, kHmacSecret, kDiscordSeed}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << "secret in the log";
  }
  ASSERT_EQ(signatures_sent.size(), 6u);
  for (const std::string& signature : signatures_sent) {
    EXPECT_EQ(log.find(signature), std::string::npos) << "signature in the log";
  }
}

TEST_F(PlatformsTest, SendSignsForEveryKindAsThePlatformWould) {
  for (const Platform& p : Platforms()) {
    SCOPED_TRACE(p.kind);
    const int64_t before = QueuedJobs(config_, p.job);
    CommandResult sent = RunFirebreak({"send", "-c", config_, "--source", p.kind});
    EXPECT_EQ(sent.exit_code, 0) << sent.out;
    EXPECT_NE(sent.out.find("-> 200"), std::string::npos) << sent.out;
    // A sample delivery for meta holds two messages: one job each.
    EXPECT_EQ(QueuedJobs(config_, p.job), before + (p.kind == "meta" ? 2 : 1)) << sent.out;
  }
}

TEST_F(PlatformsTest, HandshakesAreAnsweredAsThePlatformsExpect) {
  // Discord PING (type 1) → {"type":1}; nothing stored.
  const std::string ping = R"({"type":1,"id":"1","application_id":"1","token":"t"})";
  const std::string ts = std::to_string(NowSeconds());
  HttpResponse res = Send("POST", "/hooks/discord",
                          {{"X-Signature-Ed25519", Ed25519SignHex(kDiscordSeed, ts + ping)},
                           {"X-Signature-Timestamp", ts},
                           {"Content-Type", "application/json"}},
                          ping);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, R"({"type":1})");
  EXPECT_EQ(QueuedJobs(config_, "discord.interaction"), 0);
  // Another interaction is deferred at once: {"type":5}, and stored.
  const std::string command = R"({"type":2,"id":"55","application_id":"1","token":"t"})";
  res = Send("POST", "/hooks/discord",
             {{"X-Signature-Ed25519", Ed25519SignHex(kDiscordSeed, ts + command)},
              {"X-Signature-Timestamp", ts},
              {"Content-Type", "application/json"}},
             command);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, R"({"type":5})");
  EXPECT_EQ(QueuedJobs(config_, "discord.interaction"), 1);

  // GitHub ping: answered, not enqueued.
  const std::string zen = R"({"zen":"Keep it logically awesome.","hook_id":1})";
  res = Send("POST", "/hooks/github",
             {{"X-Hub-Signature-256", "sha256=" + HmacSha256Hex(kGithubSecret, zen)},
              {"X-GitHub-Event", "ping"},
              {"X-GitHub-Delivery", "ping-1"},
              {"Content-Type", "application/json"}},
             zen);
  EXPECT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(QueuedJobs(config_, "github.event"), 0);

  // Meta's subscription handshake.
  res = Send("GET",
             "/hooks/meta?hub.mode=subscribe&hub.challenge=31337&hub.verify_token=" +
                 std::string(kMetaVerifyToken),
             {}, "");
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "31337");
  res = Send("GET", "/hooks/meta?hub.mode=subscribe&hub.challenge=1&hub.verify_token=x", {}, "");
  EXPECT_EQ(res.status, 403);
}

}  // namespace
}  // namespace firebreak::testing
