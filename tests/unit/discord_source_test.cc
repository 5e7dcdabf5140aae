#include "ingress/discord_source.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/crypto.h"
#include "fake_request.h"
#include "ingress/source.h"

namespace firebreak {
namespace {

using firebreak::testing::FakeRequest;
using nlohmann::json;

// RFC 8032 §7.1 (https://www.rfc-editor.org/rfc/rfc8032#section-7.1), Ed25519 TEST 1
// (empty message) and TEST 2 (the one byte 0x72, "r").
constexpr char kRfcTest1Secret[] =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr char kRfcTest1Public[] =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr char kRfcTest1Signature[] =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
    "1cf9b46bd25bf5f0595bbe24655141438e7a100b";
constexpr char kRfcTest2Secret[] =
    "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
constexpr char kRfcTest2Public[] =
    "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
constexpr char kRfcTest2Signature[] =
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613"
    "d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";

// The application's key pair in most tests (TEST 2's), and an unrelated one.
constexpr char kPrivate[] = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
constexpr char kPublic[] = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
constexpr char kOtherPrivate[] = "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7";
constexpr int64_t kNow = 1'700'000'000;

std::string Unhex(std::string_view hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return bytes;
}

std::shared_ptr<EVP_PKEY> RawPublicKey(std::string_view hex) {
  std::string raw = Unhex(hex);
  return std::shared_ptr<EVP_PKEY>(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                  reinterpret_cast<const unsigned char*>(raw.data()), raw.size()),
      EVP_PKEY_free);
}

// Signs like Discord with OpenSSL directly, independently of DiscordSource::Sign.
std::string SignHex(std::string_view private_hex, std::string_view message) {
  std::string seed = Unhex(private_hex);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                   reinterpret_cast<const unsigned char*>(seed.data()),
                                   seed.size()),
      EVP_PKEY_free);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned char signature[64];
  size_t size = sizeof signature;
  if (key == nullptr || ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), signature, &size,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1) {
    ADD_FAILURE() << "OpenSSL signing failed";
    return "";
  }
  return HexEncode(std::string_view(reinterpret_cast<const char*>(signature), size));
}

SourceConfig DiscordConfig(std::string public_key = kPublic) {
  SourceConfig config;
  config.name = "discord";
  config.kind = SourceKind::kDiscord;
  config.path = "/hooks/discord";
  config.job = "discord.interaction";
  config.public_key = std::move(public_key);
  return config;
}

// An APPLICATION_COMMAND as Discord sends it (abridged).
const char kCommand[] =
    R"({"type":2,"id":"1234567890123456789","application_id":"775799577604522054",)"
    R"("token":"A_UNIQUE_TOKEN","version":1,"data":{"id":"771825006014889984","name":"blep",)"
    R"("type":1},"channel_id":"772908445358620702","guild_id":"290926798626357999"})";

class DiscordSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<Source>> made = DiscordSource::Create(DiscordConfig(), clock_);
    ASSERT_TRUE(made.ok()) << made.status().ToString();
    source_ = std::move(made).value();
  }

  static FakeRequest Signed(std::string body, int64_t timestamp = kNow,
                            std::string private_hex = kPrivate) {
    std::string ts = std::to_string(timestamp);
    FakeRequest request(body);
    request.SetHeader("Content-Type", "application/json")
        .SetHeader("X-Signature-Timestamp", ts)
        .SetHeader("X-Signature-Ed25519", SignHex(private_hex, ts + body));
    return request;
  }

  static void ExpectRejected(const SourceDecision& decision, int status, const std::string& error) {
    EXPECT_EQ(decision.kind, SourceDecision::Kind::kRespond);
    EXPECT_EQ(decision.status, status);
    EXPECT_EQ(decision.error, error);
    EXPECT_EQ(decision.body, R"({"ok":false,"error":")" + error + "\"}");
    EXPECT_TRUE(decision.dedupe_keys.empty());
    EXPECT_TRUE(decision.payload_json.empty());
  }

  FakeClock clock_{kNow * 1000 + 400};
  std::unique_ptr<Source> source_;
};

