// The keyed HMAC every HMAC-signed source shares, and the constant-time check of a
// prefixed hex signature.
#pragma once

#include <openssl/types.h>

#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/crypto.h"
#include "common/status.h"

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
  // The raw HMAC of the concatenation of `parts`; "" only if OpenSSL fails.
  std::string Digest(std::span<const std::string_view> parts) const;
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

}  // namespace firebreak
