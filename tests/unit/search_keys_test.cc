// Search keys (ingress/search_keys.h): the bounds of one job's keys, and the keys each
// source kind takes from realistic deliveries (the platforms' documented examples), with
// a source's configured search_keys pointers on top (or, for a preset, instead of its
// defaults).
#include "ingress/search_keys.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "config/config.h"
#include "fake_request.h"
#include "ingress/form.h"
#include "ingress/json_body.h"
#include "ingress/source.h"

namespace firebreak {
namespace {

using firebreak::testing::FakeRequest;
using Keys = std::vector<std::string>;

constexpr int64_t kNow = 1'700'000'000;
constexpr char kSecret[] = "8f742231b10e8888abcd99yyyzzz85a5";
// RFC 8032 §7.1 TEST 2's key pair: the signing key for `firebreak send` and its public key.
constexpr char kDiscordSeed[] = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
constexpr char kDiscordPublic[] =
    "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

// One source of `kind` as a config file declares it (so a preset's defaults are filled in
// as `firebreak run` fills them), `extra` lines added; secrets resolved.
SourceConfig SourceOf(const std::string& kind, const std::string& extra = "") {
  std::string text = "[[sources]]\nname = \"s\"\nkind = \"" + kind +
                     "\"\npath = \"/hooks/s\"\njob = \"t\"\n" + extra;
  if (kind == "discord") {
    text +=
        "public_key = \"" + std::string(kDiscordPublic) + "\"\nsigning_key = { env = \"SEED\" }\n";
  } else {
    text += "secret = { env = \"S\" }\n";
  }
  if (kind == "meta") text += "verify_token = { env = \"V\" }\n";
  if (kind == "twilio") text += "public_url = \"https://bot.example.com\"\n";
  text += "[[jobs]]\ntype = \"t\"\nhandler = { url = \"http://127.0.0.1:9000/jobs\" }\n";
  Result<Config> parsed = ParseConfig(text, "search_keys_test.toml");
  EXPECT_TRUE(parsed.ok()) << parsed.status().message();
  if (!parsed.ok()) return {};
  SourceConfig source = parsed->sources.at(0);
  if (source.secret) source.secret->value = kSecret;
  if (source.verify_token) source.verify_token->value = "verify";
  if (source.signing_key) source.signing_key->value = kDiscordSeed;
  return source;
}

// `body` delivered to a source of `config`, signed as its platform signs it (the kind's
// own signer), with `headers` set on top.
SourceDecision Deliver(const SourceConfig& config, const std::string& body,
                       const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  FakeClock clock(kNow * 1000);
  Result<std::unique_ptr<Source>> source = MakeSource(config, clock);
  EXPECT_TRUE(source.ok()) << source.status().ToString();
  if (!source.ok()) return {};
  Result<SignedRequest> signed_request =
      SignRequest(config, body, kNow, "https://bot.example.com" + config.path);
  EXPECT_TRUE(signed_request.ok()) << signed_request.status().ToString();
  if (!signed_request.ok()) return {};
  FakeRequest request(signed_request->body.value_or(body), "POST",
                      signed_request->url.empty() ? config.path : signed_request->url.substr(23));
  request.SetHeader("Content-Type", signed_request->content_type);
  for (const auto& [name, value] : signed_request->headers) request.SetHeader(name, value);
  for (const auto& [name, value] : headers) request.SetHeader(name, value);
  SourceDecision decision = (*source)->Handle(request);
  EXPECT_EQ(decision.kind, SourceDecision::Kind::kEnqueue)
      << decision.status << " " << decision.error;
  return decision;
}

TEST(SearchKeysTest, ValuesAreBoundedDedupedAndCapped) {
  SearchKeys keys;
  keys.Add("a", "1");
  keys.Add("a", "1");                                               // a duplicate
  keys.Add("a", "");                                                // nothing to find
  keys.Add("a", std::string(SearchKeys::kMaxValueBytes + 1, 'x'));  // not an id
  keys.Add("b", std::string(SearchKeys::kMaxValueBytes, 'y'));
  keys.Add("a:", "1");  // another name, though "a::1" reads alike
  ASSERT_EQ(keys.keys().size(), 3u);
  EXPECT_EQ(keys.keys()[0], "a:1");
  EXPECT_EQ(keys.keys()[1], "b:" + std::string(SearchKeys::kMaxValueBytes, 'y'));
  EXPECT_EQ(keys.keys()[2], "a::1");
  for (int i = 0; i < 40; ++i) keys.Add("n", std::to_string(i));
  EXPECT_EQ(keys.keys().size(), SearchKeys::kMaxKeys);
  EXPECT_EQ(keys.keys().back(), "n:" + std::to_string(SearchKeys::kMaxKeys - 4));
}

TEST(SearchKeysTest, OnlyStringsAndIntegersAreKeysAndIntegersStayExact) {
  Result<JsonBody> document = ParseJsonBody(
      R"({"s":"cus_123","neg":-1001234567890,"big":-9007199254740993,"max":18446744073709551615,)"
      R"("min":-9223372036854775808,"f":1.5,"t":true,"n":null,"o":{"id":"x"},"a":["y"]})");
  ASSERT_TRUE(document.ok());
  SearchKeys keys;
  for (const char* field : {"s", "neg", "big", "max", "min", "f", "t", "n", "o", "a", "missing"}) {
    keys.AddAt(field, document->root(), std::string("/") + field);
  }
  EXPECT_EQ(keys.Take(), (Keys{"s:cus_123", "neg:-1001234567890", "big:-9007199254740993",
                               "max:18446744073709551615", "min:-9223372036854775808"}));
}

TEST(SearchKeysTest, KeyNameIsThePointerWithDots) {
  EXPECT_EQ(SearchKeyName("/data/object/customer"), "data.object.customer");
  EXPECT_EQ(SearchKeyName("/user/id"), "user.id");
  EXPECT_EQ(SearchKeyName("/events/0/source/userId"), "events.0.source.userId");
  EXPECT_EQ(SearchKeyName("/a~1b/c~0d"), "a/b.c~d");
}

TEST(SearchKeysTest, PointersReadAFormsFieldsAndItsJsonField) {
  Result<DecodedForm> form = DecodedForm::Decode(
      "team_id=T1&user_id=U1&user_id=U2&payload=%7B%22user%22%3A%7B%22id%22%3A%22U3%22%7D%7D");
  ASSERT_TRUE(form.ok());
  Result<JsonBody> payload = ParseJsonBody(R"({"user":{"id":"U3"}})");
  ASSERT_TRUE(payload.ok());
  const simdjson::dom::element root = payload->root();
  const SearchKeyPointers pointers({"/team_id", "/user_id", "/payload/user/id", "/team/id"});
  SearchKeys keys;
  pointers.AddFrom(*form, keys, "payload", &root);
  // The repeated field's last value, as the payload's object keeps it.
  EXPECT_EQ(keys.Take(), (Keys{"team_id:T1", "user_id:U2", "payload.user.id:U3"}));
  pointers.AddFrom(*form, keys);  // no JSON field: the longer pointers match nothing
  EXPECT_EQ(keys.Take(), (Keys{"team_id:T1", "user_id:U2"}));
}

// https://api.slack.com/apis/events-api#callback-field (the event_callback example).
constexpr char kSlackEvent[] =
    R"({"token":"XXYYZZ","team_id":"T123ABC456","api_app_id":"A123ABC456","event":{)"
    R"("type":"message","channel":"C123ABC456","user":"U123ABC456","text":"Live long and )"
    R"(prospect.","ts":"1355517523.000005","event_ts":"1355517523.000005","channel_type":)"
    R"("channel"},"type":"event_callback","authed_users":["U123ABC456"],"event_id":)"
    R"("Ev123ABC456","event_time":1355517523})";

