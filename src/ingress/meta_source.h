// kind = "meta": WhatsApp Cloud API, Messenger and Instagram webhooks (Meta Graph API).
//   - GET subscription handshake: hub.mode=subscribe and hub.verify_token equal to the
//     configured verify_token → 200 with hub.challenge as the body; else 403.
//   - POST: X-Hub-Signature-256 = "sha256=" + HMAC-SHA256(app secret, raw body).
//     Meta batches many events into one delivery and retries the whole batch for days,
//     so each message becomes its own job with its own dedupe key: a retried batch
//     only stores what it did not store before.
#pragma once

#include <memory>
#include <string_view>

#include "common/status.h"
#include "ingress/hmac_key.h"
#include "ingress/source.h"

namespace firebreak {

class MetaSource final : public Source {
 public:
  // kInvalidArgument for a missing/unresolved secret or verify_token.
  static Result<std::unique_ptr<Source>> Create(const SourceConfig& config);

  // Jobs of a POST (one each, dedupe "<name>:<key>"):
  //   WhatsApp  entry[].changes[].value.messages[]  key = message id ("wamid...")
  //             entry[].changes[].value.statuses[]  key = status id + ":" + status
  //   Messenger/Instagram entry[].messaging[]       key = message.mid, postback.mid,
  //             reaction.mid, or "sha256:<hash of the event>"
  //   any other change                              key = "sha256:<hash of the change>"
  // Each payload: {"object","entry_id","field" (changes only),"metadata","contacts"
  // (WhatsApp), and the one "message"/"status"/"messaging"/"change"}.
  SourceDecision Handle(const IngressRequest& request) const override;

  // X-Hub-Signature-256 for `body`; content type application/json.
  static Result<SignedRequest> Sign(const SourceConfig& config, std::string_view body);

 private:
  MetaSource(const SourceConfig& config, HmacKey key) : Source(config), key_(std::move(key)) {}
  SourceDecision Handshake(const IngressRequest& request) const;

  HmacKey key_;
};

}  // namespace firebreak
