#include "ingress/slack_source.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/crypto.h"
#include "ingress/source.h"
#include "fake_request.h"

namespace firebreak {
namespace {

using nlohmann::json;

using firebreak::testing::FakeRequest;

// Slack's worked example, https://api.slack.com/authentication/verifying-requests-from-slack
// (a /webhook-collect slash command).
constexpr char kDocSecret[] = "8f742231b10e8888abcd99yyyzzz85a5";
constexpr int64_t kDocTimestamp = 1531420618;
constexpr char kDocBody[] =
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
    "G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
    "collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%"
    "2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
    "803a0bc887a14d10d2c447fce8b6703c";
constexpr char kDocSignature[] =
    "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

constexpr char kSecret[] = "test-signing-secret";
constexpr int64_t kNow = 1'700'000'000;

SourceConfig SlackConfig(std::string secret = kSecret) {
  SourceConfig config;
  config.name = "slack";
  config.kind = SourceKind::kSlack;
  config.path = "/hooks/slack";
  config.job = "slack.event";
  config.secret = Secret{Secret::Kind::kEnv, "SLACK_SECRET", "test:1:1", std::move(secret)};
  return config;
}

class SlackSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<Source>> made = MakeSource(SlackConfig(), clock_);
    ASSERT_TRUE(made.ok()) << made.status().ToString();
    source_ = std::move(made).value();
  }

  // A request signed as Slack would sign it at `timestamp` with `secret`.
  static FakeRequest Signed(std::string body, int64_t timestamp = kNow,
                            std::string secret = kSecret,
                            std::string content_type = "application/json") {
    std::string ts = std::to_string(timestamp);
    FakeRequest request(body);
    request.SetHeader("Content-Type", content_type)
        .SetHeader("X-Slack-Request-Timestamp", ts)
        .SetHeader("X-Slack-Signature",
                   "v0=" + HmacHex(HmacAlgorithm::kSha256, secret, "v0:" + ts + ":" + body));
    return request;
  }

  static void ExpectRejected(const SourceDecision& decision, int status, const std::string& error) {
    EXPECT_EQ(decision.kind, SourceDecision::Kind::kRespond);
    EXPECT_EQ(decision.status, status);
    EXPECT_EQ(decision.error, error);
    EXPECT_EQ(decision.body, R"({"ok":false,"error":")" + error + "\"}");
    EXPECT_TRUE(decision.dedupe_keys.empty());
  }

  FakeClock clock_{kNow * 1000 + 250};
  std::unique_ptr<Source> source_;
};

const char kEvent[] =
    R"({"token":"x","team_id":"T1","type":"event_callback","event_id":"Ev0PV52K25",)"
    R"("event":{"type":"app_mention","text":"hi"}})";

TEST_F(SlackSourceTest, DocumentedExampleVerifies) {
  FakeClock doc_clock(kDocTimestamp * 1000);
  Result<std::unique_ptr<Source>> made = MakeSource(SlackConfig(kDocSecret), doc_clock);
  ASSERT_TRUE(made.ok());
  FakeRequest request(kDocBody);
  request.SetHeader("content-type", "application/x-www-form-urlencoded")
      .SetHeader("x-slack-request-timestamp", std::to_string(kDocTimestamp))
      .SetHeader("x-slack-signature", kDocSignature);

  SourceDecision decision = (*made)->Handle(request);
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
  EXPECT_EQ(decision.status, 200);
  EXPECT_TRUE(decision.empty_body_on_success);
  EXPECT_EQ(decision.body, "");
  EXPECT_EQ(decision.headers_json, "{}");
  EXPECT_EQ(decision.dedupe_keys, std::vector<std::string>{"slack:sha256:" + Sha256Hex(kDocBody)});
  json payload = json::parse(decision.payload_json);
  EXPECT_EQ(payload["command"], "/webhook-collect");
  EXPECT_EQ(payload["text"], "");
  EXPECT_EQ(payload["user_name"], "roadrunner");
  EXPECT_EQ(payload["response_url"],
            "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN");
  EXPECT_EQ(payload.size(), 11u);

  // Our signer produces the documented signature too.
  Result<SignedRequest> signed_request =
      SignRequest(SlackConfig(kDocSecret), kDocBody, kDocTimestamp);
  ASSERT_TRUE(signed_request.ok());
  EXPECT_EQ(signed_request->content_type, "application/x-www-form-urlencoded");
  EXPECT_EQ(signed_request->headers, (std::vector<std::pair<std::string, std::string>>{
                                         {"X-Slack-Request-Timestamp", "1531420618"},
                                         {"X-Slack-Signature", kDocSignature}}));

  // One minute later still fine; six minutes later the same request is a replay.
  doc_clock.Advance(std::chrono::minutes(1));
  EXPECT_EQ((*made)->Handle(request).kind, SourceDecision::Kind::kEnqueue);
  doc_clock.Advance(std::chrono::minutes(5));
  ExpectRejected((*made)->Handle(request), 401, "stale timestamp");
}

