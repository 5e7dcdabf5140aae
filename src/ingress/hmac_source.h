// kind = "hmac": a generic webhook signed with an HMAC of the raw body in one header
// (configured name, prefix and algorithm), e.g. "X-Signature: sha256=<hex>". Also the
// keyed-HMAC helper the other HMAC-signed sources share.
#pragma once

#include <openssl/types.h>

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "common/crypto.h"
#include "common/status.h"
#include "ingress/source.h"

namespace firebreak {

// An HMAC key prepared once (key schedule done, algorithm fetched) and copied for each
// message, so signing skips OpenSSL's per-call algorithm lookup. Thread-safe: Hex only
// reads the prepared state.
class HmacKey {
 public:
  // kInvalidArgument for an empty key; kInternal if OpenSSL refuses the key.
  static Result<HmacKey> Create(HmacAlgorithm algorithm, std::string_view key);

  // Lower-case hex HMAC of the concatenation of `parts`; "" only if OpenSSL fails
  // (out of memory), which no signature equals.
  std::string Hex(std::initializer_list<std::string_view> parts) const;
  size_t hex_size() const { return hex_size_; }

 private:
  struct CtxFree {
    void operator()(EVP_MAC_CTX* ctx) const;
  };
  HmacKey(std::shared_ptr<EVP_MAC_CTX> keyed, size_t hex_size)
      : keyed_(std::move(keyed)), hex_size_(hex_size) {}

  std::shared_ptr<EVP_MAC_CTX> keyed_;  // never updated after Create; copied per message
  size_t hex_size_ = 0;
};

// True if `header_value` is `prefix` (ASCII case ignored; it is not secret) followed by
// `expected_hex` (lower-case) in either hex case, compared in constant time.
bool SignatureMatches(std::string_view header_value, std::string_view prefix,
                      std::string_view expected_hex);

class HmacSource final : public Source {
 public:
  // kInvalidArgument for a missing/unresolved secret, an unknown algorithm, an empty
  // header name or a malformed dedupe pointer.
  static Result<std::unique_ptr<Source>> Create(const SourceConfig& config);

  // POST only (405); the signature header is required (401 "missing signature") and
  // must match (401 "invalid signature") before the body is looked at. A form-encoded
  // body becomes a JSON object of its fields; anything else must be JSON (400).
  // Dedupe: "<name>:<value at config.dedupe>" or "<name>:sha256:<hex of body>".
  SourceDecision Handle(const IngressRequest& request) const override;

  // The header config.header = prefix + hex HMAC of `body`; content type
  // application/json. kInvalidArgument as for Create.
  static Result<SignedRequest> Sign(const SourceConfig& config, std::string_view body);

 private:
  HmacSource(const SourceConfig& config, HmacKey key) : Source(config), key_(std::move(key)) {}

  HmacKey key_;
};

}  // namespace firebreak
