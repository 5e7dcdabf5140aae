// The 16 provider presets end to end against the real binary: one `firebreak ingest`
// with a source of every preset kind. Each provider's request is signed HERE, with
// OpenSSL's HMAC()/EVP_EncodeBlock per the provider's documented scheme (the doc is
// cited at each signer), never with firebreak's signing code. For every preset:
// a genuine delivery is stored once (the same request again and a re-signed redelivery
// fold into it), a tampered body, a wrong secret, a missing signature and a stale
// timestamp are refused with 401 and store nothing, and secret rotation works (several
// signatures in one header, or the configured previous_secret). Handshakes (Twitch,
// Zoom, LINE) are answered without a job and refused unsigned; the envelope carries the
// allow-listed headers and never a credential; `firebreak send` works for every preset;
// nothing secret reaches the log.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "harness.h"

namespace firebreak::testing {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

// ---- Secrets (each provider's secret as its dashboard shows it) ------------------------

// Stripe: the whole "whsec_..." string is the key (no decoding).
const std::string kStripe = "whsec_presets_stripe_7c1e9a3b5d2f";
const std::string kStripeOld = "whsec_presets_stripe_rolled_away_0";
// Standard Webhooks / Svix: "whsec_" + base64 of the key bytes.
const std::string kStandard = "whsec_ZmlyZWJyZWFrLXByZXNldHMtc3RhbmRhcmQta2V5LTAx";
const std::string kStandardOld = "whsec_ZmlyZWJyZWFrLXByZXNldHMtc3RhbmRhcmQta2V5LTAw";
const std::string kSvix = "whsec_ZmlyZWJyZWFrLXByZXNldHMtc3ZpeC1zaWduaW5nLWsx";
const std::string kSvixOld = "whsec_ZmlyZWJyZWFrLXByZXNldHMtc3ZpeC1zaWduaW5nLWsw";
const std::string kNotTheKey = "whsec_ZmlyZWJyZWFrLXByZXNldHMtbm90LXRoZS1rZXkteHg=";
const std::string kShopify = "shpss_presets_shopify_client_secret_1";
const std::string kShopifyPrev = "shpss_presets_shopify_client_secret_0";
const std::string kLine = "presets-line-channel-secret-1";
const std::string kLinePrev = "presets-line-channel-secret-0";
const std::string kTwilio = "presets0twilio0auth0token0000001";
const std::string kTwilioPrev = "presets0twilio0auth0token0000000";
const std::string kTwitch = "presets-twitch-subscription-secret-1";
const std::string kTwitchPrev = "presets-twitch-subscription-secret-0";
const std::string kZoom = "presets-zoom-secret-token-1";
const std::string kZoomPrev = "presets-zoom-secret-token-0";
const std::string kGitlab = "presets-gitlab-secret-token-1";
const std::string kGitlabPrev = "presets-gitlab-secret-token-0";
const std::string kMattermost = "presetsmattermostoutgoingtoken1";
const std::string kMattermostPrev = "presetsmattermostoutgoingtoken0";
// Teams: the base64 security token; the key is its decoded 32 bytes.
const std::string kTeams = "ZmlyZWJyZWFrIHByZXNldHMgdGVhbXMgdG9rZW4gMSE=";
const std::string kTeamsPrev = "ZmlyZWJyZWFrIHByZXNldHMgdGVhbXMgdG9rZW4gMCE=";
const std::string kTeamsWrong = "ZmlyZWJyZWFrIHByZXNldHMgdGVhbXMgd3JvbmcgOSE=";
// Paddle: the whole string, prefix included, as raw bytes ('/' and '+' are not base64 here).
const std::string kPaddle = "pdl_ntfset_01presets_paddle_Gr0W/Ln+vmtjJYq4";
const std::string kPaddleOld = "pdl_ntfset_01presets_paddle_rolled_away_0";
const std::string kLinear = "lin_wh_presets_linear_signing_secret_1";
const std::string kLinearPrev = "lin_wh_presets_linear_signing_secret_0";
// PagerDuty: looks like base64, used as raw ASCII.
const std::string kPagerduty = "presets+PagerDuty/secret+looks+base64+AAAA";
const std::string kPagerdutyOld = "presets+PagerDuty/rolled+away+secret+BBBB";
const std::string kIntercom = "presets-intercom-client-secret-1";
const std::string kIntercomPrev = "presets-intercom-client-secret-0";
const std::string kLemon = "presets-lemonsqueezy-signing-secret-1";
const std::string kLemonPrev = "presets-lemonsqueezy-signing-secret-0";

// Twilio signs the URL it called: the source's public_url + the request target.
const std::string kTwilioPublicUrl = "https://hooks.example.com";

// ---- OpenSSL primitives ----------------------------------------------------------------

std::string Hmac(const EVP_MD* md, const std::string& key, const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &len);
  return std::string(reinterpret_cast<char*>(digest), len);
}

std::string Hex(const std::string& raw) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::string Base64(const std::string& raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(raw.data()),
                                static_cast<int>(raw.size()));
  out.resize(n);
  return out;
}

std::string Unbase64(const std::string& text) {
  std::string out(3 * (text.size() / 4) + 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return "";
  // EVP_DecodeBlock counts the '=' padding as zero bytes.
  size_t padding = 0;
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) ++padding;
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return Hex(std::string(reinterpret_cast<char*>(digest), len));
}

std::string HmacSha256(const std::string& key, const std::string& data) {
  return Hmac(EVP_sha256(), key, data);
}

// A stable delivery id for a body: a provider's retry of one event keeps its id.
std::string DeliveryId(const std::string& body) {
  return Sha256Hex("delivery" + body).substr(0, 24);
}

// RFC 3339 with nanoseconds, as Twitch sends it.
std::string Rfc3339(int64_t seconds) {
  const std::time_t time = static_cast<std::time_t>(seconds);
  std::tm utc{};
  gmtime_r(&time, &utc);
  char text[48];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S.634234626Z", &utc);
  return text;
}