TEST(Ed25519Test, Rfc8032Test1VerifiesThroughTheVerifyPath) {
  std::shared_ptr<EVP_PKEY> key = RawPublicKey(kRfcTest1Public);
  ASSERT_NE(key, nullptr);
  const std::string signature = Unhex(kRfcTest1Signature);
  EXPECT_TRUE(VerifyEd25519(key.get(), "", signature));

  std::string flipped = signature;
  flipped[10] = static_cast<char>(flipped[10] ^ 0x01);
  EXPECT_FALSE(VerifyEd25519(key.get(), "", flipped));
  EXPECT_FALSE(VerifyEd25519(key.get(), "x", signature));
  EXPECT_FALSE(VerifyEd25519(key.get(), "", signature.substr(0, 63)));
  EXPECT_FALSE(VerifyEd25519(key.get(), "", signature + "x"));
  EXPECT_FALSE(VerifyEd25519(nullptr, "", signature));
  EXPECT_FALSE(VerifyEd25519(RawPublicKey(kRfcTest2Public).get(), "", signature));

  // The seed gives the documented public key, and OpenSSL's signature is the documented one.
  Result<std::string> derived = DiscordPublicKeyHexFromPrivate(kRfcTest1Secret);
  ASSERT_TRUE(derived.ok()) << derived.status().ToString();
  EXPECT_EQ(*derived, kRfcTest1Public);
  EXPECT_EQ(SignHex(kRfcTest1Secret, ""), kRfcTest1Signature);
}

TEST(Ed25519Test, Rfc8032Test2VerifiesThroughTheVerifyPath) {
  std::shared_ptr<EVP_PKEY> key = RawPublicKey(kRfcTest2Public);
  EXPECT_TRUE(VerifyEd25519(key.get(), "\x72", Unhex(kRfcTest2Signature)));
  EXPECT_FALSE(VerifyEd25519(key.get(), "\x73", Unhex(kRfcTest2Signature)));
  EXPECT_EQ(*DiscordPublicKeyHexFromPrivate(kRfcTest2Secret), kRfcTest2Public);
  EXPECT_EQ(SignHex(kRfcTest2Secret, "\x72"), kRfcTest2Signature);
}

TEST_F(DiscordSourceTest, Rfc8032Test2SignatureGetsPastVerificationInHandle) {
  // TEST 2's message "r" is timestamp "r" + an empty body: the documented signature passes
  // the signature check, and only then is "r" refused as a timestamp.
  FakeRequest request("");
  request.SetHeader("X-Signature-Timestamp", "r")
      .SetHeader("X-Signature-Ed25519", kRfcTest2Signature);
  ExpectRejected(source_->Handle(request), 401, "stale timestamp");
  // The same with one signature bit changed never gets that far.
  std::string changed = kRfcTest2Signature;
  changed[0] = '8';
  request.SetHeader("X-Signature-Ed25519", changed);
  ExpectRejected(source_->Handle(request), 401, "invalid signature");
}

TEST_F(DiscordSourceTest, CommandIsEnqueuedAndDeferred) {
  SourceDecision decision = source_->Handle(Signed(kCommand));
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.error;
  EXPECT_EQ(decision.status, 200);
  EXPECT_EQ(decision.body, R"({"type":5})");
  EXPECT_EQ(decision.content_type, "application/json");
  EXPECT_FALSE(decision.empty_body_on_success);
  EXPECT_EQ(decision.dedupe_keys, std::vector<std::string>{"discord:1234567890123456789"});
  EXPECT_EQ(decision.payload_json, kCommand);
  EXPECT_EQ(decision.headers_json, "{}");
  EXPECT_TRUE(decision.batch.empty());
}

TEST_F(DiscordSourceTest, ComponentsAndModalsAreDeferredByType) {
  // MESSAGE_COMPONENT (3): DEFERRED_UPDATE_MESSAGE; MODAL_SUBMIT (5): a deferred message.
  SourceDecision component = source_->Handle(
      Signed(R"({"type":3,"id":"42","data":{"custom_id":"approve","component_type":2}})"));
  ASSERT_EQ(component.kind, SourceDecision::Kind::kEnqueue) << component.error;
  EXPECT_EQ(component.body, R"({"type":6})");
  EXPECT_EQ(component.dedupe_keys, std::vector<std::string>{"discord:42"});
  SourceDecision modal = source_->Handle(Signed(R"({"type":5,"id":"43","data":{}})"));
  ASSERT_EQ(modal.kind, SourceDecision::Kind::kEnqueue) << modal.error;
  EXPECT_EQ(modal.body, R"({"type":5})");
}

TEST_F(DiscordSourceTest, PingIsAnsweredAndNotStored) {
  SourceDecision decision = source_->Handle(
      Signed(R"({"type":1,"id":"1","application_id":"775799577604522054","version":1})"));
  EXPECT_EQ(decision.kind, SourceDecision::Kind::kRespond);
  EXPECT_EQ(decision.status, 200);
  EXPECT_EQ(decision.body, R"({"type":1})");
  EXPECT_EQ(decision.content_type, "application/json");
  EXPECT_TRUE(decision.error.empty());
  EXPECT_TRUE(decision.dedupe_keys.empty());
  EXPECT_TRUE(decision.payload_json.empty());
  // A PING needs no id.
  EXPECT_EQ(source_->Handle(Signed(R"({"type":1})")).body, R"({"type":1})");
}