TEST(SlackSearchKeysTest, EventsApiCallbackGivesTeamChannelAndUser) {
  SourceDecision decision = Deliver(SourceOf("slack"), kSlackEvent);
  EXPECT_EQ(decision.search_keys,
            (Keys{"slack.team:T123ABC456", "slack.channel:C123ABC456", "slack.user:U123ABC456"}));
  // An event whose channel and user are objects (channel_created, user_change) gives
  // their ids; one without them gives the team alone.
  decision = Deliver(SourceOf("slack"),
                     R"({"team_id":"T1","event":{"type":"channel_created","channel":{"id":)"
                     R"("C9","name":"fun","creator":"U7"}},"event_id":"Ev2"})");
  EXPECT_EQ(decision.search_keys, (Keys{"slack.team:T1", "slack.channel:C9"}));
}

TEST(SlackSearchKeysTest, SlashCommandFormGivesItsFields) {
  // https://api.slack.com/authentication/verifying-requests-from-slack's worked example.
  SourceDecision decision = Deliver(
      SourceOf("slack"),
      "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
      "G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
      "collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%"
      "2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
      "803a0bc887a14d10d2c447fce8b6703c");
  EXPECT_EQ(decision.search_keys,
            (Keys{"slack.team:T1DC2JH3J", "slack.channel:G8PSS9T3V", "slack.user:U2CERLKJA"}));
}

