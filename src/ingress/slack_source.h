// kind = "slack": the Events API (JSON), slash commands and interactivity (form-encoded),
// all signed per https://api.slack.com/authentication/verifying-requests-from-slack:
// X-Slack-Signature = "v0=" + hex HMAC-SHA256(signing secret, "v0:" + timestamp + ":" + body).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "ingress/hmac_key.h"
#include "ingress/source.h"

namespace firebreak {

class SlackSource final : public Source {
 public:
  // Requests whose X-Slack-Request-Timestamp is further than this from now are replays.
  static constexpr int64_t kMaxClockSkewSeconds = 300;

  // `clock` must outlive the source. kInvalidArgument for a missing/unresolved secret.
  static Result<std::unique_ptr<Source>> Create(const SourceConfig& config, const Clock& clock);

  // POST only (405). The timestamp and signature headers are checked (401) before the
  // body is parsed. JSON: url_verification is answered with its challenge and not
  // enqueued; other events are enqueued with dedupe keys "<name>:<event_id>" (or
  // "<name>:sha256:<hex body>") and "<name>:msg:<event.client_msg_id>" when present.
  // Form (slash commands, interactivity): an object of the fields, `payload` embedded as
  // JSON; dedupe on the body hash; answered with an empty 200. Other types → 415.
  SourceDecision Handle(const IngressRequest& request) const override;

  // The headers Slack would send for `body` at `now_seconds`; the content type is
  // application/json for a body starting with '{', else form-encoded.
  static Result<SignedRequest> Sign(const SourceConfig& config, std::string_view body,
                                    int64_t now_seconds);

 private:
  SlackSource(const SourceConfig& config, const Clock& clock, HmacKey key)
      : Source(config), clock_(clock), key_(std::move(key)) {}

  SourceDecision HandleJson(std::string_view body, SourceDecision decision) const;
  SourceDecision HandleForm(std::string_view body, SourceDecision decision) const;

  const Clock& clock_;
  HmacKey key_;
};

}  // namespace firebreak
