#include "ingress/github_source.h"

#include <optional>
#include <string>

#include "common/crypto.h"
#include "common/http_util.h"
#include "common/json_string.h"
#include "ingress/form.h"
#include "ingress/json_body.h"

namespace firebreak {
namespace {

constexpr std::string_view kSignatureHeader = "X-Hub-Signature-256";
constexpr std::string_view kSignaturePrefix = "sha256=";
constexpr std::string_view kEventHeader = "X-GitHub-Event";
constexpr std::string_view kDeliveryHeader = "X-GitHub-Delivery";
constexpr std::string_view kHookIdHeader = "X-GitHub-Hook-ID";

Status ValidateGithubConfig(const SourceConfig& config) {
  if (!config.secret.has_value() || config.secret->value.empty()) {
    return InvalidArgument("source \"" + config.name +
                           "\": webhook secret is missing or not resolved");
  }
  return Status::Ok();
}

// A form-encoded delivery is "payload=<url-encoded JSON>". Other fields are ignored; a
// repeated `payload` keeps its last value, as FormToJsonObject does. kInvalidArgument for
// a bad %-escape, kNotFound when there is no payload field.
Result<std::string> FormPayloadField(std::string_view body) {
  std::optional<std::string> payload;
  while (!body.empty()) {
    const size_t ampersand = body.find('&');
    std::string_view segment = body.substr(0, ampersand);
    body = ampersand == std::string_view::npos ? std::string_view() : body.substr(ampersand + 1);
    if (segment.empty()) continue;
    const size_t equals = segment.find('=');
    std::string key;
    if (!AppendDecodedFormComponent(segment.substr(0, equals), key).ok()) {
      return InvalidArgument("malformed form body");
    }
    if (key != "payload") continue;
    std::string value;
    if (equals != std::string_view::npos &&
        !AppendDecodedFormComponent(segment.substr(equals + 1), value).ok()) {
      return InvalidArgument("malformed form body");
    }
    payload = std::move(value);
  }
  if (!payload.has_value()) return NotFound("missing payload field");
  return std::move(*payload);
}

void AppendHeaderMember(std::string& json, std::string_view name, std::string_view value) {
  if (json.size() > 1) json.push_back(',');
  AppendJsonString(json, name);
  json.push_back(':');
  AppendJsonString(json, value);
}

// A random (version 4) GUID in GitHub's lower-case 8-4-4-4-12 form.
std::string RandomDeliveryGuid() {
  unsigned char bytes[16];
  RandomBytes(bytes, sizeof bytes);
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0F) | 0x40);
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3F) | 0x80);
  std::string hex = HexEncode(std::string_view(reinterpret_cast<const char*>(bytes), 16));
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

const SearchKeyPointers& GithubKeys() {
  static const SearchKeyPointers keys(
      {{"github.repo", "/repository/full_name"}, {"github.sender", "/sender/login"}});
  return keys;
}

}  // namespace

Result<std::unique_ptr<Source>> GithubSource::Create(const SourceConfig& config) {
  if (Status status = ValidateGithubConfig(config); !status.ok()) return status;
  Result<HmacKey> key = HmacKey::Create(HmacAlgorithm::kSha256, config.secret->value);
  if (!key.ok()) return key.status();
  return std::unique_ptr<Source>(new GithubSource(config, std::move(key).value()));
}

