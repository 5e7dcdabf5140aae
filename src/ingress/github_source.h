// kind = "github": repository/organization/app webhooks, signed per
// https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries:
// X-Hub-Signature-256 = "sha256=" + hex HMAC-SHA256(webhook secret, raw body).
#pragma once

#include <memory>
#include <string_view>

#include "common/status.h"
#include "ingress/hmac_key.h"
#include "ingress/source.h"

namespace firebreak {

class GithubSource final : public Source {
 public:
  // kInvalidArgument for a missing/unresolved secret.
  static Result<std::unique_ptr<Source>> Create(const SourceConfig& config);

  // POST only (405). X-Hub-Signature-256 is required (401 "missing signature") and must
  // match (401 "invalid signature") before anything else is looked at. X-GitHub-Event is
  // required (400). The body is the event as JSON, or — for a hook whose content type is
  // form-encoded — a form whose `payload` field holds that JSON (400 "invalid JSON body"
  // when it is not a JSON object). `ping` is answered {"ok":true,"ping":true} and not
  // enqueued; any other event is enqueued with the JSON as payload, dedupe key
  // "<name>:<X-GitHub-Delivery>" (400 when that header is missing) and headers_json
  // holding the x-github-event, x-github-delivery and x-github-hook-id headers present.
  SourceDecision Handle(const IngressRequest& request) const override;

  // The headers GitHub would send for `body`: X-Hub-Signature-256, X-GitHub-Event
  // ("ping" when `body` is a JSON object with a "zen" member, as GitHub's ping is, else
  // "push") and a fresh random X-GitHub-Delivery GUID; content type application/json.
  // kInvalidArgument as for Create.
  static Result<SignedRequest> Sign(const SourceConfig& config, std::string_view body);

 private:
  GithubSource(const SourceConfig& config, HmacKey key) : Source(config), key_(std::move(key)) {}

  HmacKey key_;
};

}  // namespace firebreak
