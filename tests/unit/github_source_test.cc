#include "ingress/github_source.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.h"
#include "fake_request.h"
#include "ingress/source.h"

namespace firebreak {
namespace {

using nlohmann::json;

using firebreak::testing::FakeRequest;

// GitHub's worked example, "Testing the webhook payload validation" in
// https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
constexpr char kDocSecret[] = "It's a Secret to Everybody";
constexpr char kDocPayload[] = "Hello, World!";
constexpr char kDocSignature[] =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

constexpr char kSecret[] = "github-webhook-secret";
constexpr char kDelivery[] = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
constexpr char kPush[] =
    R"({"ref":"refs/heads/main","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246",)"
    R"("after":"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5","repository":{"id":1296269,)"
    R"("full_name":"octocat/Hello-World"},"pusher":{"name":"octocat"}})";
constexpr char kPing[] =
    R"({"zen":"Design for failure.","hook_id":30,"hook":{"type":"Repository","id":30,)"
    R"("events":["push"],"active":true},"repository":{"id":1296269}})";

SourceConfig GithubConfig(std::string secret = kSecret) {
  SourceConfig config;
  config.name = "github";
  config.kind = SourceKind::kGithub;
  config.path = "/hooks/github";
  config.job = "github.event";
  config.secret =
      Secret{Secret::Kind::kEnv, "GITHUB_WEBHOOK_SECRET", "test:1:1", std::move(secret)};
  return config;
}

std::unique_ptr<Source> Make(const SourceConfig& config) {
  Result<std::unique_ptr<Source>> made = GithubSource::Create(config);
  EXPECT_TRUE(made.ok()) << made.status().ToString();
  return made.ok() ? std::move(made).value() : nullptr;
}

std::string Signature(std::string_view body, std::string_view secret = kSecret) {
  return "sha256=" + HmacHex(HmacAlgorithm::kSha256, secret, body);
}

// A delivery as GitHub sends it, signed independently of the code under test (crypto.h's
// one-shot HMAC).
FakeRequest Delivery(std::string body, std::string event = "push",
                     std::string content_type = "application/json", std::string secret = kSecret) {
  FakeRequest request(body);
  request.SetHeader("Content-Type", content_type)
      .SetHeader("X-GitHub-Event", event)
      .SetHeader("X-GitHub-Delivery", kDelivery)
      .SetHeader("X-GitHub-Hook-ID", "292430182")
      .SetHeader("X-Hub-Signature-256", Signature(body, secret));
  return request;
}

// Every character but the unreserved ones as %XX, like a browser's form encoder.
std::string FormEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += {'%', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return out;
}

void ExpectRejected(const SourceDecision& decision, int status, const std::string& error) {
  EXPECT_EQ(decision.kind, SourceDecision::Kind::kRespond);
  EXPECT_EQ(decision.status, status);
  EXPECT_EQ(decision.error, error);
  EXPECT_EQ(json::parse(decision.body), json({{"ok", false}, {"error", error}}));
  EXPECT_TRUE(decision.dedupe_keys.empty());
  EXPECT_TRUE(decision.payload_json.empty());
}

TEST(GithubSourceTest, DocumentedExampleVerifies) {
  // The signer reproduces the documented signature.
  Result<SignedRequest> signed_request = GithubSource::Sign(GithubConfig(kDocSecret), kDocPayload);
  ASSERT_TRUE(signed_request.ok()) << signed_request.status().ToString();
  ASSERT_FALSE(signed_request->headers.empty());
  EXPECT_EQ(signed_request->headers[0],
            (std::pair<std::string, std::string>{"X-Hub-Signature-256", kDocSignature}));

  // The verifier accepts it: "Hello, World!" is not JSON, so a request that passes the
  // signature check is refused for its body (400), one that fails it with 401.
  auto source = Make(GithubConfig(kDocSecret));
  FakeRequest request(kDocPayload);
  request.SetHeader("X-Hub-Signature-256", kDocSignature)
      .SetHeader("X-GitHub-Event", "push")
      .SetHeader("X-GitHub-Delivery", kDelivery);
  ExpectRejected(source->Handle(request), 400, "invalid JSON body");

  std::string wrong_digit(kDocSignature);
  wrong_digit.back() = '6';
  request.SetHeader("X-Hub-Signature-256", wrong_digit);
  ExpectRejected(source->Handle(request), 401, "invalid signature");
  ExpectRejected(Make(GithubConfig())->Handle(request), 401, "invalid signature");
}

TEST(GithubSourceTest, PushIsEnqueuedWithDeliveryKeyAndHeaders) {
  auto source = Make(GithubConfig());
  SourceDecision decision = source->Handle(Delivery(kPush));
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
  EXPECT_EQ(decision.status, 200);
  EXPECT_EQ(decision.body, "");
  EXPECT_FALSE(decision.empty_body_on_success);
  EXPECT_EQ(decision.payload_json, kPush);
  EXPECT_EQ(decision.dedupe_keys, std::vector<std::string>{std::string("github:") + kDelivery});
  EXPECT_EQ(json::parse(decision.headers_json), json({{"x-github-event", "push"},
                                                      {"x-github-delivery", kDelivery},
                                                      {"x-github-hook-id", "292430182"}}));

  // Only the headers present are carried; the event name is passed through as sent.
  FakeRequest without_hook_id = Delivery(kPush, "pull_request");
  without_hook_id.RemoveHeader("X-GitHub-Hook-ID");
  decision = source->Handle(without_hook_id);
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
  EXPECT_EQ(
      decision.headers_json,
      std::string(R"({"x-github-event":"pull_request","x-github-delivery":")") + kDelivery + "\"}");
}

TEST(GithubSourceTest, RedeliveryHasTheSameKeyAndANewDeliveryADifferentOne) {
  auto source = Make(GithubConfig());
  SourceDecision first = source->Handle(Delivery(kPush));
  SourceDecision again = source->Handle(Delivery(kPush));
  EXPECT_EQ(first.dedupe_keys, again.dedupe_keys);
  FakeRequest other = Delivery(kPush);
  other.SetHeader("X-GitHub-Delivery", "9a0c6e80-cc79-11e3-8a24-3c6e1d3a1c2b");
  EXPECT_EQ(source->Handle(other).dedupe_keys,
            std::vector<std::string>{"github:9a0c6e80-cc79-11e3-8a24-3c6e1d3a1c2b"});
}

TEST(GithubSourceTest, PingIsAnsweredAndNotEnqueued) {
  auto source = Make(GithubConfig());
  SourceDecision decision = source->Handle(Delivery(kPing, "ping"));
  EXPECT_EQ(decision.kind, SourceDecision::Kind::kRespond);
  EXPECT_EQ(decision.status, 200);
  EXPECT_EQ(decision.content_type, "application/json");
  EXPECT_EQ(decision.body, R"({"ok":true,"ping":true})");
  EXPECT_EQ(decision.error, "");
  EXPECT_TRUE(decision.dedupe_keys.empty());
  EXPECT_TRUE(decision.payload_json.empty());

  // A ping needs no delivery id (nothing is deduped), but it must still be signed.
  FakeRequest no_delivery = Delivery(kPing, "ping");
  no_delivery.RemoveHeader("X-GitHub-Delivery");
  EXPECT_EQ(source->Handle(no_delivery).body, R"({"ok":true,"ping":true})");
  FakeRequest forged = Delivery(kPing, "ping", "application/json", "not-the-secret");
  ExpectRejected(source->Handle(forged), 401, "invalid signature");
}

TEST(GithubSourceTest, TamperedBodyIsRejected) {
  auto source = Make(GithubConfig());
  FakeRequest good = Delivery(kPush);
  std::string tampered(kPush);
  tampered.replace(tampered.find("octocat\"}"), 7, "mallory");
  FakeRequest request = Delivery(tampered);
  request.SetHeader("X-Hub-Signature-256", std::string(good.Header("X-Hub-Signature-256")));
  ExpectRejected(source->Handle(request), 401, "invalid signature");
  // One byte appended is enough.
  FakeRequest appended = Delivery(std::string(kPush) + " ");
  appended.SetHeader("X-Hub-Signature-256", std::string(good.Header("X-Hub-Signature-256")));
  ExpectRejected(source->Handle(appended), 401, "invalid signature");
}

TEST(GithubSourceTest, WrongSecretIsRejected) {
  auto source = Make(GithubConfig());
  ExpectRejected(source->Handle(Delivery(kPush, "push", "application/json", "not-the-secret")), 401,
                 "invalid signature");
}

TEST(GithubSourceTest, MissingOrMalformedSignatureIsRejected) {
  auto source = Make(GithubConfig());
  FakeRequest request = Delivery(kPush);
  const std::string signature(request.Header("X-Hub-Signature-256"));
  const std::string hex = signature.substr(7);

  request.RemoveHeader("X-Hub-Signature-256");
  ExpectRejected(source->Handle(request), 401, "missing signature");

  // The legacy SHA-1 header alone is not accepted.
  request.SetHeader("X-Hub-Signature", "sha1=" + HmacHex(HmacAlgorithm::kSha1, kSecret, kPush));
  ExpectRejected(source->Handle(request), 401, "missing signature");

  for (std::string bad : {hex, "sha1=" + hex, "sha512=" + hex, signature + "0",
                          signature.substr(0, signature.size() - 1), std::string("sha256="),
                          "sha256=" + std::string(64, '0'), " " + signature}) {
    request.SetHeader("X-Hub-Signature-256", bad);
    SourceDecision decision = source->Handle(request);
    ExpectRejected(decision, 401, "invalid signature");
    // Neither the signature sent nor the expected one is echoed.
    EXPECT_EQ(decision.body.find(hex), std::string::npos);
  }

  // Upper-case hex is the same signature.
  std::string upper = "sha256=";
  for (char c : hex)
    upper.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  request.SetHeader("X-Hub-Signature-256", upper);
  EXPECT_EQ(source->Handle(request).kind, SourceDecision::Kind::kEnqueue);
}

TEST(GithubSourceTest, SignatureIsCheckedBeforeAnythingElse) {
  auto source = Make(GithubConfig());
  // Unsigned garbage with no event header gets 401, not 400: nothing about the request
  // is examined until it is known to come from GitHub.
  FakeRequest garbage("{not json");
  garbage.SetHeader("X-Hub-Signature-256", Signature("something else"));
  ExpectRejected(source->Handle(garbage), 401, "invalid signature");
  garbage.RemoveHeader("X-Hub-Signature-256");
  ExpectRejected(source->Handle(garbage), 401, "missing signature");
}

TEST(GithubSourceTest, RequiredHeaders) {
  auto source = Make(GithubConfig());
  FakeRequest no_event = Delivery(kPush);
  no_event.RemoveHeader("X-GitHub-Event");
  ExpectRejected(source->Handle(no_event), 400, "missing X-GitHub-Event header");

  FakeRequest no_delivery = Delivery(kPush);
  no_delivery.RemoveHeader("X-GitHub-Delivery");
  ExpectRejected(source->Handle(no_delivery), 400, "missing X-GitHub-Delivery header");

  // Values that could not be carried as they are (controls, blanks, non-ASCII bytes).
  FakeRequest bad_event = Delivery(kPush, "push\x01");
  ExpectRejected(source->Handle(bad_event), 400, "malformed X-GitHub-Event header");
  FakeRequest bad_delivery = Delivery(kPush);
  bad_delivery.SetHeader("X-GitHub-Delivery", "72d3162e \xC3\xA9");
  ExpectRejected(source->Handle(bad_delivery), 400, "malformed X-GitHub-Delivery header");
  FakeRequest bad_hook = Delivery(kPush);
  bad_hook.SetHeader("X-GitHub-Hook-ID", "12 34");
  ExpectRejected(source->Handle(bad_hook), 400, "malformed X-GitHub-Hook-ID header");

  // Visible ASCII that JSON must escape is carried, escaped.
  FakeRequest quoted = Delivery(kPush);
  quoted.SetHeader("X-GitHub-Hook-ID", "12\"34\\");
  SourceDecision decision = source->Handle(quoted);
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
  EXPECT_EQ(json::parse(decision.headers_json)["x-github-hook-id"], "12\"34\\");
}

TEST(GithubSourceTest, FormEncodedPayloadIsTheJson) {
  auto source = Make(GithubConfig());
  const std::string body = "payload=" + FormEncode(kPush);
  SourceDecision decision =
      source->Handle(Delivery(body, "push", "application/x-www-form-urlencoded"));
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
  EXPECT_EQ(decision.payload_json, kPush);
  EXPECT_EQ(decision.dedupe_keys, std::vector<std::string>{std::string("github:") + kDelivery});

  // '+' is a space in a form; other fields are ignored.
  const std::string spaced = "other=1&payload=%7B%22a%22%3A+%22b+c%22%7D";
  decision = source->Handle(Delivery(spaced, "push", "application/x-www-form-urlencoded; x=y"));
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
  EXPECT_EQ(decision.payload_json, R"({"a": "b c"})");

  // A form ping is answered like a JSON one.
  decision = source->Handle(
      Delivery("payload=" + FormEncode(kPing), "ping", "application/x-www-form-urlencoded"));
  EXPECT_EQ(decision.body, R"({"ok":true,"ping":true})");

  const std::string form = "application/x-www-form-urlencoded";
  ExpectRejected(source->Handle(Delivery("zen=1", "push", form)), 400, "missing payload field");
  ExpectRejected(source->Handle(Delivery("", "push", form)), 400, "missing payload field");
  ExpectRejected(source->Handle(Delivery("payload=%7", "push", form)), 400, "malformed form body");
  ExpectRejected(source->Handle(Delivery("payload=%7B", "push", form)), 400, "invalid JSON body");
  ExpectRejected(source->Handle(Delivery("payload", "push", form)), 400, "invalid JSON body");
  // A JSON body sent with a form content type is not mistaken for JSON.
  ExpectRejected(source->Handle(Delivery(kPush, "push", form)), 400, "missing payload field");
}

TEST(GithubSourceTest, MalformedJsonIsRejected) {
  auto source = Make(GithubConfig());
  for (const std::string& body :
       std::vector<std::string>{"", "{", "{\"a\":}", "not json", "{}{}", "[1,2]", "\"push\"", "42",
                                "{\"a\":\"\xFF\"}", std::string(5000, '[')}) {
    ExpectRejected(source->Handle(Delivery(body)), 400, "invalid JSON body");
  }
}

TEST(GithubSourceTest, OnlyPost) {
  auto source = Make(GithubConfig());
  for (std::string method : {"GET", "PUT", "HEAD"}) {
    FakeRequest request(kPush, method);
    request.SetHeader("X-Hub-Signature-256", Signature(kPush))
        .SetHeader("X-GitHub-Event", "push")
        .SetHeader("X-GitHub-Delivery", kDelivery);
    ExpectRejected(source->Handle(request), 405, "method not allowed");
  }
}

// xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx in lower-case hex. (No std::regex: GCC 12
// reports a false maybe-uninitialized inside it in the ASan build.)
bool IsV4Guid(const std::string& text) {
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return text[14] == '4' && (text[19] == '8' || text[19] == '9' || text[19] == 'a' ||
                             text[19] == 'b');
}

TEST(GithubSourceTest, SignRoundTrips) {
  SourceConfig config = GithubConfig();
  auto source = Make(config);
  std::set<std::string> deliveries;
  for (int i = 0; i < 3; ++i) {
    Result<SignedRequest> signed_request = GithubSource::Sign(config, kPush);
    ASSERT_TRUE(signed_request.ok()) << signed_request.status().ToString();
    EXPECT_EQ(signed_request->content_type, "application/json");
    ASSERT_EQ(signed_request->headers.size(), 3u);
    EXPECT_EQ(signed_request->headers[0].first, "X-Hub-Signature-256");
    EXPECT_EQ(signed_request->headers[0].second, Signature(kPush));
    EXPECT_EQ(signed_request->headers[1],
              (std::pair<std::string, std::string>{"X-GitHub-Event", "push"}));
    EXPECT_EQ(signed_request->headers[2].first, "X-GitHub-Delivery");
    const std::string& delivery = signed_request->headers[2].second;
    EXPECT_TRUE(IsV4Guid(delivery)) << delivery;
    deliveries.insert(delivery);

    FakeRequest request(kPush);
    request.SetHeader("Content-Type", signed_request->content_type);
    for (const auto& [name, value] : signed_request->headers) request.SetHeader(name, value);
    SourceDecision decision = source->Handle(request);
    ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
    EXPECT_EQ(decision.dedupe_keys, std::vector<std::string>{"github:" + delivery});
  }
  EXPECT_EQ(deliveries.size(), 3u);  // a fresh delivery id each time

  // A body with "zen" is signed as GitHub's ping and answered as one.
  Result<SignedRequest> ping = GithubSource::Sign(config, kPing);
  ASSERT_TRUE(ping.ok());
  EXPECT_EQ(ping->headers[1], (std::pair<std::string, std::string>{"X-GitHub-Event", "ping"}));
  FakeRequest request(kPing);
  for (const auto& [name, value] : ping->headers) request.SetHeader(name, value);
  EXPECT_EQ(source->Handle(request).body, R"({"ok":true,"ping":true})");

  // "zen" only counts as a member of the top-level object.
  Result<SignedRequest> nested = GithubSource::Sign(config, R"({"hook":{"zen":"x"}})");
  ASSERT_TRUE(nested.ok());
  EXPECT_EQ(nested->headers[1].second, "push");
  Result<SignedRequest> not_json = GithubSource::Sign(config, "zen");
  ASSERT_TRUE(not_json.ok());
  EXPECT_EQ(not_json->headers[1].second, "push");

  // Issues, their comments and pull requests are named as GitHub names them.
  const std::pair<const char*, const char*> named[] = {
      {R"({"action":"opened","issue":{"number":1}})", "issues"},
      {R"({"action":"created","issue":{"number":1},"comment":{"id":2}})", "issue_comment"},
      {R"({"action":"opened","pull_request":{"number":3}})", "pull_request"},
  };
  for (const auto& [payload, event] : named) {
    Result<SignedRequest> sent = GithubSource::Sign(config, payload);
    ASSERT_TRUE(sent.ok());
    EXPECT_EQ(sent->headers[1].second, event) << payload;
  }
}

TEST(GithubSourceTest, InvalidConfigIsRejected) {
  SourceConfig no_secret = GithubConfig();
  no_secret.secret->value.clear();
  Result<std::unique_ptr<Source>> made = GithubSource::Create(no_secret);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(made.status().message().find("\"github\""), std::string::npos);
  EXPECT_FALSE(GithubSource::Sign(no_secret, kPush).ok());
  no_secret.secret.reset();
  EXPECT_FALSE(GithubSource::Create(no_secret).ok());
  EXPECT_FALSE(GithubSource::Sign(no_secret, kPush).ok());
}

TEST(GithubSourceTest, RejectionsNeverContainTheSecretOrSignature) {
  auto source = Make(GithubConfig());
  const std::string signature = Signature(kPush);
  std::vector<FakeRequest> requests;
  requests.push_back(Delivery("{"));
  requests.push_back(Delivery(kPush, "push", "application/json", "not-the-secret"));
  requests.push_back(Delivery("payload=%zz", "push", "application/x-www-form-urlencoded"));
  requests.push_back(Delivery(kPush, ""));
  for (const FakeRequest& request : requests) {
    SourceDecision decision = source->Handle(request);
    ASSERT_EQ(decision.kind, SourceDecision::Kind::kRespond);
    for (const std::string& text : {decision.body, decision.error}) {
      EXPECT_EQ(text.find(kSecret), std::string::npos) << text;
      EXPECT_EQ(text.find(signature.substr(7, 16)), std::string::npos) << text;
      EXPECT_EQ(text.find(std::string(request.Header("X-Hub-Signature-256")).substr(7, 16)),
                std::string::npos)
          << text;
    }
  }
}

TEST(GithubSourceTest, ArbitrarySignedBytesNeverCrash) {
  auto source = Make(GithubConfig());
  std::mt19937 random(12345);
  for (int i = 0; i < 2000; ++i) {
    std::string body(random() % 64, '\0');
    for (char& c : body) c = static_cast<char>(random() % 256);
    if (i % 3 == 0) body = "payload=" + body;
    const bool form = i % 2 == 0;
    SourceDecision decision = source->Handle(
        Delivery(body, "push", form ? "application/x-www-form-urlencoded" : "application/json"));
    EXPECT_EQ(decision.kind, SourceDecision::Kind::kRespond);  // never a JSON object by chance
    EXPECT_EQ(decision.status, 400);
  }
}

TEST(GithubSourceTest, ConcurrentHandlingIsIndependent) {
  auto source = Make(GithubConfig());
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        const std::string delivery = std::to_string(t) + "-" + std::to_string(i);
        const std::string body = R"({"n":")" + delivery + "\"}";
        FakeRequest request = Delivery(body);
        request.SetHeader("X-GitHub-Delivery", delivery);
        SourceDecision decision = source->Handle(request);
        if (decision.kind != SourceDecision::Kind::kEnqueue || decision.payload_json != body ||
            decision.dedupe_keys != std::vector<std::string>{"github:" + delivery}) {
          ++wrong;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace firebreak
