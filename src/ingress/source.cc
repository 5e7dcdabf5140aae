#include "ingress/source.h"

#include "common/http_util.h"

#include "ingress/discord_source.h"
#include "ingress/github_source.h"
#include "ingress/json_body.h"
#include "ingress/meta_source.h"
#include "ingress/scheme_source.h"
#include "ingress/slack_source.h"
#include "ingress/telegram_source.h"

namespace firebreak {
namespace {

Status UnsupportedKind(SourceKind kind) {
  return InvalidArgument(std::string("source kind \"") + SourceKindName(kind) +
                         "\" is not supported by this build yet");
}

}  // namespace

SourceDecision SourceDecision::Reject(int status, std::string error) {
  SourceDecision decision;
  decision.kind = Kind::kRespond;
  decision.status = status;
  decision.body = ErrorJson(error);
  decision.error = std::move(error);
  return decision;
}

Result<std::unique_ptr<Source>> MakeSource(const SourceConfig& config, const Clock& clock) {
  switch (config.kind) {
    case SourceKind::kSlack:
      return SlackSource::Create(config, clock);
    case SourceKind::kHmac:  // and the presets
      return SchemeSource::Create(config, clock);
    case SourceKind::kMeta:
      return MetaSource::Create(config);
    case SourceKind::kDiscord:
      return DiscordSource::Create(config, clock);
    case SourceKind::kTelegram:
      return TelegramSource::Create(config);
    case SourceKind::kGithub:
      return GithubSource::Create(config);
  }
  return UnsupportedKind(config.kind);
}

Result<SignedRequest> SignRequest(const SourceConfig& config, std::string_view body,
                                  int64_t now_seconds, std::string_view url) {
  switch (config.kind) {
    case SourceKind::kSlack:
      return SlackSource::Sign(config, body, now_seconds);
    case SourceKind::kHmac:
      return SchemeSource::Sign(config, body, now_seconds, url);
    case SourceKind::kMeta:
      return MetaSource::Sign(config, body);
    case SourceKind::kDiscord:
      if (!config.signing_key || config.signing_key->value.empty()) {
        return InvalidArgument("source \"" + config.name +
                               "\": set signing_key = { file = ... } (the hex Ed25519 private "
                               "key seed) to sign Discord interactions");
      }
      return DiscordSource::Sign(config, config.signing_key->value, body, now_seconds);
    case SourceKind::kTelegram:
      return TelegramSource::Sign(config, body);
    case SourceKind::kGithub:
      return GithubSource::Sign(config, body);
  }
  return UnsupportedKind(config.kind);
}

void AppendEnvelopeHeaders(const IngressRequest& request, const SourceConfig& config,
                           std::string& headers_json) {
  if (config.headers.empty()) return;
  if (headers_json.size() < 2 || headers_json.back() != '}') headers_json = "{}";
  headers_json.pop_back();
  for (const std::string& name : config.headers) {
    std::string_view value = request.Header(name);
    if (value.empty()) continue;
    std::string quoted;
    AppendJsonString(quoted, AsciiLower(name));
    if (headers_json.find(quoted + ":") != std::string::npos) continue;
    if (headers_json.size() > 1) headers_json.push_back(',');
    headers_json += quoted;
    headers_json.push_back(':');
    AppendJsonString(headers_json, value);
  }
  headers_json.push_back('}');
}

}  // namespace firebreak
