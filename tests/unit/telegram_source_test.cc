#include "ingress/telegram_source.h"

#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fake_request.h"
#include "ingress/source.h"

namespace firebreak {
namespace {

using nlohmann::json;

using firebreak::testing::FakeRequest;

// https://core.telegram.org/bots/api#setwebhook: with `secret_token` set, every webhook
// request carries "X-Telegram-Bot-Api-Secret-Token" with the token as content; the token
// is 1-256 characters, only A-Z, a-z, 0-9, _ and - allowed. The body is a JSON-serialized
// Update (https://core.telegram.org/bots/api#update) whose `update_id` identifies it.
constexpr char kSecret[] = "tg_Webhook-Secret_0123456789";
constexpr char kUpdate[] =
    R"({"update_id":10000,"message":{"message_id":1365,"date":1441645532,)"
    R"("chat":{"id":1111111,"type":"private","first_name":"Test"},)"
    R"("from":{"id":1111111,"is_bot":false,"first_name":"Test"},"text":"/start"}})";

SourceConfig TelegramConfig(std::string secret = kSecret) {
  SourceConfig config;
  config.name = "telegram";
  config.kind = SourceKind::kTelegram;
  config.path = "/hooks/telegram";
  config.job = "telegram.update";
  config.secret = Secret{Secret::Kind::kEnv, "TELEGRAM_SECRET", "test:1:1", std::move(secret)};
  return config;
}

std::unique_ptr<Source> Make(const SourceConfig& config) {
  Result<std::unique_ptr<Source>> made = TelegramSource::Create(config);
  EXPECT_TRUE(made.ok()) << made.status().ToString();
  return made.ok() ? std::move(made).value() : nullptr;
}

// A delivery as Telegram makes it: the header is the configured token itself.
FakeRequest Update(std::string body, std::string token = kSecret) {
  FakeRequest request(body);
  request.SetHeader("Content-Type", "application/json")
      .SetHeader("X-Telegram-Bot-Api-Secret-Token", token);
  return request;
}

void ExpectRejected(const SourceDecision& decision, int status, const std::string& error) {
  EXPECT_EQ(decision.kind, SourceDecision::Kind::kRespond);
  EXPECT_EQ(decision.status, status);
  EXPECT_EQ(decision.error, error);
  EXPECT_EQ(json::parse(decision.body), json({{"ok", false}, {"error", error}}));
  EXPECT_TRUE(decision.dedupe_keys.empty());
  EXPECT_TRUE(decision.payload_json.empty());
  EXPECT_EQ(decision.body.find(kSecret), std::string::npos);
}

TEST(TelegramSourceTest, UpdateIsEnqueuedWithUpdateIdKey) {
  auto source = Make(TelegramConfig());
  SourceDecision decision = source->Handle(Update(kUpdate));
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
  EXPECT_EQ(decision.status, 200);
  EXPECT_EQ(decision.body, "");
  EXPECT_FALSE(decision.empty_body_on_success);
  EXPECT_EQ(decision.payload_json, kUpdate);
  EXPECT_EQ(decision.headers_json, "{}");
  EXPECT_EQ(decision.dedupe_keys, std::vector<std::string>{"telegram:10000"});

  // Telegram redelivers an update with the same id; the next update has the next id.
  EXPECT_EQ(source->Handle(Update(kUpdate)).dedupe_keys, decision.dedupe_keys);
  EXPECT_EQ(source->Handle(Update(R"({"update_id":10001,"edited_message":{}})")).dedupe_keys,
            std::vector<std::string>{"telegram:10001"});
}

TEST(TelegramSourceTest, MissingTokenIsRejected) {
  auto source = Make(TelegramConfig());
  FakeRequest request = Update(kUpdate);
  request.RemoveHeader("X-Telegram-Bot-Api-Secret-Token");
  ExpectRejected(source->Handle(request), 401, "missing secret token");
  request.SetHeader("X-Telegram-Bot-Api-Secret-Token", "");
  ExpectRejected(source->Handle(request), 401, "missing secret token");
}

TEST(TelegramSourceTest, WrongTokenIsRejected) {
  auto source = Make(TelegramConfig());
  const std::string secret = kSecret;
  std::string flipped_case = secret;
  flipped_case[0] = 'T';
  for (std::string bad : {std::string("not-the-secret"), secret + "x", secret.substr(1),
                          secret.substr(0, secret.size() - 1), flipped_case, " " + secret,
                          secret + std::string(1, '\0'), std::string(300, 'a')}) {
    SourceDecision decision = source->Handle(Update(kUpdate, bad));
    ExpectRejected(decision, 401, "invalid secret token");
  }
  // Header names are case-insensitive; the token is not.
  FakeRequest lower(kUpdate);
  lower.SetHeader("x-telegram-bot-api-secret-token", kSecret);
  EXPECT_EQ(source->Handle(lower).kind, SourceDecision::Kind::kEnqueue);
}

TEST(TelegramSourceTest, TokenIsCheckedBeforeTheBody) {
  auto source = Make(TelegramConfig());
  ExpectRejected(source->Handle(Update("{not json", "wrong")), 401, "invalid secret token");
  ExpectRejected(source->Handle(Update(R"({"no_update_id":1})", "wrong")), 401,
                 "invalid secret token");
}

TEST(TelegramSourceTest, UpdateIdMustBeAnInteger) {
  auto source = Make(TelegramConfig());
  ExpectRejected(source->Handle(Update(R"({"message":{"update_id":5}})")), 400,
                 "missing update_id");
  ExpectRejected(source->Handle(Update("{}")), 400, "missing update_id");
  for (std::string body : {R"({"update_id":"10000"})", R"({"update_id":1.5})",
                           R"({"update_id":1e3})", R"({"update_id":null})", R"({"update_id":true})",
                           R"({"update_id":[1]})", R"({"update_id":{"id":1}})"}) {
    ExpectRejected(source->Handle(Update(body)), 400, "update_id is not an integer");
  }
  // Every JSON integer is accepted as it is, also beyond int64.
  EXPECT_EQ(source->Handle(Update(R"({"update_id":0})")).dedupe_keys,
            std::vector<std::string>{"telegram:0"});
  EXPECT_EQ(source->Handle(Update(R"({"update_id":-7})")).dedupe_keys,
            std::vector<std::string>{"telegram:-7"});
  EXPECT_EQ(source->Handle(Update(R"({"update_id":18446744073709551615})")).dedupe_keys,
            std::vector<std::string>{"telegram:18446744073709551615"});
}

TEST(TelegramSourceTest, MalformedJsonIsRejected) {
  auto source = Make(TelegramConfig());
  for (const std::string& body :
       std::vector<std::string>{"", "{", "{\"update_id\":}", "not json", "{}{}", "[10000]", "10000",
                                "{\"update_id\":1,\"text\":\"\xC3\"}", std::string(5000, '{')}) {
    ExpectRejected(source->Handle(Update(body)), 400, "invalid JSON body");
  }
}

TEST(TelegramSourceTest, OnlyPost) {
  auto source = Make(TelegramConfig());
  for (std::string method : {"GET", "PUT"}) {
    FakeRequest request(kUpdate, method);
    request.SetHeader("X-Telegram-Bot-Api-Secret-Token", kSecret);
    ExpectRejected(source->Handle(request), 405, "method not allowed");
  }
}

TEST(TelegramSourceTest, SignRoundTrips) {
  SourceConfig config = TelegramConfig();
  Result<SignedRequest> signed_request = TelegramSource::Sign(config, kUpdate);
  ASSERT_TRUE(signed_request.ok()) << signed_request.status().ToString();
  EXPECT_EQ(signed_request->content_type, "application/json");
  EXPECT_EQ(signed_request->headers, (std::vector<std::pair<std::string, std::string>>{
                                         {"X-Telegram-Bot-Api-Secret-Token", kSecret}}));
  FakeRequest request(kUpdate);
  request.SetHeader("Content-Type", signed_request->content_type);
  for (const auto& [name, value] : signed_request->headers) request.SetHeader(name, value);
  SourceDecision decision = Make(config)->Handle(request);
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
  EXPECT_EQ(decision.dedupe_keys, std::vector<std::string>{"telegram:10000"});
}

TEST(TelegramSourceTest, SecretMustBeAValidSecretToken) {
  // The boundaries of Telegram's rule: 1 and 256 characters, the whole alphabet.
  for (std::string good :
       {std::string("a"), std::string(256, 'Z'), std::string("ABCXYZabcxyz0189_-")}) {
    EXPECT_TRUE(TelegramSource::Create(TelegramConfig(good)).ok()) << good.size();
    EXPECT_TRUE(TelegramSource::Sign(TelegramConfig(good), "{}").ok());
  }
  for (std::string bad :
       {std::string(257, 'a'), std::string("has space"), std::string("colon:secret"),
        std::string("dot.secret"), std::string("plus+secret"), std::string("caf\xC3\xA9"),
        std::string("tab\tsecret"), std::string("nul\0x", 5)}) {
    Result<std::unique_ptr<Source>> made = TelegramSource::Create(TelegramConfig(bad));
    ASSERT_FALSE(made.ok()) << bad;
    EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(made.status().message().find("source \"telegram\""), std::string::npos);
    EXPECT_NE(made.status().message().find("1-256 characters"), std::string::npos);
    EXPECT_EQ(made.status().message().find(bad), std::string::npos);  // never quoted
    EXPECT_FALSE(TelegramSource::Sign(TelegramConfig(bad), "{}").ok());
  }

  SourceConfig no_secret = TelegramConfig();
  no_secret.secret->value.clear();
  Result<std::unique_ptr<Source>> made = TelegramSource::Create(no_secret);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(made.status().message().find("source \"telegram\""), std::string::npos);
  no_secret.secret.reset();
  EXPECT_FALSE(TelegramSource::Create(no_secret).ok());
  EXPECT_FALSE(TelegramSource::Sign(no_secret, "{}").ok());
}

TEST(TelegramSourceTest, ArbitraryBodiesNeverCrash) {
  auto source = Make(TelegramConfig());
  std::mt19937 random(4242);
  for (int i = 0; i < 2000; ++i) {
    std::string body(random() % 64, '\0');
    for (char& c : body) c = static_cast<char>(random() % 256);
    if (i % 4 == 0) body = R"({"update_id":)" + body;
    SourceDecision decision = source->Handle(Update(body));
    EXPECT_EQ(decision.kind, SourceDecision::Kind::kRespond);
    EXPECT_EQ(decision.status, 400);
  }
}

TEST(TelegramSourceTest, ConcurrentHandlingIsIndependent) {
  auto source = Make(TelegramConfig());
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        const std::string id = std::to_string(t * 1000 + i);
        const std::string body = R"({"update_id":)" + id + "}";
        SourceDecision decision = source->Handle(Update(body, t % 2 == 0 ? kSecret : "wrong"));
        const bool ok = t % 2 == 0
                            ? decision.kind == SourceDecision::Kind::kEnqueue &&
                                  decision.dedupe_keys == std::vector<std::string>{"telegram:" + id}
                            : decision.status == 401;
        if (!ok) ++wrong;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace firebreak
