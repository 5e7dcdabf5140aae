#include "ingress/meta_source.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <nlohmann/json.hpp>
#include <string>

#include "common/clock.h"
#include "fake_request.h"

namespace firebreak {
namespace {

using firebreak::testing::FakeRequest;
using nlohmann::json;

constexpr char kAppSecret[] = "meta-app-secret";
constexpr char kVerifyToken[] = "meta-verify-token";

SourceConfig MetaConfig() {
  SourceConfig config;
  config.name = "wa";
  config.kind = SourceKind::kMeta;
  config.path = "/hooks/meta";
  config.job = "wa.message";
  config.secret = Secret{Secret::Kind::kEnv, "META_APP_SECRET", "test:1:1", kAppSecret};
  config.verify_token = Secret{Secret::Kind::kEnv, "META_VERIFY", "test:1:1", kVerifyToken};
  return config;
}

// Signed here with OpenSSL directly, as Meta does: "sha256=" + hex HMAC-SHA256 of the
// raw payload with the app secret (developers.facebook.com/docs/graph-api/webhooks/
// getting-started, "Validate Payloads").
std::string MetaSignature(const std::string& secret, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out = "sha256=";
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 15];
  }
  return out;
}

std::unique_ptr<Source> Make() {
  FakeClock clock;
  Result<std::unique_ptr<Source>> made = MakeSource(MetaConfig(), clock);
  EXPECT_TRUE(made.ok()) << made.status().ToString();
  return made.ok() ? std::move(made).value() : nullptr;
}

SourceDecision Post(const Source& source, const std::string& body,
                    const std::string& secret = kAppSecret) {
  FakeRequest request(body);
  request.SetHeader("Content-Type", "application/json");
  request.SetHeader("X-Hub-Signature-256", MetaSignature(secret, body));
  return source.Handle(request);
}

// A WhatsApp Cloud API delivery in the shape of Meta's documented example: two
// messages and one status in one change.
const std::string kWhatsAppBatch =
    R"({"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","type":"text","text":{"body":"Does it come in another color?"}},{"from":"16505551234","id":"wamid.second","timestamp":"1749416384","type":"text","text":{"body":"And in blue?"}}],"statuses":[{"id":"wamid.sent1","status":"delivered","timestamp":"1749416385","recipient_id":"16505551234"}]},"field":"messages"}]}]})";

TEST(MetaSourceTest, HandshakeEchoesTheChallengeOnlyForTheRightToken) {
  auto source = Make();
  ASSERT_NE(source, nullptr);
  FakeRequest ok("", "GET",
                 "/hooks/meta?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=" +
                     std::string(kVerifyToken));
  SourceDecision decision = source->Handle(ok);
  EXPECT_EQ(decision.kind, SourceDecision::Kind::kRespond);
  EXPECT_EQ(decision.status, 200);
  EXPECT_EQ(decision.body, "1158201444");
  EXPECT_EQ(decision.content_type, "text/plain");

  FakeRequest wrong("", "GET",
                    "/hooks/meta?hub.mode=subscribe&hub.challenge=1&hub.verify_token=nope");
  EXPECT_EQ(source->Handle(wrong).status, 403);
  FakeRequest missing("", "GET", "/hooks/meta?hub.mode=subscribe");
  EXPECT_EQ(source->Handle(missing).status, 400);
  FakeRequest escaped("", "GET",
                      "/hooks/meta?hub.mode=subscribe&hub.challenge=a%20b&hub.verify_token=" +
                          std::string(kVerifyToken));
  EXPECT_EQ(source->Handle(escaped).body, "a b");
}