std::string Lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// Form decoding ('+' and %XX), for Twilio's sorted parameter list.
std::string FormDecode(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size()) {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// ---- Provider signers ------------------------------------------------------------------

constexpr char kJson[] = "application/json";
constexpr char kForm[] = "application/x-www-form-urlencoded";

struct Request {
  std::string target;
  Headers headers;
  std::string body;
};

// Stripe (https://docs.stripe.com/webhooks#verify-manually): Stripe-Signature:
// t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>, one v1 per secret while rolling.
Request Stripe(const std::string& body, const std::vector<std::string>& secrets, int64_t ts) {
  const std::string t = std::to_string(ts);
  std::string header = "t=" + t;
  for (const std::string& secret : secrets)
    header += ",v1=" + Hex(HmacSha256(secret, t + "." + body));
  return {"/hooks/stripe", {{"Stripe-Signature", header}, {"Content-Type", kJson}}, body};
}

// Standard Webhooks (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/
// standard-webhooks.md#verifying-webhook-authenticity) and Svix
// (https://docs.svix.com/receiving/verifying-payloads/how-manual): <p>-signature:
// "v1,<base64 HMAC-SHA256(base64decode(secret minus whsec_), "<id>.<ts>.<body>")>",
// space separated while rotating.
std::string StandardSignature(const std::string& secret, const std::string& id,
                              const std::string& t, const std::string& body) {
  const std::string key = Unbase64(secret.substr(std::string("whsec_").size()));
  return "v1," + Base64(HmacSha256(key, id + "." + t + "." + body));
}

Request StandardWebhooks(const std::string& prefix, const std::string& path,
                         const std::string& body, const std::vector<std::string>& secrets,
                         int64_t ts) {
  const std::string id = "msg_" + DeliveryId(body);
  const std::string t = std::to_string(ts);
  std::string header;
  for (const std::string& secret : secrets) {
    if (!header.empty()) header += ' ';
    header += StandardSignature(secret, id, t, body);
  }
  return {path,
          {{prefix + "-id", id},
           {prefix + "-timestamp", t},
           {prefix + "-signature", header},
           {"Content-Type", kJson}},
          body};
}

// Shopify (https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-2-validate-the-
// origin-of-your-webhook-to-ensure-its-coming-from-shopify): X-Shopify-Hmac-Sha256 =
// base64 HMAC-SHA256(client secret, body).
Request Shopify(const std::string& body, const std::string& secret) {
  return {"/hooks/shopify",
          {{"X-Shopify-Hmac-Sha256", Base64(HmacSha256(secret, body))},
           {"X-Shopify-Topic", "orders/create"},
           {"X-Shopify-Shop-Domain", "presets.myshopify.com"},
           {"X-Shopify-Webhook-Id", DeliveryId(body)},
           {"X-Shopify-API-Version", "2024-07"},
           {"Content-Type", kJson}},
          body};
}

// LINE (https://developers.line.biz/en/reference/messaging-api/#signature-validation):
// x-line-signature = base64 HMAC-SHA256(channel secret, body).
Request Line(const std::string& body, const std::string& secret) {
  return {"/hooks/line",
          {{"x-line-signature", Base64(HmacSha256(secret, body))}, {"Content-Type", kJson}},
          body};
}

// Twilio (https://www.twilio.com/docs/usage/webhooks/webhooks-security#validating-
// signatures-from-twilio): X-Twilio-Signature = base64 HMAC-SHA1(auth token, full URL +
// every POST field's name and value, sorted by name). A JSON body: the URL carries
// bodySHA256=<hex sha256(body)> and the field list is empty.
std::string TwilioSignature(const std::string& secret, const std::string& url,
                            const std::string& form) {
  std::vector<std::pair<std::string, std::string>> fields;
  size_t start = 0;
  while (start < form.size()) {
    size_t end = form.find('&', start);
    if (end == std::string::npos) end = form.size();
    const std::string pair = form.substr(start, end - start);
    const size_t equals = pair.find('=');
    fields.emplace_back(FormDecode(pair.substr(0, equals)),
                        equals == std::string::npos ? "" : FormDecode(pair.substr(equals + 1)));
    start = end + 1;
  }
  std::sort(fields.begin(), fields.end());
  std::string data = url;
  for (const auto& [name, value] : fields) data += name + value;
  return Base64(Hmac(EVP_sha1(), secret, data));
}

Request Twilio(const std::string& body, const std::string& secret) {
  return {
      "/hooks/twilio",
      {{"X-Twilio-Signature", TwilioSignature(secret, kTwilioPublicUrl + "/hooks/twilio", body)},
       {"I-Twilio-Idempotency-Token", DeliveryId(body)},
       {"Content-Type", kForm}},
      body};
}

// Twitch EventSub (https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#verifying-
// the-event-message): Twitch-Eventsub-Message-Signature = "sha256=" + hex HMAC-SHA256(
// secret, message id + timestamp header + body).
Request Twitch(const std::string& body, const std::string& secret, int64_t ts,
               const std::string& type = "notification") {
  const std::string id = DeliveryId(body);
  const std::string t = Rfc3339(ts);
  return {
      "/hooks/twitch",
      {{"Twitch-Eventsub-Message-Id", id},
       {"Twitch-Eventsub-Message-Timestamp", t},
       {"Twitch-Eventsub-Message-Type", type},
       {"Twitch-Eventsub-Message-Retry", "0"},
       {"Twitch-Eventsub-Subscription-Type", "channel.follow"},
       {"Twitch-Eventsub-Subscription-Version", "2"},
       {"Twitch-Eventsub-Message-Signature", "sha256=" + Hex(HmacSha256(secret, id + t + body))},
       {"Content-Type", kJson}},
      body};
}

// Zoom (https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events): x-zm-signature
// = "v0=" + hex HMAC-SHA256(secret token, "v0:<x-zm-request-timestamp>:<body>").
Request Zoom(const std::string& body, const std::string& secret, int64_t ts) {
  const std::string t = std::to_string(ts);
  return {"/hooks/zoom",
          {{"x-zm-request-timestamp", t},
           {"x-zm-signature", "v0=" + Hex(HmacSha256(secret, "v0:" + t + ":" + body))},
           {"x-zm-trackingid", "v=2.0;clid=presets;rid=" + DeliveryId(body)},
           {"Content-Type", kJson}},
          body};
}

// GitLab (https://docs.gitlab.com/user/project/integrations/webhooks/#validate-requests-
// with-a-secret-token): the secret token itself in X-Gitlab-Token.
Request Gitlab(const std::string& body, const std::string& secret) {
  return {"/hooks/gitlab",
          {{"X-Gitlab-Token", secret},
           {"X-Gitlab-Event", "Push Hook"},
           {"X-Gitlab-Event-UUID", DeliveryId(body)},
           {"Idempotency-Key", DeliveryId(body)},
           {"Content-Type", kJson}},
          body};
}

// Mattermost (https://developers.mattermost.com/integrate/webhooks/outgoing/): the
// outgoing webhook's token in the `token` field of the (form) body.
Request Mattermost(const std::string& body, const std::string& secret) {
  return {"/hooks/mattermost", {{"Content-Type", kForm}}, body + "&token=" + secret};
}

// Microsoft Teams outgoing webhook (https://learn.microsoft.com/en-us/microsoftteams/
// platform/webhooks-and-connectors/how-to/add-outgoing-webhook#2-create-a-method-to-verify-
// the-outgoing-webhook-hmac-token): Authorization: HMAC <base64 HMAC-SHA256(base64decode(
// security token), body)>.
Request Teams(const std::string& body, const std::string& secret) {
  return {"/hooks/teams",
          {{"Authorization", "HMAC " + Base64(HmacSha256(Unbase64(secret), body))},
           {"Content-Type", kJson}},
          body};
}

// Paddle Billing (https://developer.paddle.com/webhooks/signature-verification):
// Paddle-Signature: ts=<unix>;h1=<hex HMAC-SHA256(secret, "<ts>:<body>")>, one h1 per secret.
Request Paddle(const std::string& body, const std::vector<std::string>& secrets, int64_t ts) {
  const std::string t = std::to_string(ts);
  std::string header = "ts=" + t;
  for (const std::string& secret : secrets)
    header += ";h1=" + Hex(HmacSha256(secret, t + ":" + body));
  return {"/hooks/paddle", {{"Paddle-Signature", header}, {"Content-Type", kJson}}, body};
}

// Linear (https://linear.app/developers/webhooks#securing-webhooks): Linear-Signature =
// hex HMAC-SHA256(secret, body); the timestamp is the body's webhookTimestamp (ms).
Request Linear(const std::string& body, const std::string& secret) {
  return {"/hooks/linear",
          {{"Linear-Signature", Hex(HmacSha256(secret, body))},
           {"Linear-Delivery", DeliveryId(body)},
           {"Linear-Event", "Issue"},
           {"Content-Type", kJson}},
          body};
}

// PagerDuty v3 (https://developer.pagerduty.com/docs/verifying-webhook-signatures):
// X-PagerDuty-Signature: v1=<hex HMAC-SHA256(secret, body)>[,v1=...] while rotating.
Request Pagerduty(const std::string& body, const std::vector<std::string>& secrets) {
  std::string header;
  for (const std::string& secret : secrets) {
    header += (header.empty() ? "v1=" : ",v1=") + Hex(HmacSha256(secret, body));
  }
  return {"/hooks/pagerduty",
          {{"X-PagerDuty-Signature", header},
           {"X-Webhook-Id", DeliveryId(body)},
           {"X-Webhook-Subscription", "PSUBPRESETS"},
           {"Content-Type", kJson}},
          body};
}

// Intercom (https://developers.intercom.com/docs/references/webhooks/webhook-models#signed-
// notifications): X-Hub-Signature = "sha1=" + hex HMAC-SHA1(client secret, body).
Request Intercom(const std::string& body, const std::string& secret) {
  return {
      "/hooks/intercom",
      {{"X-Hub-Signature", "sha1=" + Hex(Hmac(EVP_sha1(), secret, body))}, {"Content-Type", kJson}},
      body};
}

// Lemon Squeezy (https://docs.lemonsqueezy.com/help/webhooks/signing-requests): X-Signature =
// hex HMAC-SHA256(signing secret, body).
Request LemonSqueezy(const std::string& body, const std::string& secret) {
  return {"/hooks/lemonsqueezy",
          {{"X-Signature", Hex(HmacSha256(secret, body))},
           {"X-Event-Name", "order_created"},
           {"Content-Type", kJson}},
          body};
}

// ---- The presets under test ------------------------------------------------------------

struct Preset {
  std::string kind;
  std::string secret;
  std::string previous;  // configured previous_secret; "" when rotation is in the header
  std::string wrong;     // a well-formed secret that is not configured
  // A delivery with a fresh id `id`, sent at `ts` (Linear carries the time in the body).
  std::function<std::string(const std::string& id, int64_t ts)> event;
  std::function<Request(const std::string& body, const std::string& secret, int64_t ts)> sign;
  // Several signatures in one header (an old one and the current one); null → sign
  // with `previous`.
  std::function<Request(const std::string& body, int64_t ts)> rotated;
  std::string credential_header;  // "" when the token travels in the body
  bool body_signed = true;
  bool has_timestamp = false;
  // An allow-listed header the envelope must carry (lower case name, value); "" = none.
  std::pair<std::string, std::string> envelope_header;
  std::string job() const { return kind + ".event"; }
};

std::vector<Preset> Presets() {
  std::vector<Preset> p;
  p.push_back(
      {"stripe",
       kStripe,
       "",
       "whsec_presets_not_the_stripe_key",
       [](const std::string& id, int64_t ts) {
         return R"({"id":"evt_)" + id + R"(","object":"event","created":)" + std::to_string(ts) +
                R"(,"type":"payment_intent.succeeded","data":{"object":{"id":"pi_1"}}})";
       },
       [](const std::string& b, const std::string& s, int64_t ts) { return Stripe(b, {s}, ts); },
       [](const std::string& b, int64_t ts) {
         return Stripe(b, {kStripeOld, kStripe}, ts);
       },
       "Stripe-Signature",
       /*body_signed=*/true,
       /*has_timestamp=*/true,
       {}});
  for (const std::vector<std::string>& row : std::vector<std::vector<std::string>>{
           {"standard-webhooks", "webhook", kStandard, kStandardOld},
           {"svix", "svix", kSvix, kSvixOld}}) {
    const std::string kind = row[0], prefix = row[1], secret = row[2], old = row[3];
    const std::string path = "/hooks/" + kind;
    p.push_back({kind,
                 secret,
                 "",
                 kNotTheKey,
                 [](const std::string& id, int64_t) {
                   return R"({"type":"invoice.paid","data":{"id":"inv_)" + id + R"(","n":1}})";
                 },
                 [prefix, path](const std::string& b, const std::string& s, int64_t ts) {
                   return StandardWebhooks(prefix, path, b, {s}, ts);
                 },
                 [prefix, path, secret, old](const std::string& b, int64_t ts) {
                   return StandardWebhooks(prefix, path, b, {old, secret}, ts);
                 },
                 prefix + "-signature",
                 /*body_signed=*/true,
                 /*has_timestamp=*/true,
                 {prefix + "-id", ""}});
  }
  p.push_back({"shopify",
               kShopify,
               kShopifyPrev,
               "shpss_not_the_shopify_secret",
               [](const std::string& id, int64_t) {
                 return R"({"id":)" + id +
                        R"(,"name":"#1001","admin_graphql_api_id":"gid://shopify/Order/)" + id +
                        "\"}";
               },
               [](const std::string& b, const std::string& s, int64_t) { return Shopify(b, s); },
               /*rotated=*/nullptr,
               "X-Shopify-Hmac-Sha256",
               /*body_signed=*/true,
               /*has_timestamp=*/false,
               {"x-shopify-topic", "orders/create"}});
  p.push_back({"line",
               kLine,
               kLinePrev,
               "not-the-line-channel-secret",
               [](const std::string& id, int64_t ts) {
                 return R"({"destination":"U0001","events":[{"type":"message","mode":"active",)"
                        R"("timestamp":)" +
                        std::to_string(ts * 1000) + R"(,"webhookEventId":"01)" + id +
                        R"(","deliveryContext":{"isRedelivery":false},"source":{"type":"user",)"
                        R"("userId":"U0002"},"message":{"id":"1","type":"text","text":"hi"}}]})";
               },
               [](const std::string& b, const std::string& s, int64_t) { return Line(b, s); },
               /*rotated=*/nullptr,
               "x-line-signature",
               /*body_signed=*/true,
               /*has_timestamp=*/false,
               {}});
  p.push_back({"twilio",
               kTwilio,
               kTwilioPrev,
               "presets0twilio0auth0token0wrong0",
               [](const std::string& id, int64_t) {
                 return "AccountSid=AC0001&Body=hello+from+presets&From=%2B15550001&MessageSid=SM" +
                        id + "&NumMedia=0&To=%2B15550002";
               },
               [](const std::string& b, const std::string& s, int64_t) { return Twilio(b, s); },
               /*rotated=*/nullptr,
               "X-Twilio-Signature",
               /*body_signed=*/true,
               /*has_timestamp=*/false,
               {"i-twilio-idempotency-token", ""}});
  p.push_back(
      {"twitch",
       kTwitch,
       kTwitchPrev,
       "not-the-twitch-subscription-secret",
       [](const std::string& id, int64_t) {
         return R"({"subscription":{"id":"s1","type":"channel.follow","version":"2"},)"
                R"("event":{"user_id":")" +
                id + R"(","user_login":"presets","broadcaster_user_id":"1337"}})";
       },
       [](const std::string& b, const std::string& s, int64_t ts) { return Twitch(b, s, ts); },
       /*rotated=*/nullptr,
       "Twitch-Eventsub-Message-Signature",
       /*body_signed=*/true,
       /*has_timestamp=*/true,
       {"twitch-eventsub-message-type", "notification"}});
  p.push_back(
      {"zoom",
       kZoom,
       kZoomPrev,
       "not-the-zoom-secret-token",
       [](const std::string& id, int64_t ts) {
         return R"({"event":"meeting.started","event_ts":)" + std::to_string(ts * 1000) +
                R"(,"payload":{"account_id":"A1","object":{"id":")" + id + R"("}}})";
       },
       [](const std::string& b, const std::string& s, int64_t ts) { return Zoom(b, s, ts); },
       /*rotated=*/nullptr,
       "x-zm-signature",
       /*body_signed=*/true,
       /*has_timestamp=*/true,
       {"x-zm-trackingid", ""}});
  p.push_back({"gitlab",
               kGitlab,
               kGitlabPrev,
               "not-the-gitlab-secret-token",
               [](const std::string& id, int64_t) {
                 return R"({"object_kind":"push","ref":"refs/heads/main","checkout_sha":")" + id +
                        R"(","project":{"id":1}})";
               },
               [](const std::string& b, const std::string& s, int64_t) { return Gitlab(b, s); },
               /*rotated=*/nullptr,
               "X-Gitlab-Token",
               /*body_signed=*/false,
               /*has_timestamp=*/false,
               {"x-gitlab-event", "Push Hook"}});
  p.push_back({"mattermost",
               kMattermost,
               kMattermostPrev,
               "notthemattermosttoken",
               [](const std::string& id, int64_t ts) {
                 return "channel_id=c1&channel_name=town-square&post_id=p" + id +
                        "&team_id=t1&text=hello+presets&timestamp=" + std::to_string(ts * 1000) +
                        "&trigger_word=hello&user_id=u1&user_name=presets";
               },
               [](const std::string& b, const std::string& s, int64_t) { return Mattermost(b, s); },
               /*rotated=*/nullptr,
               "",
               /*body_signed=*/false,
               /*has_timestamp=*/false,
               {}});
  p.push_back({"teams",
               kTeams,
               kTeamsPrev,
               kTeamsWrong,
               [](const std::string& id, int64_t) {
                 return R"({"type":"message","id":")" + id +
                        R"(","channelId":"msteams","from":{"id":"29:1"},"text":"<at>bot</at> hi"})";
               },
               [](const std::string& b, const std::string& s, int64_t) { return Teams(b, s); },
               /*rotated=*/nullptr,
               "Authorization",
               /*body_signed=*/true,
               /*has_timestamp=*/false,
               {}});
  p.push_back(
      {"paddle",
       kPaddle,
       "",
       "pdl_ntfset_01presets_not_the_key",
       [](const std::string& id, int64_t) {
         return R"({"event_id":"evt_)" + id +
                R"(","event_type":"transaction.completed","notification_id":"ntf_1",)"
                R"("data":{"id":"txn_1","status":"completed"}})";
       },
       [](const std::string& b, const std::string& s, int64_t ts) { return Paddle(b, {s}, ts); },
       [](const std::string& b, int64_t ts) {
         return Paddle(b, {kPaddleOld, kPaddle}, ts);
       },
       "Paddle-Signature",
       /*body_signed=*/true,
       /*has_timestamp=*/true,
       {}});
  p.push_back({"linear",
               kLinear,
               kLinearPrev,
               "lin_wh_not_the_linear_secret",
               [](const std::string& id, int64_t ts) {
                 return R"({"action":"create","type":"Issue","data":{"id":")" + id +
                        R"(","title":"presets"},"webhookTimestamp":)" + std::to_string(ts * 1000) +
                        "}";
               },
               [](const std::string& b, const std::string& s, int64_t) { return Linear(b, s); },
               /*rotated=*/nullptr,
               "Linear-Signature",
               /*body_signed=*/true,
               /*has_timestamp=*/true,
               {"linear-event", "Issue"}});
  p.push_back(
      {"pagerduty",
       kPagerduty,
       "",
       "presets+PagerDuty/not+the+secret",
       [](const std::string& id, int64_t) {
         return R"({"event":{"id":")" + id +
                R"(","event_type":"incident.triggered","resource_type":"incident",)"
                R"("data":{"id":"P1","title":"presets"}}})";
       },
       [](const std::string& b, const std::string& s, int64_t) { return Pagerduty(b, {s}); },
       [](const std::string& b, int64_t) {
         return Pagerduty(b, {kPagerdutyOld, kPagerduty});
       },
       "X-PagerDuty-Signature",
       /*body_signed=*/true,
       /*has_timestamp=*/false,
       {"x-webhook-subscription", "PSUBPRESETS"}});
  p.push_back({"intercom",
               kIntercom,
               kIntercomPrev,
               "not-the-intercom-client-secret",
               [](const std::string& id, int64_t) {
                 return R"({"type":"notification_event","app_id":"a1","id":"notif_)" + id +
                        R"(","topic":"conversation.user.created","data":{"item":{"id":"1"}}})";
               },
               [](const std::string& b, const std::string& s, int64_t) { return Intercom(b, s); },
               /*rotated=*/nullptr,
               "X-Hub-Signature",
               /*body_signed=*/true,
               /*has_timestamp=*/false,
               {}});
  p.push_back(
      {"lemonsqueezy",
       kLemon,
       kLemonPrev,
       "not-the-lemonsqueezy-secret",
       [](const std::string& id, int64_t) {
         return R"({"meta":{"event_name":"order_created"},"data":{"type":"orders","id":")" + id +
                R"(","attributes":{"status":"paid"}}})";
       },
       [](const std::string& b, const std::string& s, int64_t) { return LemonSqueezy(b, s); },
       /*rotated=*/nullptr,
       "X-Signature",
       /*body_signed=*/true,
       /*has_timestamp=*/false,
       {"x-event-name", "order_created"}});
  return p;
}