TEST_F(DiscordSourceTest, TamperedBodyIsRejected) {
  FakeRequest good = Signed(kCommand);
  std::string tampered(kCommand);
  tampered.replace(tampered.find("blep"), 4, "blop");
  FakeRequest request(tampered);
  request.SetHeader("X-Signature-Timestamp", std::string(good.Header("X-Signature-Timestamp")))
      .SetHeader("X-Signature-Ed25519", std::string(good.Header("X-Signature-Ed25519")));
  ExpectRejected(source_->Handle(request), 401, "invalid signature");
  EXPECT_EQ(source_->Handle(good).kind, SourceDecision::Kind::kEnqueue);
}

TEST_F(DiscordSourceTest, SignedTimestampCannotBeSwapped) {
  FakeRequest request = Signed(kCommand, kNow - 10);
  request.SetHeader("X-Signature-Timestamp", std::to_string(kNow));
  ExpectRejected(source_->Handle(request), 401, "invalid signature");
}

TEST_F(DiscordSourceTest, WrongKeyIsRejected) {
  ExpectRejected(source_->Handle(Signed(kCommand, kNow, kOtherPrivate)), 401, "invalid signature");
}

TEST_F(DiscordSourceTest, MissingHeadersAreRejected) {
  for (const char* header : {"X-Signature-Ed25519", "X-Signature-Timestamp"}) {
    FakeRequest missing = Signed(kCommand);
    missing.RemoveHeader(header);
    ExpectRejected(source_->Handle(missing), 401, "missing signature");
    FakeRequest empty = Signed(kCommand);
    empty.SetHeader(header, "");
    ExpectRejected(source_->Handle(empty), 401, "missing signature");
  }
  ExpectRejected(source_->Handle(FakeRequest(kCommand)), 401, "missing signature");
}

TEST_F(DiscordSourceTest, MalformedSignatureValuesAreRejected) {
  FakeRequest request = Signed(kCommand);
  const std::string signature(request.Header("X-Signature-Ed25519"));
  for (std::string bad :
       {signature.substr(1), signature + "0", signature + "00", signature.substr(0, 126),
        "z" + signature.substr(1), "0x" + signature.substr(2), std::string(128, '0'),
        std::string(" ") + signature.substr(1), std::string(100000, 'a')}) {
    request.SetHeader("X-Signature-Ed25519", bad);
    ExpectRejected(source_->Handle(request), 401, "invalid signature");
  }
  // Upper-case hex is the same signature.
  std::string upper = signature;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  request.SetHeader("X-Signature-Ed25519", upper);
  EXPECT_EQ(source_->Handle(request).kind, SourceDecision::Kind::kEnqueue);
}

TEST_F(DiscordSourceTest, StaleTimestampsAreRejectedBothWays) {
  ExpectRejected(source_->Handle(Signed(kCommand, kNow - 360)), 401, "stale timestamp");
  ExpectRejected(source_->Handle(Signed(kCommand, kNow + 360)), 401, "stale timestamp");
  ExpectRejected(source_->Handle(Signed(kCommand, kNow - 301)), 401, "stale timestamp");
  ExpectRejected(source_->Handle(Signed(kCommand, kNow + 301)), 401, "stale timestamp");
  EXPECT_EQ(source_->Handle(Signed(kCommand, kNow - 300)).kind, SourceDecision::Kind::kEnqueue);
  EXPECT_EQ(source_->Handle(Signed(kCommand, kNow + 300)).kind, SourceDecision::Kind::kEnqueue);

  // A captured request is refused once the clock has moved on.
  FakeRequest captured = Signed(kCommand);
  EXPECT_EQ(source_->Handle(captured).kind, SourceDecision::Kind::kEnqueue);
  clock_.Advance(std::chrono::minutes(4));
  EXPECT_EQ(source_->Handle(captured).kind, SourceDecision::Kind::kEnqueue);
  clock_.Advance(std::chrono::minutes(2));
  ExpectRejected(source_->Handle(captured), 401, "stale timestamp");
}

TEST_F(DiscordSourceTest, NonNumericTimestampsAreRejectedEvenWhenSigned) {
  for (std::string ts : {"abc", "-1700000000", "+1700000000", " 1700000000", "1700000000.5",
                         "1700000000000", "99999999999999999999999"}) {
    FakeRequest request(kCommand);
    request.SetHeader("X-Signature-Timestamp", ts)
        .SetHeader("X-Signature-Ed25519", SignHex(kPrivate, ts + kCommand));
    ExpectRejected(source_->Handle(request), 401, "stale timestamp");
  }
}

