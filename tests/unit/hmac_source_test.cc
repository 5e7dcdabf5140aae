#include "ingress/hmac_key.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/crypto.h"
#include "ingress/source.h"
#include "fake_request.h"

namespace firebreak {
namespace {

using nlohmann::json;

using firebreak::testing::FakeRequest;

constexpr char kSecret[] = "generic-webhook-secret";

SourceConfig HmacConfig(std::string algorithm = "sha256", std::string dedupe = "") {
  SourceConfig config;
  config.name = "orders";
  config.kind = SourceKind::kHmac;
  config.path = "/hooks/orders";
  config.job = "orders.created";
  config.secret = Secret{Secret::Kind::kEnv, "ORDERS_SECRET", "test:1:1", kSecret};
  config.scheme.header = "X-Signature";
  config.scheme.prefix = "sha256=";
  config.scheme.algorithm = std::move(algorithm);
  if (!dedupe.empty()) config.dedupe = {std::move(dedupe)};
  return config;
}

std::unique_ptr<Source> Make(const SourceConfig& config) {
  static FakeClock clock;  // a source keeps a reference to its clock
  Result<std::unique_ptr<Source>> made = MakeSource(config, clock);
  EXPECT_TRUE(made.ok()) << made.status().ToString();
  return made.ok() ? std::move(made).value() : nullptr;
}

// Signed independently of the code under test (crypto.h's one-shot HMAC).
FakeRequest Signed(const SourceConfig& config, std::string body,
                   std::string content_type = "application/json", std::string secret = kSecret) {
  FakeRequest request(body);
  request.SetHeader("Content-Type", content_type)
      .SetHeader(config.scheme.header,
                 config.scheme.prefix + HmacHex(*ParseHmacAlgorithm(config.scheme.algorithm), secret, body));
  return request;
}

void ExpectRejected(const SourceDecision& decision, int status, const std::string& error) {
  EXPECT_EQ(decision.kind, SourceDecision::Kind::kRespond);
  EXPECT_EQ(decision.status, status);
  EXPECT_EQ(decision.error, error);
  EXPECT_EQ(json::parse(decision.body), json({{"ok", false}, {"error", error}}));
  EXPECT_TRUE(decision.dedupe_keys.empty());
}

const char kOrder[] = R"({"id":"ord_123","number":42,"total":9.5,"customer":{"id":7}})";

TEST(HmacSourceTest, ValidJsonIsEnqueuedWithBodyHashKey) {
  SourceConfig config = HmacConfig();
  auto source = Make(config);
  SourceDecision decision = source->Handle(Signed(config, kOrder));
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
  EXPECT_EQ(decision.status, 200);
  EXPECT_EQ(decision.body, "");
  EXPECT_FALSE(decision.empty_body_on_success);
  EXPECT_EQ(decision.payload_json, kOrder);
  EXPECT_EQ(decision.headers_json, "{}");
  EXPECT_EQ(decision.dedupe_keys, std::vector<std::string>{"orders:sha256:" + Sha256Hex(kOrder)});
}

TEST(HmacSourceTest, AnyNonFormContentTypeIsJson) {
  SourceConfig config = HmacConfig();
  auto source = Make(config);
  EXPECT_EQ(source->Handle(Signed(config, kOrder, "text/plain")).kind,
            SourceDecision::Kind::kEnqueue);
  EXPECT_EQ(source->Handle(Signed(config, "[1,2,3]", "")).kind, SourceDecision::Kind::kEnqueue);
}

TEST(HmacSourceTest, HexCaseDoesNotMatter) {
  SourceConfig config = HmacConfig();
  auto source = Make(config);
  FakeRequest request = Signed(config, kOrder);
  std::string upper(request.Header("X-Signature"));
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  request.SetHeader("X-Signature", upper);  // "SHA256=ABC..."
  EXPECT_EQ(source->Handle(request).kind, SourceDecision::Kind::kEnqueue);
}

TEST(HmacSourceTest, TamperedBodyIsRejected) {
  SourceConfig config = HmacConfig();
  auto source = Make(config);
  FakeRequest good = Signed(config, kOrder);
  std::string tampered(kOrder);
  tampered.replace(tampered.find("42"), 2, "43");
  FakeRequest request(tampered);
  request.SetHeader("Content-Type", "application/json")
      .SetHeader("X-Signature", std::string(good.Header("X-Signature")));
  ExpectRejected(source->Handle(request), 401, "invalid signature");
}

TEST(HmacSourceTest, WrongSecretIsRejected) {
  SourceConfig config = HmacConfig();
  auto source = Make(config);
  ExpectRejected(source->Handle(Signed(config, kOrder, "application/json", "not-the-secret")), 401,
                 "invalid signature");
}

TEST(HmacSourceTest, MissingOrMalformedHeaderIsRejected) {
  SourceConfig config = HmacConfig();
  auto source = Make(config);
  FakeRequest unsigned_request(kOrder);
  unsigned_request.SetHeader("Content-Type", "application/json");
  ExpectRejected(source->Handle(unsigned_request), 401, "missing signature");

  FakeRequest request = Signed(config, kOrder);
  std::string signature(request.Header("X-Signature"));
  std::string hex = signature.substr(7);
  for (std::string bad :
       {hex, "sha1=" + hex, signature + "00", signature.substr(0, 20), std::string("sha256=")}) {
    request.SetHeader("X-Signature", bad);
    ExpectRejected(source->Handle(request), 401, "invalid signature");
  }
}

TEST(HmacSourceTest, ConfiguredHeaderWithoutPrefix) {
  SourceConfig config = HmacConfig();
  config.scheme.header = "X-Hook-Hmac";
  config.scheme.prefix = "";
  auto source = Make(config);
  FakeRequest request = Signed(config, kOrder);
  EXPECT_EQ(request.Header("x-hook-hmac").size(), 64u);
  EXPECT_EQ(source->Handle(request).kind, SourceDecision::Kind::kEnqueue);
  // The default header is not consulted.
  FakeRequest wrong_header(kOrder);
  wrong_header.SetHeader("X-Signature", std::string(request.Header("X-Hook-Hmac")));
  ExpectRejected(source->Handle(wrong_header), 401, "missing signature");
}

TEST(HmacSourceTest, Sha1AndSha512) {
  for (std::string algorithm : {"sha1", "sha512"}) {
    SourceConfig config = HmacConfig(algorithm);
    config.scheme.prefix = algorithm + "=";
    auto source = Make(config);
    FakeRequest request = Signed(config, kOrder);
    EXPECT_EQ(request.Header("X-Signature").size(),
              config.scheme.prefix.size() + (algorithm == "sha1" ? 40u : 128u));
    EXPECT_EQ(source->Handle(request).kind, SourceDecision::Kind::kEnqueue) << algorithm;

    // A SHA-256 signature does not pass as the configured algorithm.
    FakeRequest sha256(kOrder);
    sha256.SetHeader("X-Signature",
                     config.scheme.prefix + HmacHex(HmacAlgorithm::kSha256, kSecret, kOrder));
    ExpectRejected(source->Handle(sha256), 401, "invalid signature");
  }
}

TEST(HmacSourceTest, KnownHmacVectors) {
  // RFC 4231 test case 2 (key "Jefe").
  const std::string data = "what do ya want for nothing?";
  Result<HmacKey> sha256 = HmacKey::Create(HmacAlgorithm::kSha256, "Jefe");
  ASSERT_TRUE(sha256.ok());
  EXPECT_EQ(sha256->Hex({data}),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(sha256->Hex({"what do ", "", "ya want for nothing?"}), sha256->Hex({data}));
  EXPECT_EQ(sha256->hex_size(), 64u);
  Result<HmacKey> sha512 = HmacKey::Create(HmacAlgorithm::kSha512, "Jefe");
  ASSERT_TRUE(sha512.ok());
  EXPECT_EQ(sha512->Hex({data}),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
            "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737");
  Result<HmacKey> sha1 = HmacKey::Create(HmacAlgorithm::kSha1, "Jefe");  // RFC 2202 case 2
  ASSERT_TRUE(sha1.ok());
  EXPECT_EQ(sha1->Hex({data}), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
  EXPECT_FALSE(HmacKey::Create(HmacAlgorithm::kSha256, "").ok());
}

TEST(HmacSourceTest, DedupePointerString) {
  SourceConfig config = HmacConfig("sha256", "/id");
  auto source = Make(config);
  SourceDecision decision = source->Handle(Signed(config, kOrder));
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
  EXPECT_EQ(decision.dedupe_keys, std::vector<std::string>{"orders:ord_123"});
}

TEST(HmacSourceTest, DedupePointerIntegerAndNested) {
  SourceConfig config = HmacConfig("sha256", "/number");
  auto source = Make(config);
  EXPECT_EQ(source->Handle(Signed(config, kOrder)).dedupe_keys,
            std::vector<std::string>{"orders:42"});
  SourceConfig nested = HmacConfig("sha256", "/customer/id");
  EXPECT_EQ(Make(nested)->Handle(Signed(nested, kOrder)).dedupe_keys,
            std::vector<std::string>{"orders:7"});
}

TEST(HmacSourceTest, DedupePointerMissingOrUnusable) {
  SourceConfig config = HmacConfig("sha256", "/event/id");
  auto source = Make(config);
  ExpectRejected(source->Handle(Signed(config, kOrder)), 400, "dedupe key /event/id missing");
  ExpectRejected(source->Handle(Signed(config, R"({"event":{"id":""}})")), 400,
                 "dedupe key /event/id missing");
  ExpectRejected(source->Handle(Signed(config, R"({"event":{"id":1.5}})")), 400,
                 "dedupe key /event/id is not a string or integer");
  ExpectRejected(source->Handle(Signed(config, R"({"event":{"id":null}})")), 400,
                 "dedupe key /event/id is not a string or integer");
}

TEST(HmacSourceTest, FormBodyBecomesAnObject) {
  SourceConfig config = HmacConfig("sha256", "/order");
  auto source = Make(config);
  std::string body = "order=A%2F17&note=two+words&payload=%7B%7D";
  SourceDecision decision =
      source->Handle(Signed(config, body, "application/x-www-form-urlencoded"));
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
  // A generic form's `payload` field is just a string (only Slack's is JSON).
  EXPECT_EQ(json::parse(decision.payload_json),
            json({{"order", "A/17"}, {"note", "two words"}, {"payload", "{}"}}));
  EXPECT_EQ(decision.dedupe_keys, std::vector<std::string>{"orders:A/17"});

  ExpectRejected(source->Handle(Signed(config, "note=x", "application/x-www-form-urlencoded")), 400,
                 "dedupe key /order missing");
  ExpectRejected(source->Handle(Signed(config, "order=%zz", "application/x-www-form-urlencoded")),
                 400, "malformed form body");

  SourceConfig hashed = HmacConfig();
  SourceDecision by_hash =
      Make(hashed)->Handle(Signed(hashed, body, "application/x-www-form-urlencoded"));
  EXPECT_EQ(by_hash.dedupe_keys, std::vector<std::string>{"orders:sha256:" + Sha256Hex(body)});
}

TEST(HmacSourceTest, MalformedJsonIsRejected) {
  SourceConfig config = HmacConfig();
  auto source = Make(config);
  for (std::string body : {"", "{", "{\"a\":}", "not json", "{}{}"}) {
    ExpectRejected(source->Handle(Signed(config, body)), 400, "malformed JSON");
  }
}

TEST(HmacSourceTest, OnlyPost) {
  SourceConfig config = HmacConfig();
  auto source = Make(config);
  FakeRequest get(kOrder, "GET");
  ExpectRejected(source->Handle(get), 405, "method not allowed");
}

TEST(HmacSourceTest, SignRequestRoundTrips) {
  for (std::string algorithm : {"sha1", "sha256", "sha512"}) {
    SourceConfig config = HmacConfig(algorithm, "/id");
    config.scheme.header = "X-Custom-Sig";
    config.scheme.prefix = algorithm + "=";
    Result<SignedRequest> signed_request = SignRequest(config, kOrder, 0);
    ASSERT_TRUE(signed_request.ok()) << signed_request.status().ToString();
    EXPECT_EQ(signed_request->content_type, "application/json");
    ASSERT_EQ(signed_request->headers.size(), 1u);
    EXPECT_EQ(signed_request->headers[0].first, "X-Custom-Sig");
    EXPECT_EQ(signed_request->headers[0].second,
              config.scheme.prefix + HmacHex(*ParseHmacAlgorithm(algorithm), kSecret, kOrder));

    FakeRequest request(kOrder);
    request.SetHeader("Content-Type", signed_request->content_type);
    for (const auto& [name, value] : signed_request->headers) request.SetHeader(name, value);
    SourceDecision decision = Make(config)->Handle(request);
    ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
    EXPECT_EQ(decision.dedupe_keys, std::vector<std::string>{"orders:ord_123"});
  }
}

TEST(HmacSourceTest, InvalidConfigIsRejected) {
  FakeClock clock;
  SourceConfig bad_algorithm = HmacConfig("md5");
  Result<std::unique_ptr<Source>> made = MakeSource(bad_algorithm, clock);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(SignRequest(bad_algorithm, "{}", 0).ok());

  EXPECT_FALSE(MakeSource(HmacConfig("sha256", "id"), clock).ok());
  EXPECT_FALSE(MakeSource(HmacConfig("sha256", "/a~2"), clock).ok());

  SourceConfig no_secret = HmacConfig();
  no_secret.secret->value.clear();
  made = MakeSource(no_secret, clock);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().message().find(kSecret), std::string::npos);
  no_secret.secret.reset();
  EXPECT_FALSE(MakeSource(no_secret, clock).ok());

  SourceConfig no_header = HmacConfig();
  no_header.scheme.header.clear();
  EXPECT_FALSE(MakeSource(no_header, clock).ok());
}

TEST(SignatureMatchesTest, ComparesPrefixAndHex) {
  const std::string hex = "0123456789abcdef";
  EXPECT_TRUE(SignatureMatches("v0=" + hex, "v0=", hex));
  EXPECT_TRUE(SignatureMatches("V0=0123456789ABCDEF", "v0=", hex));
  EXPECT_FALSE(SignatureMatches("v1=" + hex, "v0=", hex));
  EXPECT_FALSE(SignatureMatches("v0=" + hex.substr(1) + "0", "v0=", hex));
  EXPECT_FALSE(SignatureMatches("v0=", "v0=", ""));  // a failed HMAC never matches
  EXPECT_FALSE(SignatureMatches("", "", ""));
}

}  // namespace
}  // namespace firebreak
