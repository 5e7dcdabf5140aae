// Webhook providers as data: each preset (kind = "stripe", ...) is a SignatureScheme plus
// the provider's dedupe keys, envelope headers and handshake, so a source is one line of
// config. Also the parser of a scheme's signed-string template, shared by the config's
// validation and the engine (ingress/scheme_source.h). docs/webhook-schemes.md.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "config/config.h"

namespace firebreak {

// A request answered at the ingress, without a job, once its signature is valid.
enum class Handshake {
  kNone,
  kTwitch,  // Twitch-Eventsub-Message-Type: webhook_callback_verification → the challenge
  kZoom,    // event endpoint.url_validation → plainToken + encryptedToken
  kLine,    // the console's "Verify" sends an empty events array → 200
};

struct WebhookPreset {
  std::string name;     // the kind, e.g. "stripe"
  std::string doc_url;  // the provider's own description of the scheme
  SignatureScheme scheme;
  std::chrono::milliseconds tolerance{300'000};
  std::vector<std::string> dedupe;   // as SourceConfig::dedupe
  std::vector<std::string> headers;  // copied into the envelope
  // Default SourceConfig::search_keys: where the provider's payload names its customer,
  // user or account.
  std::vector<std::string> search_keys;
  Handshake handshake = Handshake::kNone;
  // Twilio's JSON deliveries sign only the URL, whose query parameter of this name holds
  // the body's hex SHA-256; "" = none.
  std::string body_sha256_param;

  // For `firebreak send`: a sample delivery. In these, "{id}" is a fresh random id,
  // "{now}" Unix seconds and "{now_ms}" Unix milliseconds.
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> sample_headers;
  std::string sample_body;
};

// Every preset, in the order the docs list them.
const std::vector<WebhookPreset>& WebhookPresets();
// nullptr when `name` is not a preset.
const WebhookPreset* FindWebhookPreset(std::string_view name);

// One piece of a signed-string template.
struct TemplatePart {
  enum class Kind { kLiteral, kBody, kTimestamp, kHeader, kUrl, kFormParams };
  Kind kind = Kind::kLiteral;
  std::string text;  // kLiteral: the text; kHeader: the header name
};

// Parses "{header:webhook-id}.{timestamp}.{body}": {body}, {timestamp}, {header:NAME},
// {url}, {form_params}; "{{" and "}}" are literal braces. kInvalidArgument naming the
// first bad placeholder.
Result<std::vector<TemplatePart>> ParseSignedTemplate(std::string_view text);

}  // namespace firebreak