TEST_F(DiscordSourceTest, MalformedBodiesAreRejectedAfterVerification) {
  for (std::string body : {"", "{\"type\":", "[1,2]", "\"text\"", "{} trailing", "\xff\xfe"}) {
    ExpectRejected(source_->Handle(Signed(body)), 400, "invalid JSON body");
  }
  for (std::string body : {R"({"id":"1"})", R"({"type":"2","id":"1"})", R"({"type":2.5,"id":"1"})",
                           R"({"type":null,"id":"1"})"}) {
    ExpectRejected(source_->Handle(Signed(body)), 400, "missing interaction type");
  }
  for (std::string body : {R"({"type":2})", R"({"type":2,"id":""})", R"({"type":2,"id":12})",
                           R"({"type":2,"id":null})"}) {
    ExpectRejected(source_->Handle(Signed(body)), 400, "missing interaction id");
  }
}

TEST_F(DiscordSourceTest, OnlyPostIsAccepted) {
  for (const char* method : {"GET", "PUT", "HEAD"}) {
    FakeRequest request = Signed(kCommand);
    FakeRequest other(kCommand, method);
    other.SetHeader("X-Signature-Timestamp", std::string(request.Header("X-Signature-Timestamp")))
        .SetHeader("X-Signature-Ed25519", std::string(request.Header("X-Signature-Ed25519")));
    ExpectRejected(source_->Handle(other), 405, "method not allowed");
  }
}

TEST_F(DiscordSourceTest, ErrorsNeverCarryTheSignature) {
  FakeRequest forged = Signed(kCommand, kNow, kOtherPrivate);
  const std::string signature(forged.Header("X-Signature-Ed25519"));
  for (const SourceDecision& decision :
       {source_->Handle(forged), source_->Handle(Signed(kCommand, kNow - 1000)),
        source_->Handle(Signed("{"))}) {
    EXPECT_EQ(decision.kind, SourceDecision::Kind::kRespond);
    EXPECT_EQ(decision.body.find(signature.substr(0, 16)), std::string::npos);
    EXPECT_EQ(decision.error.find(signature.substr(0, 16)), std::string::npos);
  }
}

TEST_F(DiscordSourceTest, SignProducesWhatHandleAccepts) {
  Result<SignedRequest> signed_request =
      DiscordSource::Sign(DiscordConfig(), kPrivate, kCommand, kNow);
  ASSERT_TRUE(signed_request.ok()) << signed_request.status().ToString();
  EXPECT_EQ(signed_request->content_type, "application/json");
  const std::string ts = std::to_string(kNow);
  // Ed25519 is deterministic: the same signature as OpenSSL used directly.
  EXPECT_EQ(signed_request->headers, (std::vector<std::pair<std::string, std::string>>{
                                         {"X-Signature-Ed25519", SignHex(kPrivate, ts + kCommand)},
                                         {"X-Signature-Timestamp", ts}}));
  FakeRequest request(kCommand);
  request.SetHeader("Content-Type", signed_request->content_type);
  for (const auto& [name, value] : signed_request->headers) request.SetHeader(name, value);
  EXPECT_EQ(source_->Handle(request).kind, SourceDecision::Kind::kEnqueue);

  // libsodium's 64-byte form (seed + public key) signs the same.
  Result<SignedRequest> long_form =
      DiscordSource::Sign(DiscordConfig(), std::string(kPrivate) + kPublic, kCommand, kNow);
  ASSERT_TRUE(long_form.ok()) << long_form.status().ToString();
  EXPECT_EQ(long_form->headers, signed_request->headers);
  // Upper-case configured key still matches.
  std::string upper_public = kPublic;
  for (char& c : upper_public) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(DiscordSource::Sign(DiscordConfig(upper_public), kPrivate, kCommand, kNow).ok());
}