TEST(MetaSourceTest, BatchBecomesOneJobPerMessageAndStatus) {
  auto source = Make();
  ASSERT_NE(source, nullptr);
  SourceDecision decision = Post(*source, kWhatsAppBatch);
  ASSERT_EQ(decision.kind, SourceDecision::Kind::kEnqueue) << decision.body;
  ASSERT_EQ(decision.batch.size(), 3u);
  EXPECT_EQ(decision.batch[0].dedupe_keys,
            std::vector<std::string>{
                "wa:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="});
  EXPECT_EQ(decision.batch[1].dedupe_keys, std::vector<std::string>{"wa:wamid.second"});
  EXPECT_EQ(decision.batch[2].dedupe_keys, std::vector<std::string>{"wa:wamid.sent1:delivered"});
  json first = json::parse(decision.batch[0].payload_json);
  EXPECT_EQ(first["object"], "whatsapp_business_account");
  EXPECT_EQ(first["entry_id"], "102290129340398");
  EXPECT_EQ(first["field"], "messages");
  EXPECT_EQ(first["metadata"]["phone_number_id"], "106540352242922");
  EXPECT_EQ(first["contacts"][0]["wa_id"], "16505551234");
  EXPECT_EQ(first["message"]["text"]["body"], "Does it come in another color?");
  EXPECT_FALSE(first.contains("status"));
  json status = json::parse(decision.batch[2].payload_json);
  EXPECT_EQ(status["status"]["status"], "delivered");
}

TEST(MetaSourceTest, MessengerEventsAreKeyedByMidAndOtherChangesByHash) {
  auto source = Make();
  ASSERT_NE(source, nullptr);
  const std::string body =
      R"({"object":"page","entry":[{"id":"1","time":1,"messaging":[)"
      R"({"sender":{"id":"9"},"message":{"mid":"m_1","text":"hi"}},)"
      R"({"sender":{"id":"9"},"postback":{"mid":"m_2","payload":"GO"}},)"
      R"({"sender":{"id":"9"},"read":{"watermark":5}}]},)"
      R"({"id":"2","time":2,"changes":[{"field":"feed","value":{"item":"post"}}]}]})";
  SourceDecision decision = Post(*source, body);
  ASSERT_EQ(decision.batch.size(), 4u);
  EXPECT_EQ(decision.batch[0].dedupe_keys[0], "wa:message:m_1");
  EXPECT_EQ(decision.batch[1].dedupe_keys[0], "wa:postback:m_2");
  EXPECT_EQ(decision.batch[2].dedupe_keys[0].rfind("wa:sha256:", 0), 0u);
  EXPECT_EQ(decision.batch[3].dedupe_keys[0].rfind("wa:sha256:", 0), 0u);
  EXPECT_EQ(json::parse(decision.batch[3].payload_json)["change"]["value"]["item"], "post");
  // The same delivery again gives the same keys (Meta retries whole batches).
  SourceDecision again = Post(*source, body);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(again.batch[i].dedupe_keys, decision.batch[i].dedupe_keys);
  }
}

TEST(MetaSourceTest, RefusesForgeriesAndMalformedBodies) {
  auto source = Make();
  ASSERT_NE(source, nullptr);
  EXPECT_EQ(Post(*source, kWhatsAppBatch, "wrong-secret").status, 401);
  std::string tampered = kWhatsAppBatch;
  FakeRequest request(tampered.replace(tampered.find("color"), 5, "COLOR"));
  request.SetHeader("X-Hub-Signature-256", MetaSignature(kAppSecret, kWhatsAppBatch));
  EXPECT_EQ(source->Handle(request).status, 401);
  FakeRequest unsigned_request(kWhatsAppBatch);
  SourceDecision missing = source->Handle(unsigned_request);
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.error, "missing signature");
  EXPECT_EQ(Post(*source, "{not json").status, 400);
  EXPECT_EQ(Post(*source, R"({"entry":[]})").status, 400);
  SourceDecision empty = Post(*source, R"({"object":"page","entry":[{"id":"1"}]})");
  EXPECT_EQ(empty.kind, SourceDecision::Kind::kRespond);
  EXPECT_EQ(empty.status, 200);
  FakeRequest put(kWhatsAppBatch, "PUT");
  EXPECT_EQ(source->Handle(put).status, 405);
}

TEST(MetaSourceTest, CreateNeedsSecretAndVerifyToken) {
  FakeClock clock;
  SourceConfig config = MetaConfig();
  config.verify_token.reset();
  EXPECT_FALSE(MakeSource(config, clock).ok());
  config = MetaConfig();
  config.secret->value.clear();
  EXPECT_FALSE(MakeSource(config, clock).ok());
}

}  // namespace
}  // namespace firebreak