// Every secret the config holds (none may reach the log or an envelope).
std::vector<std::string> AllSecrets() {
  std::vector<std::string> out;
  for (const Preset& p : Presets()) {
    out.push_back(p.secret);
    if (!p.previous.empty()) out.push_back(p.previous);
  }
  return out;
}

// The handler for the envelope test: appends each envelope to a file and acks it.
constexpr char kHandler[] = R"PY(
import json, sys
for line in sys.stdin:
    env = json.loads(line)
    with open(sys.argv[1], "a") as f:
        f.write(line.strip() + "\n")
    print(json.dumps({"id": env["id"], "ok": True}), flush=True)
)PY";

class PresetsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = FreePort();
    dir_.Write("handler.py", kHandler);
    std::string config = "[server]\nlisten = \"127.0.0.1:" + std::to_string(port_) +
                         "\"\n[queue]\npath = \"" + dir_.File("q.db") +
                         "\"\n[worker]\nsidecar = \"127.0.0.1:0\"  # tests run in parallel\n\n";
    std::string jobs;
    auto add = [&](const std::string& name, const std::string& kind, const std::string& secret,
                   const std::string& previous, const std::string& extra) {
      config += "[[sources]]\nname = \"" + name + "\"\nkind = \"" + kind + "\"\npath = \"/hooks/" +
                name + "\"\njob = \"" + name + ".event\"\nsecret = { file = \"" +
                dir_.Write(name + ".secret", secret) + "\" }\n";
      if (!previous.empty()) {
        config +=
            "previous_secret = { file = \"" + dir_.Write(name + ".previous", previous) + "\" }\n";
      }
      config += extra + "\n";
      jobs += "[[jobs]]\ntype = \"" + name +
              ".event\"\nhandler = { command = [\"/usr/bin/python3\", \"" +
              dir_.File("handler.py") + "\", \"" + dir_.File("envelopes.ndjson") + "\"] }\n";
    };
    for (const Preset& p : Presets()) {
      add(p.kind, p.kind, p.secret, p.previous,
          p.kind == "twilio" ? "public_url = \"" + kTwilioPublicUrl + "\"\n" : "");
    }
    // Twilio without public_url: the URL is rebuilt from the Host header.
    add("twilio-host", "twilio", kTwilio, "", "");
    config_ = dir_.Write("firebreak.toml", config + jobs);
    // ingest only: stored jobs stay in the queue and can be counted.
    process_ = std::make_unique<FirebreakProcess>("ingest", config_, dir_.File("log.txt"), port_);
    ASSERT_TRUE(process_->Start()) << process_->Log();
    connection_ = std::make_unique<HttpConnection>("127.0.0.1", port_);
  }

  HttpResponse Send(const Request& request, const std::string& credential_header = "") {
    for (const auto& [name, value] : request.headers) {
      if (!credential_header.empty() && name == credential_header) Remember(value);
    }
    auto res = connection_->Send("POST", request.target, request.headers, request.body);
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : HttpResponse{};
  }

  // Keeps every signature sent (each digest of a multi-signature header on its own), to
  // look for in the log.
  void Remember(const std::string& header_value) {
    std::string token;
    for (char c : header_value + ",") {
      if (c == ',' || c == ';' || c == ' ' || c == '=') {
        if (token.size() >= 16) signatures_.insert(token);
        token.clear();
      } else {
        token += c;
      }
    }
  }

  void ExpectNothingSecretIn(const std::string& text, const std::string& what) {
    for (const std::string& secret : AllSecrets()) {
      EXPECT_EQ(text.find(secret), std::string::npos) << "a secret in " << what << ": " << secret;
    }
    for (const std::string& signature : signatures_) {
      EXPECT_EQ(text.find(signature), std::string::npos)
          << "a signature in " << what << ": " << signature;
    }
  }

  TempDir dir_;
  uint16_t port_ = 0;
  std::string config_;
  std::unique_ptr<FirebreakProcess> process_;
  std::unique_ptr<HttpConnection> connection_;
  std::set<std::string> signatures_;
};