TEST(DiscordSignTest, MalformedOrMismatchedPrivateKeysAreRefused) {
  const std::string secret_marker = std::string(kOtherPrivate).substr(0, 20);
  // A key that does not belong to public_key would only produce refused requests.
  Result<SignedRequest> mismatched =
      DiscordSource::Sign(DiscordConfig(), kOtherPrivate, "{}", kNow);
  ASSERT_FALSE(mismatched.ok());
  EXPECT_EQ(mismatched.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(mismatched.status().message().find("\"discord\""), std::string::npos);
  EXPECT_EQ(mismatched.status().message().find(secret_marker), std::string::npos);
  // Without a configured public key any well-formed key signs.
  EXPECT_TRUE(DiscordSource::Sign(DiscordConfig(""), kOtherPrivate, "{}", kNow).ok());

  for (std::string bad :
       {std::string(), std::string(kOtherPrivate).substr(1), std::string(kOtherPrivate) + "0",
        "zz" + std::string(kOtherPrivate).substr(2),
        std::string(kOtherPrivate) + std::string(kPublic) /* wrong half */}) {
    Result<SignedRequest> result = DiscordSource::Sign(DiscordConfig(""), bad, "{}", kNow);
    ASSERT_FALSE(result.ok()) << bad.size();
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(result.status().message().find(secret_marker), std::string::npos);
    EXPECT_FALSE(DiscordPublicKeyHexFromPrivate(bad).ok());
  }
}

TEST(DiscordConfigTest, BadPublicKeysAreRefused) {
  FakeClock clock;
  const std::string identity = "01" + std::string(62, '0');                // order 1
  const std::string zero = std::string(64, '0');                           // y = 0: order 4
  const std::string minus_one = "ec" + std::string(60, 'f') + "7f";        // y = p - 1: order 2
  const std::string not_canonical = std::string(64, 'f');                  // y = 2^255 - 1 >= p
  const std::string not_on_curve = "02" + std::string(62, '0');            // y = 2 has no x
  const std::string identity_plus_p = "ee" + std::string(60, 'f') + "7f";  // y = p + 1
  // The two order-8 points (with the sign bit clear) of libsodium's small-order blocklist.
  const std::string order8_a = "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05";
  const std::string order8_b = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a";
  for (std::string bad :
       {std::string(), std::string(kPublic).substr(2), std::string(kPublic) + "00",
        "zz" + std::string(kPublic).substr(2), std::string(kPublic) + " ", identity, zero,
        minus_one, not_canonical, not_on_curve, identity_plus_p, order8_a, order8_b}) {
    Result<std::unique_ptr<Source>> made = DiscordSource::Create(DiscordConfig(bad), clock);
    ASSERT_FALSE(made.ok()) << bad;
    EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(made.status().message().rfind("source \"discord\": public_key", 0), 0u)
        << made.status().message();
  }
}

TEST(DiscordConfigTest, EveryGenuineKeyIsAccepted) {
  FakeClock clock;
  // y = 3 is on the curve and of large order; upper-case hex is fine.
  EXPECT_TRUE(DiscordSource::Create(DiscordConfig("03" + std::string(62, '0')), clock).ok());
  EXPECT_TRUE(DiscordSource::Create(DiscordConfig(kRfcTest1Public), clock).ok());
  std::string upper = kRfcTest1Public;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(DiscordSource::Create(DiscordConfig(upper), clock).ok());
  // Keys from random seeds, as the developer portal makes them, all pass the point check.
  for (int i = 0; i < 200; ++i) {
    unsigned char seed[32];
    RandomBytes(seed, sizeof seed);
    Result<std::string> public_hex = DiscordPublicKeyHexFromPrivate(
        HexEncode(std::string_view(reinterpret_cast<const char*>(seed), sizeof seed)));
    ASSERT_TRUE(public_hex.ok());
    Result<std::unique_ptr<Source>> made = DiscordSource::Create(DiscordConfig(*public_hex), clock);
    ASSERT_TRUE(made.ok()) << *public_hex << ": " << made.status().ToString();
  }
}

TEST_F(DiscordSourceTest, ConcurrentRequestsAreIndependent) {
  // Sign up front: each Handle call below verifies on its own EVP_MD_CTX.
  std::vector<std::vector<FakeRequest>> requests(4);
  for (int t = 0; t < 4; ++t) {
    for (int i = 0; i < 150; ++i) {
      std::string id = std::to_string(t * 1000 + i);
      std::string body = R"({"type":2,"id":")" + id + "\"}";
      // Every third request is forged and must be refused.
      requests[t].push_back(Signed(body, kNow, i % 3 == 0 ? kOtherPrivate : kPrivate));
    }
  }
  std::vector<int> failures(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t, &requests, &failures] {
      for (int i = 0; i < 150; ++i) {
        SourceDecision decision = source_->Handle(requests[t][i]);
        const bool ok =
            i % 3 == 0 ? decision.status == 401 && decision.error == "invalid signature"
                       : decision.dedupe_keys ==
                             std::vector<std::string>{"discord:" + std::to_string(t * 1000 + i)};
        if (!ok) ++failures[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace firebreak