TEST(SlackSearchKeysTest, InteractivityPayloadGivesItsObjectsIds) {
  // https://api.slack.com/reference/interaction-payloads/block-actions (abridged).
  const std::string payload =
      R"({"type":"block_actions","team":{"id":"T9TK3CUKW","domain":"example"},"user":{"id":)"
      R"("UA8RXUSPL","username":"jtorrance","team_id":"T9TK3CUKW"},"api_app_id":"AABA1ABCD",)"
      R"("token":"9s8d9as89d8as9d8as989","trigger_id":"12321423423.333649436676.d8c1bb837935",)"
      R"("channel":{"id":"CBR2V3XEX","name":"review-updates"},"actions":[{"action_id":"WaXA",)"
      R"("block_id":"=qXel","value":"click_me_123","type":"button"}]})";
  std::string body = "payload=";
  for (char c : payload) {
    const bool plain = std::isalnum(static_cast<unsigned char>(c)) != 0;
    char escaped[4];
    std::snprintf(escaped, sizeof escaped, "%%%02X", static_cast<unsigned char>(c));
    body += plain ? std::string(1, c) : std::string(escaped);
  }
  // A configured pointer reads below the embedded payload as the handler sees it.
  SourceDecision decision =
      Deliver(SourceOf("slack", "search_keys = [\"/payload/actions/0/value\"]\n"), body);
  EXPECT_EQ(decision.search_keys,
            (Keys{"slack.team:T9TK3CUKW", "slack.channel:CBR2V3XEX", "slack.user:UA8RXUSPL",
                  "payload.actions.0.value:click_me_123"}));
}

TEST(DiscordSearchKeysTest, GuildCommandGivesGuildChannelAndMember) {
  // https://discord.com/developers/docs/interactions/receiving-and-responding (the
  // example interaction, abridged).
  SourceDecision decision = Deliver(
      SourceOf("discord"),
      R"({"type":2,"token":"A_UNIQUE_TOKEN","member":{"user":{"id":"53908232506183680",)"
      R"("username":"Mason","avatar":"a_d5efa99b3eeaa7dd43acca82f5692432","discriminator":)"
      R"("1337","public_flags":131141},"roles":["539082325061836999"],"premium_since":null,)"
      R"("permissions":"2147483647","pending":false,"nick":null,"mute":false,"joined_at":)"
      R"("2017-03-13T19:19:14.040000+00:00","is_pending":false,"deaf":false},"id":)"
      R"("786008729715212338","guild_id":"290926798626357999","app_permissions":"442368",)"
      R"("guild_locale":"en-US","locale":"en-US","data":{"options":[{"type":3,"name":)"
      R"("cardname","value":"The Gitrog Monster"}],"type":1,"name":"cardsearch","id":)"
      R"("771825006014889984"},"channel_id":"645027906669510667"})");
  EXPECT_EQ(decision.search_keys,
            (Keys{"discord.guild:290926798626357999", "discord.channel:645027906669510667",
                  "discord.user:53908232506183680"}));
}

TEST(DiscordSearchKeysTest, DirectMessageGivesTheUserAndConfiguredPointersAddKeys) {
  SourceDecision decision =
      Deliver(SourceOf("discord", "search_keys = [\"/data/name\"]\n"),
              R"({"type":2,"id":"786008729715212339","channel":{"id":"1","type":1},)"
              R"("channel_id":"1","user":{"id":"53908232506183680","username":"Mason"},)"
              R"("data":{"type":1,"name":"cardsearch","id":"771825006014889984"}})");
  EXPECT_EQ(decision.search_keys,
            (Keys{"discord.channel:1", "discord.user:53908232506183680", "data.name:cardsearch"}));
}

TEST(TelegramSearchKeysTest, MessageGivesChatAndSender) {
  // https://core.telegram.org/bots/webhooks#testing-your-bot-with-updates (a message).
  SourceDecision decision = Deliver(
      SourceOf("telegram"),
      R"({"update_id":10000,"message":{"date":1441645532,"chat":{"last_name":"Test Lastname",)"
      R"("id":1111111,"first_name":"Test","username":"Test"},"message_id":1365,"from":)"
      R"({"last_name":"Test Lastname","id":1111111,"first_name":"Test","username":"Test"},)"
      R"("text":"/start"}})");
  // One value, two names: both are keys.
  EXPECT_EQ(decision.search_keys, (Keys{"telegram.chat:1111111", "telegram.user:1111111"}));
}

