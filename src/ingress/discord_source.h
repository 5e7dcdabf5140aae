// kind = "discord": interactions delivered to an "Interactions Endpoint URL", signed per
// https://discord.com/developers/docs/interactions/overview#setting-up-an-endpoint-validating-security-request-headers:
// X-Signature-Ed25519 = hex Ed25519 signature (RFC 8032) of X-Signature-Timestamp + body,
// verified with the application's public key (hex, from the developer portal).
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "ingress/source.h"

namespace firebreak {

// True if `signature` (64 raw bytes) is a valid Ed25519 signature of `message` under
// `public_key`. False for any other signature length or a null key. Thread-safe: `public_key`
// is only read, and each call uses its own EVP_MD_CTX.
bool VerifyEd25519(const EVP_PKEY* public_key, std::string_view message,
                   std::string_view signature);

// The lower-case hex public key of a hex Ed25519 private key: the 32-byte seed (64 hex
// characters) or libsodium's 64-byte seed + public key (128 hex, whose second half must
// match). kInvalidArgument otherwise; the message never quotes the key.
Result<std::string> DiscordPublicKeyHexFromPrivate(std::string_view private_key_hex);

class DiscordSource final : public Source {
 public:
  // Requests whose X-Signature-Timestamp is further than this from now are refused as
  // replays. Discord's docs name no window; 5 minutes is DESIGN §3's rule for every source.
  static constexpr int64_t kMaxClockSkewSeconds = 300;

  // `clock` must outlive the source. kInvalidArgument naming the source when public_key is
  // not 64 hex characters or not the encoding of a point on the Ed25519 curve.
  static Result<std::unique_ptr<Source>> Create(const SourceConfig& config, const Clock& clock);

  // POST only (405). X-Signature-Ed25519 and X-Signature-Timestamp are required (401
  // "missing signature"); the signature must verify (401 "invalid signature") and then the
  // timestamp (Unix seconds) must be within ±kMaxClockSkewSeconds (401 "stale timestamp"),
  // all before the body is parsed. The body must be a JSON object (400 "invalid JSON body")
  // with an integer `type` (400 "missing interaction type"). PING (type 1) is answered
  // {"type":1} and not stored. Any other interaction is enqueued (payload = body, headers
  // "{}", dedupe "<name>:<id>", 400 "missing interaction id" without a string `id`) and,
  // once stored, answered with a deferred response: {"type":6} (DEFERRED_UPDATE_MESSAGE)
  // for message components (type 3), else {"type":5} (DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE);
  // the handler answers later through the interaction's follow-up webhook.
  SourceDecision Handle(const IngressRequest& request) const override;

  // The headers Discord would send for `body` at `now_seconds`, signed with the hex
  // private key (as for DiscordPublicKeyHexFromPrivate); content type application/json.
  // kInvalidArgument for a malformed private key, or one whose public key is not
  // config.public_key when that is set (such requests could only be refused).
  static Result<SignedRequest> Sign(const SourceConfig& config, std::string_view private_key_hex,
                                    std::string_view body, int64_t now_seconds);

 private:
  DiscordSource(const SourceConfig& config, const Clock& clock,
                std::shared_ptr<const EVP_PKEY> public_key)
      : Source(config), clock_(clock), public_key_(std::move(public_key)) {}

  const Clock& clock_;
  std::shared_ptr<const EVP_PKEY> public_key_;  // never modified after Create
};

}  // namespace firebreak