TEST_F(SlackSourceTest, EventIsEnqueuedWithEventIdKey) {
  SourceDecision decision = source_->Handle(Signed(kEvent));
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
  EXPECT_EQ(decision.status, 200);
  EXPECT_EQ(decision.body, "");
  EXPECT_FALSE(decision.empty_body_on_success);
  EXPECT_EQ(decision.payload_json, kEvent);
  EXPECT_EQ(decision.dedupe_keys, std::vector<std::string>{"slack:Ev0PV52K25"});
  EXPECT_EQ(decision.headers_json, "{}");
}

TEST_F(SlackSourceTest, RetryHeadersAreCarried) {
  FakeRequest request = Signed(kEvent);
  request.SetHeader("X-Slack-Retry-Num", "2").SetHeader("X-Slack-Retry-Reason", "http_timeout");
  SourceDecision decision = source_->Handle(request);
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue);
  EXPECT_EQ(json::parse(decision.headers_json),
            json({{"x-slack-retry-num", "2"}, {"x-slack-retry-reason", "http_timeout"}}));
  EXPECT_EQ(decision.dedupe_keys, std::vector<std::string>{"slack:Ev0PV52K25"});

  request.RemoveHeader("X-Slack-Retry-Reason");
  EXPECT_EQ(source_->Handle(request).headers_json, R"({"x-slack-retry-num":"2"})");
}

TEST_F(SlackSourceTest, ClientMessageIdAddsASecondKey) {
  std::string body = R"({"type":"event_callback","event_id":"Ev2","event":{"type":"message",)"
                     R"("client_msg_id":"54360322-36c9-4cd8-a7ab-13b5322362a6","text":"hello"}})";
  SourceDecision decision = source_->Handle(Signed(body));
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue);
  EXPECT_EQ(
      decision.dedupe_keys,
      (std::vector<std::string>{"slack:Ev2", "slack:msg:54360322-36c9-4cd8-a7ab-13b5322362a6"}));

  // A non-string client_msg_id is ignored.
  std::string numeric = R"({"event_id":"Ev3","event":{"client_msg_id":12}})";
  EXPECT_EQ(source_->Handle(Signed(numeric)).dedupe_keys, std::vector<std::string>{"slack:Ev3"});
}

TEST_F(SlackSourceTest, WithoutEventIdTheBodyHashIsTheKey) {
  std::string body = R"({"type":"app_rate_limited","minute_rate_limited":1518467820})";
  SourceDecision decision = source_->Handle(Signed(body));
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue);
  EXPECT_EQ(decision.dedupe_keys, std::vector<std::string>{"slack:sha256:" + Sha256Hex(body)});
}

