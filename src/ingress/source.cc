#include "ingress/source.h"

#include <cstdint>

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

std::vector<std::string> Source::SearchKeysOf(simdjson::dom::element payload,
                                              const SearchKeyPointers& built_in) const {
  SearchKeys keys;
  built_in.AddFrom(payload, keys);
  search_key_pointers_.AddFrom(payload, keys);
  return keys.Take();
}

EnvelopeHeaders::EnvelopeHeaders(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    Entry entry{name, ""};
    AppendJsonString(entry.key, AsciiLower(name));
    entry.key.push_back(':');
    entries_.push_back(std::move(entry));
  }
}

void EnvelopeHeaders::AppendTo(const IngressRequest& request, std::string& headers_json) const {
  if (entries_.empty()) return;
  if (headers_json.size() < 2 || headers_json.back() != '}') headers_json = "{}";
  // Members the source put there itself (the object's text before this adds any); an
  // empty object (most kinds) needs no search.
  const size_t own_size = headers_json.size() > 2 ? headers_json.size() - 1 : 0;
  headers_json.pop_back();
  // One pass over the request's headers (a handful) rather than a lookup per listed name:
  // most names differ in length from every entry, which rejects them at once.
  uint64_t added = 0;  // bit i: entry i is in the object (a repeated header counts once)
  request.ForEachHeader([&](std::string_view name, std::string_view value) {
    for (size_t i = 0; i < entries_.size() && i < kMaxEntries; ++i) {
      const Entry& entry = entries_[i];
      if (name.size() != entry.name.size() || (added >> i & 1) != 0 ||
          !EqualsIgnoreCase(name, entry.name)) {
        continue;
      }
      added |= uint64_t{1} << i;
      if (value.empty() || (own_size > 0 && std::string_view(headers_json)
                                                    .substr(0, own_size)
                                                    .find(entry.key) != std::string_view::npos)) {
        return;
      }
      if (headers_json.size() > 1) headers_json.push_back(',');
      headers_json += entry.key;
      AppendJsonString(headers_json, value);
      return;
    }
  });
  headers_json.push_back('}');
}

}  // namespace firebreak
