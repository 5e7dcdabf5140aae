#include "ingress/telegram_source.h"

#include <cstdint>
#include <string>
#include <vector>

#include "common/crypto.h"
#include "ingress/json_body.h"

namespace firebreak {
namespace {

constexpr std::string_view kSecretTokenHeader = "X-Telegram-Bot-Api-Secret-Token";
constexpr size_t kMaxSecretTokenLength = 256;

bool IsSecretTokenCharacter(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

Status ValidateTelegramConfig(const SourceConfig& config) {
  const std::string source = "source \"" + config.name + "\": ";
  if (!config.secret.has_value() || config.secret->value.empty()) {
    return InvalidArgument(source + "secret token is missing or not resolved");
  }
  const std::string& secret = config.secret->value;
  bool valid = secret.size() <= kMaxSecretTokenLength;
  for (char c : secret) valid = valid && IsSecretTokenCharacter(c);
  if (!valid) {
    // Telegram's setWebhook refuses any other secret_token, so no genuine update could
    // ever carry it; the message says what is wrong without showing the value.
    return InvalidArgument(source +
                           "secret token must be 1-256 characters of A-Z, a-z, 0-9, _ and - "
                           "(Telegram's setWebhook secret_token)");
  }
  return Status::Ok();
}

// Read in the update's one object member, whichever kind it is (message, edited_message,
// channel_post, callback_query, my_chat_member, ...): its chat, or for a callback query
// the chat of the message its button was on; its sender (from), or a poll answer's or
// reaction's user. Not callback_query.message.from: that is the bot.
const SearchKeyPointers& TelegramKeys() {
  static const SearchKeyPointers keys({{"telegram.chat", "/chat/id"},
                                       {"telegram.chat", "/message/chat/id"},
                                       {"telegram.user", "/from/id"},
                                       {"telegram.user", "/user/id"}});
  return keys;
}

std::vector<std::string> UpdateSearchKeys(simdjson::dom::element update,
                                          const SearchKeyPointers& configured) {
  SearchKeys keys;
  simdjson::dom::object members;
  if (update.get(members) == simdjson::SUCCESS) {
    for (auto [field, value] : members) {
      if (value.type() == simdjson::dom::element_type::OBJECT) TelegramKeys().AddFrom(value, keys);
    }
  }
  configured.AddFrom(update, keys);
  return keys.Take();
}

}  // namespace

Result<std::unique_ptr<Source>> TelegramSource::Create(const SourceConfig& config) {
  if (Status status = ValidateTelegramConfig(config); !status.ok()) return status;
  return std::unique_ptr<Source>(new TelegramSource(config, Sha256Hex(config.secret->value)));
}

SourceDecision TelegramSource::Handle(const IngressRequest& request) const {
  if (request.Method() != "POST") return SourceDecision::Reject(405, "method not allowed");
  std::string_view token = request.Header(kSecretTokenHeader);
  if (token.empty()) return SourceDecision::Reject(401, "missing secret token");
  if (!ConstantTimeEquals(Sha256Hex(token), secret_digest_)) {
    return SourceDecision::Reject(401, "invalid secret token");
  }

  std::string_view body = request.Body();
  Result<JsonBody> parsed = ParseJsonBody(body);
  if (!parsed.ok() || !parsed->IsObject()) return SourceDecision::Reject(400, "invalid JSON body");
  simdjson::dom::element update_id;
  if (parsed->root().at_key("update_id").get(update_id) != simdjson::SUCCESS) {
    return SourceDecision::Reject(400, "missing update_id");
  }
  // simdjson keeps integers above INT64_MAX as uint64; a float, string or anything else
  // fails both reads.
  std::string key_text;
  int64_t signed_id = 0;
  uint64_t unsigned_id = 0;
  if (update_id.get(signed_id) == simdjson::SUCCESS) {
    key_text = std::to_string(signed_id);
  } else if (update_id.get(unsigned_id) == simdjson::SUCCESS) {
    key_text = std::to_string(unsigned_id);
  } else {
    return SourceDecision::Reject(400, "update_id is not an integer");
  }

  SourceDecision decision;
  decision.kind = SourceDecision::Kind::kEnqueue;
  decision.status = 200;
  decision.dedupe_keys.push_back(config().name + ":" + key_text);
  decision.payload_json.assign(body);
  decision.headers_json = "{}";
  decision.search_keys = UpdateSearchKeys(parsed->root(), search_key_pointers());
  return decision;
}

// Telegram's proof does not depend on the body.
Result<SignedRequest> TelegramSource::Sign(const SourceConfig& config, std::string_view /*body*/) {
  if (Status status = ValidateTelegramConfig(config); !status.ok()) return status;
  SignedRequest signed_request;
  signed_request.headers.emplace_back(std::string(kSecretTokenHeader), config.secret->value);
  signed_request.content_type = "application/json";
  return signed_request;
}

}  // namespace firebreak