TEST_F(SlackSourceTest, UrlVerificationAnswersTheChallenge) {
  std::string body = R"({"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl",)"
                     R"("challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",)"
                     R"("type":"url_verification"})";
  SourceDecision decision = source_->Handle(Signed(body));
  EXPECT_EQ(decision.kind, SourceDecision::Kind::kRespond);
  EXPECT_EQ(decision.status, 200);
  EXPECT_EQ(decision.content_type, "application/json");
  EXPECT_EQ(decision.body,
            R"({"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})");
  EXPECT_TRUE(decision.dedupe_keys.empty());
  EXPECT_TRUE(decision.payload_json.empty());

  // The challenge is re-escaped, never pasted raw.
  std::string tricky = R"({"type":"url_verification","challenge":"a\"b\\c\u00e9"})";
  decision = source_->Handle(Signed(tricky));
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kRespond);
  EXPECT_EQ(json::parse(decision.body)["challenge"], "a\"b\\c\xC3\xA9");

  ExpectRejected(source_->Handle(Signed(R"({"type":"url_verification"})")), 400,
                 "missing challenge");
}

TEST_F(SlackSourceTest, SlashCommandFormBecomesAnObject) {
  std::string body =
      "token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T0001&command=%2Fweather&text=94070+now&"
      "response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1234%2F5678";
  SourceDecision decision =
      source_->Handle(Signed(body, kNow, kSecret, "application/x-www-form-urlencoded"));
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
  EXPECT_TRUE(decision.empty_body_on_success);
  EXPECT_EQ(json::parse(decision.payload_json),
            json({{"token", "gIkuvaNzQIHg97ATvDxqgjtO"},
                  {"team_id", "T0001"},
                  {"command", "/weather"},
                  {"text", "94070 now"},
                  {"response_url", "https://hooks.slack.com/commands/1234/5678"}}));
  EXPECT_EQ(decision.dedupe_keys, std::vector<std::string>{"slack:sha256:" + Sha256Hex(body)});
}

TEST_F(SlackSourceTest, InteractivityPayloadIsEmbeddedAsJson) {
  std::string body =
      "payload=%7B%22type%22%3A%22block_actions%22%2C%22user%22%3A%7B%22id%22%3A%22U1%22%7D%2C"
      "%22actions%22%3A%5B%7B%22action_id%22%3A%22approve%22%7D%5D%7D";
  SourceDecision decision = source_->Handle(
      Signed(body, kNow, kSecret, "application/x-www-form-urlencoded; charset=utf-8"));
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
  json payload = json::parse(decision.payload_json);
  ASSERT_TRUE(payload["payload"].is_object());
  EXPECT_EQ(payload["payload"]["type"], "block_actions");
  EXPECT_EQ(payload["payload"]["user"]["id"], "U1");
  EXPECT_EQ(payload["payload"]["actions"][0]["action_id"], "approve");

  std::string broken = "payload=%7B%22type%22%3A";
  ExpectRejected(
      source_->Handle(Signed(broken, kNow, kSecret, "application/x-www-form-urlencoded")), 400,
      "malformed form body");
  ExpectRejected(
      source_->Handle(Signed("text=%zz", kNow, kSecret, "application/x-www-form-urlencoded")), 400,
      "malformed form body");
}

TEST_F(SlackSourceTest, ContentTypeParametersAndCaseAreAccepted) {
  SourceDecision decision =
      source_->Handle(Signed(kEvent, kNow, kSecret, "Application/JSON; charset=utf-8"));
  EXPECT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
}

TEST_F(SlackSourceTest, TamperedBodyIsRejected) {
  FakeRequest good = Signed(kEvent);
  std::string tampered(kEvent);
  tampered.replace(tampered.find("hi"), 2, "ho");
  FakeRequest request(tampered);
  request.SetHeader("Content-Type", "application/json")
      .SetHeader("X-Slack-Request-Timestamp", std::string(good.Header("X-Slack-Request-Timestamp")))
      .SetHeader("X-Slack-Signature", std::string(good.Header("X-Slack-Signature")));
  ExpectRejected(source_->Handle(request), 401, "invalid signature");
}

TEST_F(SlackSourceTest, SignedTimestampCannotBeSwapped) {
  // A fresh timestamp on an old signature must not verify: the timestamp is signed.
  FakeRequest request = Signed(kEvent, kNow - 10);
  request.SetHeader("X-Slack-Request-Timestamp", std::to_string(kNow));
  ExpectRejected(source_->Handle(request), 401, "invalid signature");
}