TEST(TelegramSearchKeysTest, SupergroupIdsAreExactNegativeIntegers) {
  SourceDecision decision = Deliver(
      SourceOf("telegram"),
      R"({"update_id":10001,"edited_message":{"message_id":7,"date":1441645532,"edit_date":)"
      R"(1441645540,"chat":{"id":-1001234567890123,"title":"Ops","type":"supergroup"},)"
      R"("from":{"id":7000000001,"is_bot":false,"first_name":"A"},"text":"fixed"}})");
  EXPECT_EQ(decision.search_keys,
            (Keys{"telegram.chat:-1001234567890123", "telegram.user:7000000001"}));
  decision = Deliver(SourceOf("telegram"),
                     R"({"update_id":10002,"channel_post":{"message_id":8,"date":1,"chat":)"
                     R"({"id":-1009876543210,"title":"News","type":"channel"},"text":"hi"}})");
  EXPECT_EQ(decision.search_keys, (Keys{"telegram.chat:-1009876543210"}));
}

TEST(TelegramSearchKeysTest, CallbackQueryGivesThePressersIdNotTheBots) {
  // https://core.telegram.org/bots/webhooks#testing-your-bot-with-updates (callback query).
  SourceDecision decision = Deliver(
      SourceOf("telegram"),
      R"({"update_id":10003,"callback_query":{"id":"4382bfdwdsb323b2d9","from":{"last_name":)"
      R"("Test Lastname","type":"private","id":1111111,"first_name":"Test","username":"Test"},)"
      R"("data":"Data from button callback","inline_message_id":"1234csdbsk4839","message":)"
      R"({"message_id":9,"date":1,"from":{"id":5000000000,"is_bot":true,"first_name":"Bot"},)"
      R"("chat":{"id":-1001234567890,"type":"supergroup","title":"Ops"},"text":"Pick"}}})");
  EXPECT_EQ(decision.search_keys, (Keys{"telegram.chat:-1001234567890", "telegram.user:1111111"}));
}

// https://docs.github.com/en/webhooks/webhook-events-and-payloads#push (abridged).
constexpr char kGithubPush[] =
    R"({"ref":"refs/heads/main","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","after":)"
    R"("59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5","repository":{"id":1296269,"node_id":)"
    R"("MDEwOlJlcG9zaXRvcnkxMjk2MjY5","name":"Hello-World","full_name":"octocat/Hello-World",)"
    R"("private":false,"owner":{"login":"octocat","id":1}},"pusher":{"name":"octocat"},)"
    R"("sender":{"login":"monalisa","id":2,"type":"User"}})";

TEST(GithubSearchKeysTest, PushGivesRepositorySenderAndDelivery) {
  SourceDecision decision =
      Deliver(SourceOf("github"), kGithubPush,
              {{"X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"}});
  EXPECT_EQ(decision.search_keys, (Keys{"github.repo:octocat/Hello-World", "github.sender:monalisa",
                                        "github.delivery:72d3162e-cc78-11e3-81ab-4c9367dc0958"}));
}

// The WhatsApp Cloud API's documented messages webhook: two messages and a status.
const std::string kWhatsAppBatch =
    R"({"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{)"
    R"("value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":)"
    R"("15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":)"
    R"("Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":)"
    R"("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":)"
    R"("1749416383","type":"text","text":{"body":"Does it come in another color?"}}],)"
    R"("statuses":[{"id":"wamid.sent1","status":"delivered","timestamp":"1749416385",)"
    R"("recipient_id":"16505551235"}]},"field":"messages"}]}]})";

TEST(MetaSearchKeysTest, WhatsAppJobsGiveThePhoneAndTheCustomer) {
  SourceDecision decision = Deliver(SourceOf("meta"), kWhatsAppBatch);
  ASSERT_EQ(decision.batch.size(), 2u);
  EXPECT_EQ(decision.batch[0].search_keys,
            (Keys{"meta.phone:106540352242922", "meta.wa_id:16505551234"}));
  // A status names its customer as recipient_id.
  EXPECT_EQ(decision.batch[1].search_keys,
            (Keys{"meta.phone:106540352242922", "meta.wa_id:16505551235"}));
}

