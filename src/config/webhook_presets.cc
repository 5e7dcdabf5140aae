#include "config/webhook_presets.h"

namespace firebreak {
namespace {

using Scheme = SignatureScheme;
using std::chrono::milliseconds;

Scheme Hmac(std::string header, std::string prefix, Scheme::Encoding encoding,
            std::string algorithm = "sha256") {
  Scheme scheme;
  scheme.header = std::move(header);
  scheme.prefix = std::move(prefix);
  scheme.encoding = encoding;
  scheme.algorithm = std::move(algorithm);
  return scheme;
}

WebhookPreset Stripe() {
  WebhookPreset p;
  p.name = "stripe";
  p.doc_url = "https://docs.stripe.com/webhooks#verify-manually";
  // Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...][,v0=<hex>]; the key is the whole
  // "whsec_..." string as bytes.
  p.scheme = Hmac("Stripe-Signature", "v1=", Scheme::Encoding::kHex);
  p.scheme.separator = ",";
  p.scheme.timestamp_entry = "t=";
  p.scheme.signed_template = "{timestamp}.{body}";
  p.dedupe = {"/id"};
  p.headers = {};
  // The customer of a payment, invoice, subscription, ...; a Connect event's account.
  p.search_keys = {"/data/object/customer", "/account"};
  p.sample_body =
      R"({"id":"evt_{id}","object":"event","api_version":"2024-06-20","created":{now},)"
      R"("type":"payment_intent.succeeded","livemode":false,"data":{"object":{"id":"pi_{id}",)"
      R"("object":"payment_intent","amount":2000,"currency":"usd","status":"succeeded"}}})";
  return p;
}

// Standard Webhooks (and Svix, which it grew out of): <prefix>-signature:
// "v1,<base64> v1,<base64>", signed "<id>.<timestamp>.<body>", secret "whsec_<base64>".
WebhookPreset StandardWebhooks(std::string name, const std::string& header_prefix,
                               std::string doc_url) {
  WebhookPreset p;
  p.name = std::move(name);
  p.doc_url = std::move(doc_url);
  p.scheme = Hmac(header_prefix + "-signature", "v1,", Scheme::Encoding::kBase64);
  p.scheme.separator = " ";
  p.scheme.secret_encoding = Scheme::SecretEncoding::kBase64;
  p.scheme.secret_prefix = "whsec_";
  p.scheme.timestamp_header = header_prefix + "-timestamp";
  p.scheme.signed_template = "{header:" + header_prefix + "-id}.{timestamp}.{body}";
  p.dedupe = {"header:" + header_prefix + "-id"};
  p.headers = {header_prefix + "-id", header_prefix + "-timestamp"};
  p.sample_headers = {{header_prefix + "-id", "msg_{id}"}};
  p.sample_body =
      R"({"type":"invoice.paid","timestamp":"2026-01-01T00:00:00Z","data":{"id":"inv_{id}",)"
      R"("text":"hello from firebreak send"}})";
  return p;
}

WebhookPreset Shopify() {
  WebhookPreset p;
  p.name = "shopify";
  p.doc_url = "https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-2-validate-the-origin-of-your-webhook-to-ensure-its-coming-from-shopify";
  p.scheme = Hmac("X-Shopify-Hmac-Sha256", "", Scheme::Encoding::kBase64);
  // A retried delivery keeps its X-Shopify-Webhook-Id.
  p.dedupe = {"header:X-Shopify-Webhook-Id", "body"};
  // Orders, draft orders and checkouts name their customer.
  p.search_keys = {"/customer/id"};
  p.headers = {"X-Shopify-Topic",       "X-Shopify-Shop-Domain",  "X-Shopify-Webhook-Id",
               "X-Shopify-Event-Id",    "X-Shopify-Triggered-At", "X-Shopify-API-Version"};
  p.sample_headers = {{"X-Shopify-Topic", "orders/create"},
                      {"X-Shopify-Shop-Domain", "sample.myshopify.com"},
                      {"X-Shopify-Webhook-Id", "{id}"},
                      {"X-Shopify-API-Version", "2024-07"}};
  p.sample_body = R"({"id":820982911946154508,"admin_graphql_api_id":"gid://shopify/Order/{id}","name":"#1001","note":"hello from firebreak send"})";
  return p;
}

WebhookPreset Line() {
  WebhookPreset p;
  p.name = "line";
  p.doc_url = "https://developers.line.biz/en/reference/messaging-api/#signature-validation";
  p.scheme = Hmac("x-line-signature", "", Scheme::Encoding::kBase64);
  // A redelivery has the same webhookEventId but deliveryContext.isRedelivery = true.
  p.dedupe = {"/events/0/webhookEventId", "body"};
  p.search_keys = {"/events/0/source/userId", "/events/0/source/groupId"};
  p.handshake = Handshake::kLine;
  p.sample_body =
      R"({"destination":"U0001","events":[{"type":"message","mode":"active",)"
      R"("timestamp":{now_ms},"webhookEventId":"01{id}","deliveryContext":)"
      R"({"isRedelivery":false},"source":{"type":"user","userId":"U0002"},)"
      R"("replyToken":"r{id}","message":{"id":"1","type":"text","text":"hello from firebreak send"}}]})";
  return p;
}

WebhookPreset Twilio() {
  WebhookPreset p;
  p.name = "twilio";
  p.doc_url = "https://www.twilio.com/docs/usage/webhooks/webhooks-security#validating-signatures-from-twilio";
  // Base64 HMAC-SHA1 of the full URL and, for a form, every field name then value
  // sorted by name. A JSON body is bound by its SHA-256 in the URL's bodySHA256.
  p.scheme = Hmac("X-Twilio-Signature", "", Scheme::Encoding::kBase64, "sha1");
  p.scheme.signed_template = "{url}{form_params}";
  p.body_sha256_param = "bodySHA256";
  p.dedupe = {"header:I-Twilio-Idempotency-Token", "body"};
  // The other party's number (From of an inbound message, To of a status callback).
  p.search_keys = {"/From", "/To"};
  p.headers = {"I-Twilio-Idempotency-Token"};
  p.content_type = "application/x-www-form-urlencoded";
  p.sample_headers = {{"I-Twilio-Idempotency-Token", "{id}"}};
  p.sample_body =
      "AccountSid=AC{id}&Body=hello+from+firebreak+send&From=%2B15550001&MessageSid=SM{id}"
      "&NumMedia=0&To=%2B15550002";
  return p;
}

WebhookPreset Twitch() {
  WebhookPreset p;
  p.name = "twitch";
  p.doc_url = "https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#verifying-the-event-message";
  p.scheme = Hmac("Twitch-Eventsub-Message-Signature", "sha256=", Scheme::Encoding::kHex);
  p.scheme.timestamp_header = "Twitch-Eventsub-Message-Timestamp";
  p.scheme.timestamp_format = Scheme::TimestampFormat::kRfc3339;
  p.scheme.signed_template = "{header:Twitch-Eventsub-Message-Id}{timestamp}{body}";
  p.tolerance = milliseconds(600'000);  // Twitch: reject messages older than 10 minutes
  p.dedupe = {"header:Twitch-Eventsub-Message-Id"};
  p.search_keys = {"/event/broadcaster_user_id", "/event/user_id"};
  p.headers = {"Twitch-Eventsub-Message-Id",        "Twitch-Eventsub-Message-Type",
               "Twitch-Eventsub-Message-Timestamp", "Twitch-Eventsub-Message-Retry",
               "Twitch-Eventsub-Subscription-Type", "Twitch-Eventsub-Subscription-Version"};
  p.handshake = Handshake::kTwitch;
  p.sample_headers = {{"Twitch-Eventsub-Message-Id", "{id}"},
                      {"Twitch-Eventsub-Message-Type", "notification"},
                      {"Twitch-Eventsub-Subscription-Type", "channel.follow"},
                      {"Twitch-Eventsub-Subscription-Version", "2"}};
  p.sample_body =
      R"({"subscription":{"id":"s{id}","type":"channel.follow","version":"2","status":"enabled",)"
      R"("cost":0,"condition":{"broadcaster_user_id":"1337"},"transport":{"method":"webhook",)"
      R"("callback":"https://example.com/hooks/twitch"},"created_at":"2026-01-01T00:00:00Z"},)"
      R"("event":{"user_id":"1234","user_login":"sample","broadcaster_user_id":"1337"}})";
  return p;
}

WebhookPreset Zoom() {
  WebhookPreset p;
  p.name = "zoom";
  p.doc_url = "https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events";
  p.scheme = Hmac("x-zm-signature", "v0=", Scheme::Encoding::kHex);
  p.scheme.timestamp_header = "x-zm-request-timestamp";
  p.scheme.signed_template = "v0:{timestamp}:{body}";
  p.dedupe = {"body"};
  p.headers = {"x-zm-trackingid"};
  p.search_keys = {"/payload/account_id"};
  p.handshake = Handshake::kZoom;
  p.sample_body =
      R"({"event":"meeting.started","event_ts":{now_ms},"payload":{"account_id":"A{id}",)"
      R"("object":{"id":"{id}","topic":"hello from firebreak send"}}})";
  return p;
}

WebhookPreset Gitlab() {
  WebhookPreset p;
  p.name = "gitlab";
  p.doc_url = "https://docs.gitlab.com/user/project/integrations/webhooks/#validate-requests-with-a-secret-token";
  p.scheme.mode = Scheme::Mode::kToken;
  p.scheme.header = "X-Gitlab-Token";
  // Idempotency-Key (GitLab 17.4+) is the same on every retry of one event.
  p.dedupe = {"header:Idempotency-Key", "header:X-Gitlab-Event-UUID", "body"};
  // Push and tag events name the user as user_username, the others as user.username.
  p.search_keys = {"/project/path_with_namespace", "/user_username", "/user/username"};
  p.headers = {"X-Gitlab-Event", "X-Gitlab-Event-UUID", "X-Gitlab-Instance",
               "X-Gitlab-Webhook-UUID", "Idempotency-Key"};
  p.sample_headers = {{"X-Gitlab-Event", "Push Hook"}, {"Idempotency-Key", "{id}"}};
  p.sample_body =
      R"({"object_kind":"push","ref":"refs/heads/main","checkout_sha":"{id}{id}",)"
      R"("project":{"id":1,"path_with_namespace":"group/sample"},)"
      R"("commits":[{"id":"{id}","message":"hello from firebreak send"}]})";
  return p;
}

WebhookPreset Mattermost() {
  WebhookPreset p;
  p.name = "mattermost";
  p.doc_url = "https://developers.mattermost.com/integrate/webhooks/outgoing/";
  p.scheme.mode = Scheme::Mode::kToken;
  p.scheme.token_field = "/token";
  p.dedupe = {"/post_id", "/trigger_id", "body"};
  p.search_keys = {"/team_id", "/channel_id", "/user_id"};
  p.content_type = "application/x-www-form-urlencoded";
  p.sample_body =
      "channel_id=c1&channel_name=town-square&post_id=p{id}&team_domain=sample&team_id=t1"
      "&text=hello+from+firebreak+send&timestamp={now_ms}&trigger_word=hello&user_id=u1"
      "&user_name=sample";
  return p;
}

WebhookPreset Teams() {
  WebhookPreset p;
  p.name = "teams";
  p.doc_url = "https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-outgoing-webhook#2-create-a-method-to-verify-the-outgoing-webhook-hmac-token";
  // Authorization: HMAC <base64>; the key is the base64-decoded security token.
  p.scheme = Hmac("Authorization", "HMAC ", Scheme::Encoding::kBase64);
  p.scheme.secret_encoding = Scheme::SecretEncoding::kBase64;
  p.dedupe = {"/id", "body"};
  // A Bot Framework activity: who wrote it, and where.
  p.search_keys = {"/from/id", "/conversation/id"};
  p.sample_body =
      R"({"type":"message","id":"{id}","timestamp":"2026-01-01T00:00:00.000Z",)"
      R"("channelId":"msteams","serviceUrl":"https://smba.trafficmanager.net/amer/",)"
      R"("from":{"id":"29:1","name":"Sample"},"conversation":{"id":"19:c1"},)"
      R"("text":"<at>bot</at> hello from firebreak send"})";
  return p;
}

WebhookPreset Paddle() {
  WebhookPreset p;
  p.name = "paddle";
  p.doc_url = "https://developer.paddle.com/webhooks/signature-verification";
  // Paddle-Signature: ts=<unix>;h1=<hex>[;h1=<hex>], signed "<ts>:<body>".
  p.scheme = Hmac("Paddle-Signature", "h1=", Scheme::Encoding::kHex);
  p.scheme.separator = ";";
  p.scheme.timestamp_entry = "ts=";
  p.scheme.signed_template = "{timestamp}:{body}";
  p.dedupe = {"/event_id"};
  // Transactions and subscriptions name their customer.
  p.search_keys = {"/data/customer_id"};
  p.sample_body =
      R"({"event_id":"evt_{id}","event_type":"transaction.completed",)"
      R"("occurred_at":"2026-01-01T00:00:00.000000Z","notification_id":"ntf_{id}",)"
      R"("data":{"id":"txn_{id}","status":"completed"}})";
  return p;
}

WebhookPreset Linear() {
  WebhookPreset p;
  p.name = "linear";
  p.doc_url = "https://linear.app/developers/webhooks#securing-webhooks";
  // The timestamp is inside the signed body (webhookTimestamp, Unix ms); Linear asks
  // receivers to refuse anything older than a minute.
  p.scheme = Hmac("Linear-Signature", "", Scheme::Encoding::kHex);
  p.scheme.timestamp_field = "/webhookTimestamp";
  p.scheme.timestamp_format = Scheme::TimestampFormat::kUnixMillis;
  p.tolerance = milliseconds(60'000);
  p.dedupe = {"header:Linear-Delivery", "body"};
  p.headers = {"Linear-Delivery", "Linear-Event"};
  p.sample_headers = {{"Linear-Delivery", "{id}"}, {"Linear-Event", "Issue"}};
  p.sample_body =
      R"({"action":"create","type":"Issue","data":{"id":"{id}","title":"hello from firebreak send"},)"
      R"("url":"https://linear.app/sample/issue/S-1","webhookId":"w1","webhookTimestamp":{now_ms}})";
  return p;
}

WebhookPreset Pagerduty() {
  WebhookPreset p;
  p.name = "pagerduty";
  p.doc_url = "https://developer.pagerduty.com/docs/verifying-webhook-signatures";
  // X-PagerDuty-Signature: v1=<hex>[,v1=<hex>] (one per secret while rotating).
  p.scheme = Hmac("X-PagerDuty-Signature", "v1=", Scheme::Encoding::kHex);
  p.scheme.separator = ",";
  p.dedupe = {"/event/id"};
  p.headers = {"X-Webhook-Id", "X-Webhook-Subscription"};
  p.sample_body =
      R"({"event":{"id":"{id}","event_type":"incident.triggered","resource_type":"incident",)"
      R"("occurred_at":"2026-01-01T00:00:00.000Z","data":{"id":"P{id}",)"
      R"("title":"hello from firebreak send"}}})";
  return p;
}

WebhookPreset Intercom() {
  WebhookPreset p;
  p.name = "intercom";
  p.doc_url = "https://developers.intercom.com/docs/references/webhooks/webhook-models#signed-notifications";
  p.scheme = Hmac("X-Hub-Signature", "sha1=", Scheme::Encoding::kHex, "sha1");
  p.dedupe = {"/id"};
  p.sample_body =
      R"({"type":"notification_event","app_id":"a1","id":"notif_{id}","topic":"conversation.user.created",)"
      R"("created_at":{now},"data":{"item":{"type":"conversation","id":"{id}"}}})";
  return p;
}

WebhookPreset LemonSqueezy() {
  WebhookPreset p;
  p.name = "lemonsqueezy";
  p.doc_url = "https://docs.lemonsqueezy.com/help/webhooks/signing-requests";
  p.scheme = Hmac("X-Signature", "", Scheme::Encoding::kHex);
  p.dedupe = {"body"};
  p.headers = {"X-Event-Name"};
  // Orders and subscriptions name their customer.
  p.search_keys = {"/data/attributes/customer_id"};
  p.sample_headers = {{"X-Event-Name", "order_created"}};
  p.sample_body =
      R"({"meta":{"event_name":"order_created","custom_data":{}},"data":{"type":"orders",)"
      R"("id":"{id}","attributes":{"status":"paid","total":999}}})";
  return p;
}

}  // namespace

const std::vector<WebhookPreset>& WebhookPresets() {
  static const std::vector<WebhookPreset> presets = {
      Stripe(),
      StandardWebhooks("standard-webhooks", "webhook",
                       "https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/"
                       "standard-webhooks.md#verifying-webhook-authenticity"),
      StandardWebhooks("svix", "svix",
                       "https://docs.svix.com/receiving/verifying-payloads/how-manual"),
      Shopify(),
      Line(),
      Twilio(),
      Twitch(),
      Zoom(),
      Gitlab(),
      Mattermost(),
      Teams(),
      Paddle(),
      Linear(),
      Pagerduty(),
      Intercom(),
      LemonSqueezy(),
  };
  return presets;
}

const WebhookPreset* FindWebhookPreset(std::string_view name) {
  for (const WebhookPreset& preset : WebhookPresets()) {
    if (preset.name == name) return &preset;
  }
  return nullptr;
}

Result<std::vector<TemplatePart>> ParseSignedTemplate(std::string_view text) {
  std::vector<TemplatePart> parts;
  auto literal = [&](char c) {
    if (parts.empty() || parts.back().kind != TemplatePart::Kind::kLiteral) {
      parts.push_back({TemplatePart::Kind::kLiteral, ""});
    }
    parts.back().text.push_back(c);
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        literal('}');
        ++i;
        continue;
      }
      return InvalidArgument("a lone '}' at offset " + std::to_string(i) + " (write \"}}\")");
    }
    if (c != '{') {
      literal(c);
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '{') {
      literal('{');
      ++i;
      continue;
    }
    const size_t close = text.find('}', i);
    if (close == std::string_view::npos) {
      return InvalidArgument("unclosed '{' at offset " + std::to_string(i));
    }
    std::string_view name = text.substr(i + 1, close - i - 1);
    i = close;
    if (name == "body") {
      parts.push_back({TemplatePart::Kind::kBody, ""});
    } else if (name == "timestamp") {
      parts.push_back({TemplatePart::Kind::kTimestamp, ""});
    } else if (name == "url") {
      parts.push_back({TemplatePart::Kind::kUrl, ""});
    } else if (name == "form_params") {
      parts.push_back({TemplatePart::Kind::kFormParams, ""});
    } else if (name.substr(0, 7) == "header:" && name.size() > 7) {
      parts.push_back({TemplatePart::Kind::kHeader, std::string(name.substr(7))});
    } else {
      return InvalidArgument("unknown placeholder {" + std::string(name) +
                             "} (expected {body}, {timestamp}, {header:NAME}, {url} or "
                             "{form_params})");
    }
  }
  return parts;
}

}  // namespace firebreak