// The signers above reproduce the providers' published vectors (from the providers'
// SDK tests; see each signer's doc), so the binary is checked against the providers'
// schemes and not merely against this file's reading of them.
TEST_F(PresetsTest, TheTestsSignersReproducePublishedVectors) {
  // Standard Webhooks libraries' test_sign_function (also in svix-webhooks' tests).
  EXPECT_EQ(
      StandardSignature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                        "1614265330", R"({"test": 2432232314})"),
      "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  // Twilio's documented example (webhooks-security).
  EXPECT_EQ(TwilioSignature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2",
                            "CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234"
                            "&From=%2B12349013030&To=%2B18005551212"),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
  // Twilio JSON body (twilio-python test_request_validator): URL only, bodySHA256 in it.
  const std::string json = R"({"property": "value", "boolean": true})";
  EXPECT_EQ(Sha256Hex(json), "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620");
  EXPECT_EQ(
      TwilioSignature(
          "12345", "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=" + Sha256Hex(json), ""),
      "a9nBmqA0ju/hNViExpshrM61xv4=");
  // paddle-node-sdk webhooks-validator test.
  EXPECT_EQ(Paddle(R"({"data": ["1", "2"]})", {"VALID_SECRET"}, 1698796800).headers[0].second,
            "ts=1698796800;h1=a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9");
  // shopify-app-js validate.test.ts.
  EXPECT_EQ(Shopify(R"({"foo": "bar"})", "test_secret_key").headers[0].second,
            "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=");
  // line-bot-sdk-python TestSignatureValidator.
  EXPECT_EQ(Line("bodybodybodybody", "channel_secret").headers[0].second,
            "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k=");
  // Base64 round trip of a padded Teams-style token.
  EXPECT_EQ(Unbase64(kTeams), "firebreak presets teams token 1!");
}