SourceDecision GithubSource::Handle(const IngressRequest& request) const {
  if (request.Method() != "POST") return SourceDecision::Reject(405, "method not allowed");
  std::string_view signature = request.Header(kSignatureHeader);
  if (signature.empty()) return SourceDecision::Reject(401, "missing signature");
  std::string_view body = request.Body();
  if (!SignatureMatches(signature, kSignaturePrefix, key_.Hex({body}))) {
    return SourceDecision::Reject(401, "invalid signature");
  }

  std::string_view event = request.Header(kEventHeader);
  if (event.empty()) return SourceDecision::Reject(400, "missing X-GitHub-Event header");
  if (!IsVisibleAscii(event)) return SourceDecision::Reject(400, "malformed X-GitHub-Event header");

  // The JSON text the job carries: the body itself, or the form's payload field decoded.
  std::string form_payload;
  std::string_view json_text = body;
  if (IsFormContentType(request.Header("Content-Type"))) {
    Result<std::string> field = FormPayloadField(body);
    if (!field.ok()) return SourceDecision::Reject(400, field.status().message());
    form_payload = std::move(field).value();
    json_text = form_payload;
  }
  Result<JsonBody> parsed = ParseJsonBody(json_text);
  if (!parsed.ok() || !parsed->IsObject()) return SourceDecision::Reject(400, "invalid JSON body");

  if (event == "ping") {
    SourceDecision answer;
    answer.kind = SourceDecision::Kind::kRespond;
    answer.status = 200;
    answer.body = R"({"ok":true,"ping":true})";
    return answer;
  }

  std::string_view delivery = request.Header(kDeliveryHeader);
  if (delivery.empty()) return SourceDecision::Reject(400, "missing X-GitHub-Delivery header");
  if (!IsVisibleAscii(delivery)) {
    return SourceDecision::Reject(400, "malformed X-GitHub-Delivery header");
  }
  std::string_view hook_id = request.Header(kHookIdHeader);
  if (!hook_id.empty() && !IsVisibleAscii(hook_id)) {
    return SourceDecision::Reject(400, "malformed X-GitHub-Hook-ID header");
  }

  SourceDecision decision;
  decision.kind = SourceDecision::Kind::kEnqueue;
  decision.status = 200;
  decision.dedupe_keys.push_back(config().name + ":" + std::string(delivery));
  decision.payload_json.assign(json_text);
  decision.headers_json = "{";
  AppendHeaderMember(decision.headers_json, "x-github-event", event);
  AppendHeaderMember(decision.headers_json, "x-github-delivery", delivery);
  if (!hook_id.empty()) AppendHeaderMember(decision.headers_json, "x-github-hook-id", hook_id);
  decision.headers_json.push_back('}');
  SearchKeys keys(SearchKeysOf(parsed->root(), GithubKeys()));
  keys.Add("github.delivery", delivery);
  decision.search_keys = keys.Take();
  return decision;
}

Result<SignedRequest> GithubSource::Sign(const SourceConfig& config, std::string_view body) {
  if (Status status = ValidateGithubConfig(config); !status.ok()) return status;
  Result<HmacKey> key = HmacKey::Create(HmacAlgorithm::kSha256, config.secret->value);
  if (!key.ok()) return key.status();
  std::string hex = key->Hex({body});
  if (hex.empty()) return Internal("HMAC computation failed");

  // The event GitHub would name, from the payload's top-level members: "zen" only in a
  // ping, "issue" in issues (with "comment": issue_comment), "pull_request" in
  // pull_request; anything else is sent as a push.
  std::string event = "push";
  if (Result<JsonBody> parsed = ParseJsonBody(body); parsed.ok() && parsed->IsObject()) {
    auto has = [&](const char* member) {
      return parsed->root().at_key(member).error() == simdjson::SUCCESS;
    };
    if (has("zen")) {
      event = "ping";
    } else if (has("issue")) {
      event = has("comment") ? "issue_comment" : "issues";
    } else if (has("pull_request")) {
      event = "pull_request";
    }
  }

  SignedRequest signed_request;
  signed_request.headers.emplace_back(std::string(kSignatureHeader),
                                      std::string(kSignaturePrefix) + hex);
  signed_request.headers.emplace_back(std::string(kEventHeader), event);
  signed_request.headers.emplace_back(std::string(kDeliveryHeader), RandomDeliveryGuid());
  signed_request.content_type = "application/json";
  return signed_request;
}

}  // namespace firebreak