TEST(MetaSearchKeysTest, MessengerJobsGiveTheSenderAndConfiguredPointersReadEachJob) {
  // https://developers.facebook.com/docs/messenger-platform/reference/webhook-events/messages
  const std::string body =
      R"({"object":"page","entry":[{"id":"106540352242922","time":1458692752478,"messaging":[)"
      R"({"sender":{"id":"1254938275682919"},"recipient":{"id":"106540352242922"},"timestamp":)"
      R"(1762902671,"message":{"mid":"mid.1457764197618:41d102a3e1ae206a38","text":"hello"}},)"
      R"({"sender":{"id":"1254938275682920"},"recipient":{"id":"106540352242922"},"timestamp":)"
      R"(1762902672,"postback":{"mid":"m_2","title":"Start","payload":"GET_STARTED"}}]}]})";
  SourceDecision decision =
      Deliver(SourceOf("meta", "search_keys = [\"/messaging/postback/payload\"]\n"), body);
  ASSERT_EQ(decision.batch.size(), 2u);
  EXPECT_EQ(decision.batch[0].search_keys, (Keys{"meta.user:1254938275682919"}));
  EXPECT_EQ(decision.batch[1].search_keys,
            (Keys{"meta.user:1254938275682920", "messaging.postback.payload:GET_STARTED"}));
}

// https://docs.stripe.com/api/events/object and a payment intent (abridged).
constexpr char kStripeEvent[] =
    R"({"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","api_version":"2019-02-19",)"
    R"("created":1686089970,"data":{"object":{"id":"pi_3NG8Du2eZvKYlo2C0dEd7eIv","object":)"
    R"("payment_intent","amount":2000,"currency":"usd","customer":"cus_NffrFeUfNV2Hib",)"
    R"("status":"succeeded"}},"livemode":false,"pending_webhooks":0,"request":{"id":null,)"
    R"("idempotency_key":null},"type":"payment_intent.succeeded"})";

TEST(SchemeSearchKeysTest, PresetDefaultsAndTheirReplacement) {
  EXPECT_EQ(Deliver(SourceOf("stripe"), kStripeEvent).search_keys,
            (Keys{"data.object.customer:cus_NffrFeUfNV2Hib"}));
  // A Connect event also names the connected account.
  std::string connect = kStripeEvent;
  connect.insert(1, R"("account":"acct_1032D82eZvKYlo2C",)");
  EXPECT_EQ(Deliver(SourceOf("stripe"), connect).search_keys,
            (Keys{"data.object.customer:cus_NffrFeUfNV2Hib", "account:acct_1032D82eZvKYlo2C"}));
  // Configured pointers replace the defaults; an empty list turns them off.
  EXPECT_EQ(Deliver(SourceOf("stripe", "search_keys = [\"/data/object/id\"]\n"), kStripeEvent)
                .search_keys,
            (Keys{"data.object.id:pi_3NG8Du2eZvKYlo2C0dEd7eIv"}));
  EXPECT_TRUE(Deliver(SourceOf("stripe", "search_keys = []\n"), kStripeEvent).search_keys.empty());
}

TEST(SchemeSearchKeysTest, HmacSourceTakesItsConfiguredPointers) {
  const SourceConfig config =
      SourceOf("hmac", "search_keys = [\"/data/object/customer\", \"/user/id\", \"/n\"]\n");
  EXPECT_EQ(Deliver(config, R"({"id":"e1","data":{"object":{"customer":"cus_123"}},)"
                            R"("user":{"id":42},"n":1.5})")
                .search_keys,
            (Keys{"data.object.customer:cus_123", "user.id:42"}));
  // Without any, a source reads nothing.
  EXPECT_TRUE(Deliver(SourceOf("hmac"), R"({"user":{"id":42}})").search_keys.empty());
}

TEST(SchemeSearchKeysTest, FormPresetsReadTheirFields) {
  // An inbound SMS as Twilio posts it.
  SourceDecision decision = Deliver(
      SourceOf("twilio"),
      "ToCountry=US&SmsMessageSid=SM1f0e&NumMedia=0&Body=Hello&FromCountry=US&To=%2B14155550100"
      "&MessageSid=SM1f0e&AccountSid=AC5a7c&From=%2B14155550199&ApiVersion=2010-04-01");
  EXPECT_EQ(decision.search_keys, (Keys{"From:+14155550199", "To:+14155550100"}));
  // Mattermost's token authenticates the request; it is never a key (config refuses it).
  decision = Deliver(SourceOf("mattermost"),
                     "channel_id=c1&channel_name=town-square&post_id=p1&team_domain=sample"
                     "&team_id=t1&text=hello&timestamp=1&trigger_word=hello"
                     "&user_id=u1&user_name=sample");
  EXPECT_EQ(decision.search_keys, (Keys{"team_id:t1", "channel_id:c1", "user_id:u1"}));
}

}  // namespace
}  // namespace firebreak