TEST_F(PresetsTest, EveryPresetAcceptsGenuineOnceRefusesForgeriesAndRotates) {
  std::set<std::string> kinds;
  for (const Preset& p : Presets()) kinds.insert(p.kind);
  ASSERT_EQ(kinds.size(), 16u) << "every preset, once";
  int n = 0;
  for (const Preset& p : Presets()) {
    SCOPED_TRACE(p.kind);
    const std::string id = std::to_string(7000000 + ++n);
    const int64_t now = NowSeconds();
    const std::string body = p.event(id, now);

    // Genuine → one job; the same request again, and a redelivery signed a few seconds
    // later, fold into it.
    const Request genuine = p.sign(body, p.secret, now);
    HttpResponse res = Send(genuine, p.credential_header);
    EXPECT_EQ(res.status, 200) << res.body;
    EXPECT_EQ(QueuedJobs(config_, p.job()), 1);
    res = Send(genuine, p.credential_header);
    EXPECT_EQ(res.status, 200) << "the same request again: " << res.body;
    res = Send(p.sign(body, p.secret, now - 5), p.credential_header);
    EXPECT_EQ(res.status, 200) << "a redelivery: " << res.body;
    EXPECT_EQ(QueuedJobs(config_, p.job()), 1) << "a duplicate made a second job";

    // Forgeries: nothing stored.
    const std::string other_id = std::to_string(8000000 + n);
    const std::string other = p.event(other_id, now);
    if (p.body_signed) {
      Request tampered = p.sign(other, p.secret, now);
      const size_t at = tampered.body.find(other_id);
      ASSERT_NE(at, std::string::npos);
      tampered.body.replace(at, other_id.size(), std::to_string(9000000 + n));
      EXPECT_EQ(Send(tampered, p.credential_header).status, 401) << "tampered body";
    }
    EXPECT_EQ(Send(p.sign(other, p.wrong, now), p.credential_header).status, 401) << "wrong secret";
    if (!p.credential_header.empty()) {
      Request unsigned_request = p.sign(other, p.secret, now);
      std::erase_if(unsigned_request.headers,
                    [&](const auto& h) { return h.first == p.credential_header; });
      EXPECT_EQ(Send(unsigned_request).status, 401) << "without " << p.credential_header;
    } else {
      EXPECT_EQ(Send({genuine.target, genuine.headers, other}).status, 401) << "without token";
    }
    if (p.has_timestamp) {
      EXPECT_EQ(
          Send(p.sign(p.event(other_id, now - 3600), p.secret, now - 3600), p.credential_header)
              .status,
          401)
          << "an hour-old timestamp";
    }
    EXPECT_EQ(QueuedJobs(config_, p.job()), 1) << "a refused request stored a job";

    // Rotation: an old and a new signature in one header, or the previous secret.
    const std::string rotated_body = p.event(std::to_string(6000000 + n), now);
    const Request rotated =
        p.rotated ? p.rotated(rotated_body, now) : p.sign(rotated_body, p.previous, now);
    res = Send(rotated, p.credential_header);
    EXPECT_EQ(res.status, 200) << "rotation: " << res.body;
    EXPECT_EQ(QueuedJobs(config_, p.job()), 2);
  }
  ExpectNothingSecretIn(process_->Log(), "the log");
  // Every HMAC preset's signatures were collected (mattermost and gitlab carry tokens).
  EXPECT_GE(signatures_.size(), 14u * 4);
}

