#include "ingress/slack_source.h"

#include <charconv>
#include <optional>
#include <string>

#include "ingress/form.h"
#include "ingress/json_body.h"

namespace firebreak {
namespace {

constexpr std::string_view kTimestampHeader = "X-Slack-Request-Timestamp";
constexpr std::string_view kSignatureHeader = "X-Slack-Signature";
constexpr std::string_view kSignaturePrefix = "v0=";

Status ValidateSlackConfig(const SourceConfig& config) {
  if (!config.secret.has_value() || config.secret->value.empty()) {
    return InvalidArgument("source \"" + config.name +
                           "\": signing secret is missing or not resolved");
  }
  return Status::Ok();
}

// Digits only: Slack sends plain Unix seconds, and a sign or blanks are not its format.
bool ParseUnixSeconds(std::string_view text, int64_t& seconds) {
  if (text.empty() || text.front() < '0' || text.front() > '9') return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  return error == std::errc() && end == text.data() + text.size();
}

// The retry headers describe the delivery; handlers may want to know about retries.
std::string RetryHeadersJson(const IngressRequest& request) {
  std::string json = "{";
  for (std::string_view name : {"x-slack-retry-num", "x-slack-retry-reason"}) {
    std::string_view value = request.Header(name);
    if (value.empty()) continue;
    if (json.size() > 1) json.push_back(',');
    AppendJsonString(json, name);
    json.push_back(':');
    AppendJsonString(json, value);
  }
  json.push_back('}');
  return json;
}

// Where Slack names the workspace, channel and user. Events API callbacks: team_id, and
// event.channel / event.user (ids, or objects in channel_created, user_change, ...).
const SearchKeyPointers& SlackEventKeys() {
  static const SearchKeyPointers keys({{"slack.team", "/team_id"},
                                       {"slack.channel", "/event/channel", true},
                                       {"slack.user", "/event/user", true}});
  return keys;
}

// Interactivity payloads (the form's `payload` field): team, channel and user objects.
const SearchKeyPointers& SlackInteractionKeys() {
  static const SearchKeyPointers keys({{"slack.team", "/team", true},
                                       {"slack.channel", "/channel", true},
                                       {"slack.user", "/user", true}});
  return keys;
}

// Slash commands: the form's fields.
const SearchKeyPointers& SlackCommandKeys() {
  static const SearchKeyPointers keys({{"slack.team", "/team_id"},
                                       {"slack.channel", "/channel_id"},
                                       {"slack.user", "/user_id"}});
  return keys;
}

}  // namespace

Result<std::unique_ptr<Source>> SlackSource::Create(const SourceConfig& config,
                                                    const Clock& clock) {
  if (Status status = ValidateSlackConfig(config); !status.ok()) return status;
  Result<HmacKey> key = HmacKey::Create(HmacAlgorithm::kSha256, config.secret->value);
  if (!key.ok()) return key.status();
  return std::unique_ptr<Source>(new SlackSource(config, clock, std::move(key).value()));
}

SourceDecision SlackSource::Handle(const IngressRequest& request) const {
  if (request.Method() != "POST") return SourceDecision::Reject(405, "method not allowed");
  std::string_view timestamp = request.Header(kTimestampHeader);
  std::string_view signature = request.Header(kSignatureHeader);
  if (timestamp.empty() || signature.empty()) {
    return SourceDecision::Reject(401, "missing signature");
  }
  int64_t sent_at = 0;
  const int64_t now = clock_.NowSeconds();
  if (!ParseUnixSeconds(timestamp, sent_at) || sent_at > now + kMaxClockSkewSeconds ||
      sent_at < now - kMaxClockSkewSeconds) {
    return SourceDecision::Reject(401, "stale timestamp");
  }
  std::string_view body = request.Body();
  if (!SignatureMatches(signature, kSignaturePrefix, key_.Hex({"v0:", timestamp, ":", body}))) {
    return SourceDecision::Reject(401, "invalid signature");
  }
  if (body.empty()) return SourceDecision::Reject(400, "empty body");

  SourceDecision decision;
  decision.kind = SourceDecision::Kind::kEnqueue;
  decision.status = 200;
  std::string_view content_type = request.Header("Content-Type");
  if (MediaTypeIs(content_type, "application/json")) {
    decision.headers_json = RetryHeadersJson(request);
    return HandleJson(body, std::move(decision));
  }
  if (IsFormContentType(content_type)) {
    decision.headers_json = RetryHeadersJson(request);
    return HandleForm(body, std::move(decision));
  }
  return SourceDecision::Reject(415, "unsupported content type");
}

SourceDecision SlackSource::HandleJson(std::string_view body, SourceDecision decision) const {
  Result<JsonBody> parsed = ParseJsonBody(body);
  if (!parsed.ok() || !parsed->IsObject()) return SourceDecision::Reject(400, "malformed JSON");
  const JsonBody& event = *parsed;

  if (event.StringAt("/type") == "url_verification") {
    std::optional<std::string_view> challenge = event.StringAt("/challenge");
    if (!challenge.has_value()) return SourceDecision::Reject(400, "missing challenge");
    SourceDecision answer;
    answer.kind = SourceDecision::Kind::kRespond;
    answer.status = 200;
    answer.body = "{\"challenge\":";
    AppendJsonString(answer.body, *challenge);
    answer.body.push_back('}');
    return answer;
  }

  const std::string& name = config().name;
  std::optional<std::string_view> event_id = event.StringAt("/event_id");
  if (event_id.has_value() && !event_id->empty()) {
    decision.dedupe_keys.push_back(name + ":" + std::string(*event_id));
  } else {
    decision.dedupe_keys.push_back(name + ":sha256:" + Sha256Hex(body));
  }
  // Slack has delivered one message under two event_ids; the client's id catches that.
  std::optional<std::string_view> message_id = event.StringAt("/event/client_msg_id");
  if (message_id.has_value() && !message_id->empty()) {
    decision.dedupe_keys.push_back(name + ":msg:" + std::string(*message_id));
  }
  decision.payload_json.assign(body);
  decision.search_keys = SearchKeysOf(event.root(), SlackEventKeys());
  return decision;
}

SourceDecision SlackSource::HandleForm(std::string_view body, SourceDecision decision) const {
  Result<DecodedForm> form = DecodedForm::Decode(body);
  if (!form.ok()) return SourceDecision::Reject(400, "malformed form body");
  std::optional<JsonBody> payload;  // interactivity's `payload` field, parsed
  Result<std::string> object = FormToJsonObject(*form, "payload", &payload);
  if (!object.ok()) return SourceDecision::Reject(400, "malformed form body");
  decision.payload_json = std::move(object).value();
  SearchKeys keys;
  SlackCommandKeys().AddFrom(*form, keys);
  std::optional<simdjson::dom::element> payload_root;
  if (payload) {
    payload_root = payload->root();
    SlackInteractionKeys().AddFrom(*payload_root, keys);
  }
  search_key_pointers().AddFrom(*form, keys, "payload", payload_root ? &*payload_root : nullptr);
  decision.search_keys = keys.Take();
  decision.dedupe_keys.push_back(config().name + ":sha256:" + Sha256Hex(body));
  // A JSON answer would be shown in the channel as a message; an empty 200 is the ack.
  decision.empty_body_on_success = true;
  return decision;
}

Result<SignedRequest> SlackSource::Sign(const SourceConfig& config, std::string_view body,
                                        int64_t now_seconds) {
  if (Status status = ValidateSlackConfig(config); !status.ok()) return status;
  Result<HmacKey> key = HmacKey::Create(HmacAlgorithm::kSha256, config.secret->value);
  if (!key.ok()) return key.status();
  const std::string timestamp = std::to_string(now_seconds);
  std::string hex = key->Hex({"v0:", timestamp, ":", body});
  if (hex.empty()) return Internal("HMAC computation failed");

  SignedRequest signed_request;
  signed_request.headers.emplace_back(std::string(kTimestampHeader), timestamp);
  signed_request.headers.emplace_back(std::string(kSignatureHeader),
                                      std::string(kSignaturePrefix) + hex);
  const size_t first = body.find_first_not_of(" \t\r\n");
  signed_request.content_type = first != std::string_view::npos && body[first] == '{'
                                    ? "application/json"
                                    : "application/x-www-form-urlencoded";
  return signed_request;
}

}  // namespace firebreak
