// kind = "telegram": Bot API webhooks. Telegram does not sign updates; setWebhook's
// `secret_token` (https://core.telegram.org/bots/api#setwebhook) is sent back verbatim in
// the X-Telegram-Bot-Api-Secret-Token header of every delivery, and that is what proves it.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "ingress/source.h"

namespace firebreak {

class TelegramSource final : public Source {
 public:
  // kInvalidArgument, naming the source (never quoting the secret), for a missing or
  // unresolved secret or one Telegram would refuse as a secret_token: 1-256 characters of
  // A-Z, a-z, 0-9, '_' and '-'.
  static Result<std::unique_ptr<Source>> Create(const SourceConfig& config);

  // POST only (405). X-Telegram-Bot-Api-Secret-Token is required (401 "missing secret
  // token") and must equal the secret (401 "invalid secret token", compared in constant
  // time) before the body is parsed. The body is an Update: a JSON object (400 "invalid
  // JSON body") with an integer `update_id` (400 when missing or not an integer). Enqueued
  // with the body as payload, dedupe key "<name>:<update_id>" and headers_json "{}".
  SourceDecision Handle(const IngressRequest& request) const override;

  // The secret-token header Telegram would send; content type application/json.
  // kInvalidArgument as for Create.
  static Result<SignedRequest> Sign(const SourceConfig& config, std::string_view body);

 private:
  TelegramSource(const SourceConfig& config, std::string secret_digest)
      : Source(config), secret_digest_(std::move(secret_digest)) {}

  // SHA-256 (hex) of the secret. Comparing digests keeps the comparison constant-time
  // in the secret's length too, which a plain comparison of unequal lengths would leak.
  std::string secret_digest_;
};

}  // namespace firebreak