TEST_F(PresetsTest, HandshakesAreAnsweredWithoutAJobAndRefusedUnsigned) {
  const int64_t now = NowSeconds();
  // Twitch: a signed webhook_callback_verification is answered with the raw challenge.
  const std::string challenge = "pogchamp-kappa-360noscope-vohiyo";
  const std::string verification =
      R"({"challenge":")" + challenge +
      R"(","subscription":{"id":"s1","status":"webhook_callback_verification_pending",)"
      R"("type":"channel.follow","version":"2"}})";
  HttpResponse res = Send(Twitch(verification, kTwitch, now, "webhook_callback_verification"),
                          "Twitch-Eventsub-Message-Signature");
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, challenge);
  EXPECT_EQ(res.Header("Content-Type").substr(0, 10), "text/plain");
  Request forged = Twitch(verification, kTwitch, now, "webhook_callback_verification");
  std::erase_if(forged.headers,
                [](const auto& h) { return h.first == "Twitch-Eventsub-Message-Signature"; });
  res = Send(forged);
  EXPECT_EQ(res.status, 401);
  EXPECT_EQ(res.body.find(challenge), std::string::npos);
  res = Send(Twitch(verification, "not-the-twitch-secret", now, "webhook_callback_verification"),
             "Twitch-Eventsub-Message-Signature");
  EXPECT_EQ(res.status, 401);
  EXPECT_EQ(QueuedJobs(config_, "twitch.event"), 0);

  // Zoom: endpoint.url_validation → plainToken and hex HMAC-SHA256(secret, plainToken).
  const std::string plain = "qgg8vlvZRS6UYooatFL8Aw";
  const std::string validation = R"({"payload":{"plainToken":")" + plain + R"("},"event_ts":)" +
                                 std::to_string(now * 1000) +
                                 R"(,"event":"endpoint.url_validation"})";
  res = Send(Zoom(validation, kZoom, now), "x-zm-signature");
  EXPECT_EQ(res.status, 200) << res.body;
  auto answer = nlohmann::json::parse(res.body, nullptr, false);
  ASSERT_TRUE(answer.is_object()) << res.body;
  EXPECT_EQ(answer["plainToken"], plain);
  EXPECT_EQ(answer["encryptedToken"], Hex(HmacSha256(kZoom, plain)));
  Request unsigned_zoom = Zoom(validation, kZoom, now);
  std::erase_if(unsigned_zoom.headers, [](const auto& h) { return h.first == "x-zm-signature"; });
  EXPECT_EQ(Send(unsigned_zoom).status, 401);
  EXPECT_EQ(Send(Zoom(validation, "not-the-zoom-secret-token", now), "x-zm-signature").status, 401);
  EXPECT_EQ(QueuedJobs(config_, "zoom.event"), 0);

  // LINE: the console's verify button posts an empty events array: 200, nothing stored.
  const std::string verify = R"({"destination":"U0001","events":[]})";
  res = Send(Line(verify, kLine), "x-line-signature");
  EXPECT_EQ(res.status, 200) << res.body;
  Request unsigned_line = Line(verify, kLine);
  std::erase_if(unsigned_line.headers, [](const auto& h) { return h.first == "x-line-signature"; });
  EXPECT_EQ(Send(unsigned_line).status, 401);
  EXPECT_EQ(Send(Line(verify, "not-the-line-secret"), "x-line-signature").status, 401);
  EXPECT_EQ(QueuedJobs(config_, "line.event"), 0);

  ExpectNothingSecretIn(process_->Log(), "the log");
}

