// A webhook source: verifies one platform's requests and turns each into a job
// (or an immediate answer such as Slack's url_verification). One file per platform.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/json_string.h"
#include "common/status.h"
#include "config/config.h"
#include "ingress/search_keys.h"

namespace firebreak {

// Read-only view of an incoming request. Header lookup is case-insensitive;
// a missing header reads as "".
class IngressRequest {
 public:
  virtual ~IngressRequest() = default;
  virtual std::string_view Method() const = 0;  // "POST", "GET"
  virtual std::string_view Target() const = 0;  // path and query, e.g. "/hooks/slack?x=1"
  virtual std::string_view Header(std::string_view name) const = 0;
  // Every header in arrival order (names as sent).
  virtual void ForEachHeader(
      const std::function<void(std::string_view name, std::string_view value)>& visit) const = 0;
  virtual std::string_view Body() const = 0;
};

// One job a request asks for (a batched delivery asks for several).
struct SourceJob {
  std::vector<std::string> dedupe_keys;  // already prefixed with "<source name>:"
  std::string payload_json;              // valid JSON value
  std::string headers_json;              // JSON object, lower-case names
  std::vector<std::string> search_keys;  // "name:value", bounded (ingress/search_keys.h)
};

// What the source decided. For kEnqueue the server stores the job (dedupe keys
// and all) and then answers `status`/`body`; for kRespond it answers at once
// and stores nothing.
struct SourceDecision {
  enum class Kind { kEnqueue, kRespond };
  Kind kind = Kind::kRespond;
  int status = 200;
  std::string content_type = "application/json";
  // kRespond: the whole answer body. kEnqueue: the answer body after a successful
  // store; "" means the server's default {"ok":true,"job":"<id>"}.
  std::string body;
  // For 4xx answers: the short reason, also logged (never a secret or signature).
  std::string error;
  // kEnqueue only.
  std::vector<std::string> dedupe_keys;  // already prefixed with "<source name>:"
  std::string payload_json;              // valid JSON value
  std::string headers_json;              // JSON object, lower-case names
  // What operators find the job by: the kind's own keys and the configured search_keys,
  // taken from the payload while the source holds it parsed.
  std::vector<std::string> search_keys;
  bool empty_body_on_success = false;    // e.g. Slack slash commands: 200 with no body
  // kEnqueue of a batched delivery (e.g. Meta): one job each, used instead of the three
  // fields above. The answer is 200 only once every job is stored or a duplicate; if
  // any cannot be stored it is 503 and the platform's retry of the whole batch finds
  // the stored ones as duplicates.
  std::vector<SourceJob> batch;

  static SourceDecision Reject(int status, std::string error);
};

// A source's envelope allow-list (config.headers), prepared once: each header's name and
// its JSON member key.
class EnvelopeHeaders {
 public:
  explicit EnvelopeHeaders(const std::vector<std::string>& names);
  bool empty() const { return entries_.empty(); }
  // Adds the listed headers present in `request` to `headers_json` (a JSON object),
  // lower-case, skipping names the object already has (a kind's own headers win).
  void AppendTo(const IngressRequest& request, std::string& headers_json) const;

 private:
  struct Entry {
    std::string name;
    std::string key;  // "\"x-shopify-topic\":"
  };
  static constexpr size_t kMaxEntries = 64;  // more are ignored (config allows far fewer)
  std::vector<Entry> entries_;
};

// Thread-safe: Handle is called concurrently from every ingress thread and must not
// block. It never throws on any input.
class Source {
 public:
  virtual ~Source() = default;
  virtual SourceDecision Handle(const IngressRequest& request) const = 0;
  const SourceConfig& config() const { return config_; }
  // What the server adds to every job's envelope headers after Handle.
  const EnvelopeHeaders& envelope_headers() const { return envelope_headers_; }

 protected:
  explicit Source(const SourceConfig& config)
      : config_(config),
        envelope_headers_(config.headers),
        search_key_pointers_(config.search_keys) {}

  // config.search_keys, prepared: each Handle adds their values to the job's own keys.
  const SearchKeyPointers& search_key_pointers() const { return search_key_pointers_; }
  // The kind's own keys (`built_in`) and the configured ones, read from `payload` (the
  // job's payload, parsed).
  std::vector<std::string> SearchKeysOf(simdjson::dom::element payload,
                                        const SearchKeyPointers& built_in) const;

 private:
  SourceConfig config_;
  EnvelopeHeaders envelope_headers_;
  SearchKeyPointers search_key_pointers_;
};

// Builds the source for config.kind. The config's secrets must be resolved.
// kInvalidArgument for kinds this build does not support yet.
Result<std::unique_ptr<Source>> MakeSource(const SourceConfig& config, const Clock& clock);

// Signs `body` exactly as the platform would, for `firebreak send` and tests.
// Returns the headers to add (name, value) — e.g. X-Slack-Signature and
// X-Slack-Request-Timestamp — and the content type to send.
struct SignedRequest {
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type;
  // Set when the platform would send another body (e.g. Mattermost's token is a body field).
  std::optional<std::string> body;
  // Set when the platform would post to another URL than `url` (e.g. Twilio's JSON
  // deliveries carry the body's hash in the query).
  std::string url;
};
// `url`: the full URL the request is posted to, for schemes that sign it.
Result<SignedRequest> SignRequest(const SourceConfig& config, std::string_view body,
                                  int64_t now_seconds, std::string_view url = {});


}  // namespace firebreak
