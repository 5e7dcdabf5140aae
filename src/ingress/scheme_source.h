// kind = "hmac" and every provider preset (stripe, standard-webhooks, twilio, ...): one
// engine that checks a request against a declarative SignatureScheme (config.h) and turns
// it into a job. docs/webhook-schemes.md describes the scheme and the presets.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "config/webhook_presets.h"
#include "ingress/hmac_key.h"
#include "ingress/json_body.h"
#include "ingress/source.h"

namespace firebreak {

class SchemeSource final : public Source {
 public:
  // kInvalidArgument for a missing/unresolved secret, a secret that does not decode as
  // the scheme says, an unknown algorithm or a bad template.
  static Result<std::unique_ptr<Source>> Create(const SourceConfig& config, const Clock& clock);

  // POST only (405). Then, before the body is looked at (except where the scheme keeps
  // its timestamp or token in the body):
  //  - the signature (401 "missing signature" / "invalid signature") or token (401
  //    "missing token" / "invalid token"), against the secret and the previous secret;
  //  - the timestamp, if the scheme has one (401 "missing timestamp" / "stale timestamp");
  // then the preset's handshake, if any, is answered. The payload is the JSON body, or a
  // form body as a JSON object of its fields (400 when malformed). Dedupe key: the first
  // present of config.dedupe, "<name>:<value>" or "<name>:sha256:<hex of body>".
  SourceDecision Handle(const IngressRequest& request) const override;

  // The headers (and, for a token in the body, the body) a provider would send for
  // `body` at `now_seconds`; `url` is the full URL it is posted to (for schemes that sign
  // it). Fresh ids for every {header:NAME} of the template that `body`'s sample headers
  // do not give.
  static Result<SignedRequest> Sign(const SourceConfig& config, std::string_view body,
                                    int64_t now_seconds, std::string_view url);

 private:
  SchemeSource(const SourceConfig& config, const Clock& clock)
      : Source(config), clock_(clock) {}

  bool TokenMatches(std::string_view token) const;
  // The answer to the preset's handshake, or nullopt when `request` is not one (enqueue it).
  std::optional<SourceDecision> AnswerHandshake(const IngressRequest& request,
                                                const JsonBody& document) const;

  const Clock& clock_;
  std::vector<TemplatePart> template_;
  std::vector<HmacKey> keys_;               // kHmac: the secret, then the previous one
  std::vector<std::string> token_digests_;  // kToken: SHA-256 of each accepted token
  bool signs_url_ = false;
  bool needs_document_ = false;  // a handshake, dedupe pointer or token field reads the body
};

// A preset's sample text with "{id}" a fresh random id (each occurrence its own),
// "{now}" `now_seconds` and "{now_ms}" the same in milliseconds.
std::string ExpandSample(std::string_view text, int64_t now_seconds);

// Unix seconds of an RFC 3339 date-time ("2019-11-16T10:11:12.634234626Z", or with a
// "+01:00" offset); false when malformed. The fraction is dropped.
bool ParseRfc3339(std::string_view text, int64_t& seconds);
std::string FormatRfc3339(int64_t seconds);

}  // namespace firebreak