TEST_F(PresetsTest, TwilioSignsTheUrlFromPublicUrlOrHostAndBindsJsonBodies) {
  const std::string form = "AccountSid=AC0002&Body=via+host&MessageSid=SMhost1&To=%2B15550002";
  // No public_url: the URL is http://<Host header><target>.
  const std::string host_url = "http://127.0.0.1:" + std::to_string(port_) + "/hooks/twilio-host";
  Request via_host{
      "/hooks/twilio-host",
      {{"X-Twilio-Signature", TwilioSignature(kTwilio, host_url, form)}, {"Content-Type", kForm}},
      form};
  EXPECT_EQ(Send(via_host, "X-Twilio-Signature").status, 200);
  EXPECT_EQ(QueuedJobs(config_, "twilio-host.event"), 1);
  // Behind a proxy: the origin it reports (X-Forwarded-Proto/-Host) is the one signed.
  const std::string proxied_form = "AccountSid=AC0002&Body=via+proxy&MessageSid=SMproxy1";
  Request via_proxy{
      "/hooks/twilio-host",
      {{"X-Twilio-Signature",
        TwilioSignature(kTwilio, "https://bot.example.com/hooks/twilio-host", proxied_form)},
       {"X-Forwarded-Proto", "https"},
       {"X-Forwarded-Host", "bot.example.com"},
       {"Content-Type", kForm}},
      proxied_form};
  EXPECT_EQ(Send(via_proxy, "X-Twilio-Signature").status, 200);
  EXPECT_EQ(QueuedJobs(config_, "twilio-host.event"), 2);
  // Signed for another origin: refused.
  Request elsewhere = via_host;
  elsewhere.headers[0].second =
      TwilioSignature(kTwilio, "https://elsewhere.example.com/hooks/twilio-host", form);
  EXPECT_EQ(Send(elsewhere, "X-Twilio-Signature").status, 401);

  // With public_url: Twilio may have signed the URL with the scheme's default port.
  const std::string with_port = "AccountSid=AC0004&Body=with+port&MessageSid=SMport1";
  Request port_request{
      "/hooks/twilio",
      {{"X-Twilio-Signature",
        TwilioSignature(kTwilio, "https://hooks.example.com:443/hooks/twilio", with_port)},
       {"Content-Type", kForm}},
      with_port};
  EXPECT_EQ(Send(port_request, "X-Twilio-Signature").status, 200);
  EXPECT_EQ(QueuedJobs(config_, "twilio.event"), 1);

  // A JSON delivery: the signature covers the URL with bodySHA256, which binds the body.
  const std::string json = R"({"AccountSid":"AC0003","MessageSid":"SMjson1","Body":"json"})";
  const std::string target = "/hooks/twilio?bodySHA256=" + Sha256Hex(json);
  Request json_request{
      target,
      {{"X-Twilio-Signature", TwilioSignature(kTwilio, kTwilioPublicUrl + target, "")},
       {"Content-Type", kJson}},
      json};
  EXPECT_EQ(Send(json_request, "X-Twilio-Signature").status, 200);
  EXPECT_EQ(QueuedJobs(config_, "twilio.event"), 2);
  Request tampered = json_request;
  tampered.body = R"({"AccountSid":"AC0003","MessageSid":"SMjson2","Body":"json"})";
  EXPECT_EQ(Send(tampered, "X-Twilio-Signature").status, 401) << "body does not match bodySHA256";
  // The tampered body's own hash in the URL, under the old signature: refused too.
  tampered.target = "/hooks/twilio?bodySHA256=" + Sha256Hex(tampered.body);
  EXPECT_EQ(Send(tampered, "X-Twilio-Signature").status, 401) << "URL changed under the signature";
  EXPECT_EQ(QueuedJobs(config_, "twilio.event"), 2);
  ExpectNothingSecretIn(process_->Log(), "the log");
}