TEST_F(SlackSourceTest, WrongSecretIsRejected) {
  ExpectRejected(source_->Handle(Signed(kEvent, kNow, "another-secret")), 401, "invalid signature");
}

TEST_F(SlackSourceTest, MalformedSignatureValuesAreRejected) {
  FakeRequest request = Signed(kEvent);
  std::string signature(request.Header("X-Slack-Signature"));
  for (std::string bad : {signature.substr(3), "v1=" + signature.substr(3), signature + "0",
                          signature.substr(0, signature.size() - 1), std::string("v0=")}) {
    request.SetHeader("X-Slack-Signature", bad);
    ExpectRejected(source_->Handle(request), 401, "invalid signature");
  }
  // Upper-case hex is the same signature.
  std::string upper = signature;
  std::transform(upper.begin() + 3, upper.end(), upper.begin() + 3,
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  request.SetHeader("X-Slack-Signature", upper);
  EXPECT_EQ(source_->Handle(request).kind, SourceDecision::Kind::kEnqueue);
}

TEST_F(SlackSourceTest, MissingHeadersAreRejected) {
  FakeRequest no_signature = Signed(kEvent);
  no_signature.RemoveHeader("X-Slack-Signature");
  ExpectRejected(source_->Handle(no_signature), 401, "missing signature");
  FakeRequest no_timestamp = Signed(kEvent);
  no_timestamp.RemoveHeader("X-Slack-Request-Timestamp");
  ExpectRejected(source_->Handle(no_timestamp), 401, "missing signature");
  FakeRequest empty_signature = Signed(kEvent);
  empty_signature.SetHeader("X-Slack-Signature", "");
  ExpectRejected(source_->Handle(empty_signature), 401, "missing signature");
}

TEST_F(SlackSourceTest, StaleTimestampsAreRejectedBothWays) {
  ExpectRejected(source_->Handle(Signed(kEvent, kNow - 360)), 401, "stale timestamp");
  ExpectRejected(source_->Handle(Signed(kEvent, kNow + 360)), 401, "stale timestamp");
  // The window is ±300 s inclusive.
  EXPECT_EQ(source_->Handle(Signed(kEvent, kNow - 300)).kind, SourceDecision::Kind::kEnqueue);
  EXPECT_EQ(source_->Handle(Signed(kEvent, kNow + 300)).kind, SourceDecision::Kind::kEnqueue);
  ExpectRejected(source_->Handle(Signed(kEvent, kNow - 301)), 401, "stale timestamp");
}

TEST_F(SlackSourceTest, NonNumericTimestampsAreRejected) {
  for (std::string ts : {"abc", "-1700000000", "+1700000000", " 1700000000", "1700000000.5",
                         "99999999999999999999999"}) {
    FakeRequest request = Signed(kEvent);
    request.SetHeader("X-Slack-Request-Timestamp", ts);
    ExpectRejected(source_->Handle(request), 401, "stale timestamp");
  }
}

TEST_F(SlackSourceTest, MalformedJsonIsRejectedAfterVerification) {
  for (std::string body : {"{\"type\":", "[1,2]", "\"text\"", "{} trailing"}) {
    ExpectRejected(source_->Handle(Signed(body)), 400, "malformed JSON");
  }
}

TEST_F(SlackSourceTest, OtherRequestsAreRejected) {
  ExpectRejected(source_->Handle(Signed("")), 400, "empty body");
  ExpectRejected(source_->Handle(Signed(kEvent, kNow, kSecret, "text/plain")), 415,
                 "unsupported content type");
  FakeRequest no_type = Signed(kEvent);
  no_type.RemoveHeader("Content-Type");
  ExpectRejected(source_->Handle(no_type), 415, "unsupported content type");
  ExpectRejected(source_->Handle(FakeRequest(kEvent, "GET")), 405, "method not allowed");
}

TEST_F(SlackSourceTest, SignRequestRoundTrips) {
  for (std::string body : {std::string(kEvent), std::string(" \n{\"event_id\":\"Ev9\"}"),
                           std::string("command=%2Fdeploy&text=prod")}) {
    Result<SignedRequest> signed_request = SignRequest(SlackConfig(), body, kNow);
    ASSERT_TRUE(signed_request.ok()) << signed_request.status().ToString();
    FakeRequest request(body);
    request.SetHeader("Content-Type", signed_request->content_type);
    for (const auto& [name, value] : signed_request->headers) request.SetHeader(name, value);
    SourceDecision decision = source_->Handle(request);
    EXPECT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << body << ": " << decision.error;
  }
  EXPECT_EQ(SignRequest(SlackConfig(), kEvent, kNow)->content_type, "application/json");
  EXPECT_EQ(SignRequest(SlackConfig(), "a=1", kNow)->content_type,
            "application/x-www-form-urlencoded");
}

TEST_F(SlackSourceTest, ErrorsNeverCarryTheSignatureOrSecret) {
  FakeRequest request = Signed(kEvent, kNow, "wrong");
  SourceDecision decision = source_->Handle(request);
  EXPECT_EQ(decision.body.find(std::string(request.Header("X-Slack-Signature")).substr(3)),
            std::string::npos);
  EXPECT_EQ(decision.body.find(kSecret), std::string::npos);
}

TEST_F(SlackSourceTest, ConcurrentRequestsAreIndependent) {
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t, &failures] {
      for (int i = 0; i < 300; ++i) {
        std::string id = "Ev" + std::to_string(t) + "x" + std::to_string(i);
        std::string body = R"({"type":"event_callback","event_id":")" + id + "\"}";
        SourceDecision decision = source_->Handle(Signed(body));
        if (decision.dedupe_keys != std::vector<std::string>{"slack:" + id}) ++failures[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

TEST(SlackSourceConfigTest, UnresolvedSecretIsAnError) {
  FakeClock clock;
  SourceConfig config = SlackConfig("");
  Result<std::unique_ptr<Source>> made = MakeSource(config, clock);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument);
  config.secret.reset();
  EXPECT_FALSE(MakeSource(config, clock).ok());
  EXPECT_FALSE(SignRequest(config, "{}", kNow).ok());
}

TEST(SourceFactoryTest, EveryKindIsBuiltAndRefusesAnIncompleteConfig) {
  FakeClock clock;
  for (SourceKind kind : {SourceKind::kSlack, SourceKind::kHmac, SourceKind::kTelegram,
                          SourceKind::kGithub}) {
    SourceConfig config = SlackConfig();
    config.kind = kind;
    EXPECT_TRUE(MakeSource(config, clock).ok()) << SourceKindName(kind);
    config.secret.reset();
    Result<std::unique_ptr<Source>> made = MakeSource(config, clock);
    ASSERT_FALSE(made.ok()) << SourceKindName(kind);
    EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument);
  }
  SourceConfig meta = SlackConfig();
  meta.kind = SourceKind::kMeta;
  EXPECT_FALSE(MakeSource(meta, clock).ok()) << "meta without verify_token";
  SourceConfig discord = SlackConfig();
  discord.kind = SourceKind::kDiscord;
  EXPECT_FALSE(MakeSource(discord, clock).ok()) << "discord without public_key";
  EXPECT_FALSE(SignRequest(discord, "{}", kNow).ok()) << "discord without signing_key";
}

TEST(SourceDecisionTest, RejectEscapesTheError) {
  SourceDecision decision = SourceDecision::Reject(400, "dedupe key /a\"b missing");
  EXPECT_EQ(decision.kind, SourceDecision::Kind::kRespond);
  EXPECT_EQ(decision.status, 400);
  EXPECT_EQ(decision.error, "dedupe key /a\"b missing");
  EXPECT_EQ(json::parse(decision.body),
            json({{"ok", false}, {"error", "dedupe key /a\"b missing"}}));
}

}  // namespace
}  // namespace firebreak