TEST_F(PresetsTest, EnvelopesCarryAllowListedHeadersAndNoCredentials) {
  const int64_t now = NowSeconds();
  int n = 0;
  std::map<std::string, Request> sent;
  for (const Preset& p : Presets()) {
    SCOPED_TRACE(p.kind);
    Request request = p.sign(p.event(std::to_string(5000000 + ++n), now), p.secret, now);
    EXPECT_EQ(Send(request, p.credential_header).status, 200);
    sent[p.kind] = request;
  }
  // Mattermost may post JSON instead of a form: the token is dropped from it as well.
  const std::string mattermost_json =
      R"({"token":")" + kMattermost +
      R"(","post_id":"pjson1","channel_id":"c1","text":"hello json","trigger_word":"hello"})";
  EXPECT_EQ(Send({"/hooks/mattermost", {{"Content-Type", kJson}}, mattermost_json}).status, 200);
  const size_t expected = Presets().size() + 1;
  ASSERT_EQ(QueuedJobs(config_), static_cast<int64_t>(expected));

  FirebreakProcess worker("worker", config_, dir_.File("worker.txt"), 0);
  ASSERT_TRUE(worker.Start()) << worker.Log();
  const std::string out = dir_.File("envelopes.ndjson");
  ASSERT_TRUE(WaitFor([&] { return ReadLines(out).size() >= expected; }, std::chrono::seconds(10)))
      << ReadLines(out).size() << " envelopes\n"
      << worker.Log();
  EXPECT_EQ(worker.Terminate(std::chrono::seconds(10)), 0) << worker.Log();

  std::map<std::string, std::vector<nlohmann::json>> by_source;
  for (const std::string& line : ReadLines(out)) {
    auto envelope = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(envelope.is_object()) << line;
    by_source[envelope["source"].get<std::string>()].push_back(envelope);
    ExpectNothingSecretIn(line, "an envelope");
  }
  for (const Preset& p : Presets()) {
    SCOPED_TRACE(p.kind);
    ASSERT_EQ(by_source[p.kind].size(), p.kind == "mattermost" ? 2u : 1u);
    const nlohmann::json& envelope = by_source[p.kind].front();
    EXPECT_EQ(envelope["type"], p.job());
    const nlohmann::json& headers = envelope["headers"];
    ASSERT_TRUE(headers.is_object()) << envelope.dump();
    if (!p.envelope_header.first.empty()) {
      // The value as sent ("" = the request's own, e.g. a delivery id).
      std::string value = p.envelope_header.second;
      for (const auto& [name, v] : sent[p.kind].headers) {
        if (value.empty() && Lower(name) == p.envelope_header.first) value = v;
      }
      EXPECT_EQ(headers.value(p.envelope_header.first, "<absent>"), value) << headers.dump();
    }
    for (auto it = headers.begin(); it != headers.end(); ++it) {
      const std::string& key = it.key();
      EXPECT_NE(key, Lower(p.credential_header)) << headers.dump();
      EXPECT_NE(key, "authorization") << headers.dump();
      EXPECT_EQ(key.find("signature"), std::string::npos) << headers.dump();
      if (key != "i-twilio-idempotency-token") {
        EXPECT_EQ(key.find("token"), std::string::npos) << headers.dump();
      }
    }
    EXPECT_TRUE(envelope["payload"].is_object()) << envelope.dump();
  }
  // Specific allow-listed headers the brief names.
  EXPECT_EQ(by_source["shopify"][0]["headers"].value("x-shopify-topic", ""), "orders/create");
  EXPECT_EQ(by_source["shopify"][0]["headers"].value("x-shopify-shop-domain", ""),
            "presets.myshopify.com");
  EXPECT_EQ(by_source["twitch"][0]["headers"].value("twitch-eventsub-message-type", ""),
            "notification");
  EXPECT_EQ(by_source["twitch"][0]["headers"].value("twitch-eventsub-subscription-type", ""),
            "channel.follow");
  EXPECT_EQ(by_source["gitlab"][0]["headers"].value("x-gitlab-event", ""), "Push Hook");
  EXPECT_FALSE(by_source["gitlab"][0]["headers"].contains("x-gitlab-token"));
  // Mattermost: the fields reach the handler, the token does not (form and JSON).
  for (const nlohmann::json& envelope : by_source["mattermost"]) {
    const nlohmann::json& payload = envelope["payload"];
    EXPECT_FALSE(payload.contains("token")) << payload.dump();
    EXPECT_TRUE(payload.contains("post_id")) << payload.dump();
    EXPECT_EQ(payload.value("trigger_word", ""), "hello") << payload.dump();
  }
  ExpectNothingSecretIn(process_->Log(), "the log");
  ExpectNothingSecretIn(worker.Log(), "the worker log");
}

TEST_F(PresetsTest, SendSignsForEveryPresetAsTheProviderWould) {
  for (const Preset& p : Presets()) {
    SCOPED_TRACE(p.kind);
    const int64_t before = QueuedJobs(config_, p.job());
    CommandResult sent =
        RunFirebreak({"send", "-c", config_, "--source", p.kind}, std::chrono::seconds(10));
    EXPECT_EQ(sent.exit_code, 0) << sent.out;
    EXPECT_NE(sent.out.find("-> 200"), std::string::npos) << sent.out;
    EXPECT_EQ(QueuedJobs(config_, p.job()), before + 1) << sent.out;
    ExpectNothingSecretIn(sent.out, "send's output");
  }
  ExpectNothingSecretIn(process_->Log(), "the log");
}

}  // namespace
}  // namespace firebreak::testing
