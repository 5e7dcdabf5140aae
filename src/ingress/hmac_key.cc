#include "ingress/hmac_key.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <memory>

namespace firebreak {
namespace {

// Fetched once per process: EVP_MAC_fetch takes a lock on OpenSSL's method store,
// which the request path should not. Never freed (lives as long as the process).
EVP_MAC* HmacMethod() {
  static EVP_MAC* const method = EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_HMAC, nullptr);
  return method;
}

const char* DigestName(HmacAlgorithm algorithm) {
  switch (algorithm) {
    case HmacAlgorithm::kSha1:
      return "SHA1";
    case HmacAlgorithm::kSha512:
      return "SHA512";
    case HmacAlgorithm::kSha256:
      break;
  }
  return "SHA256";
}

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

void HmacKey::CtxFree::operator()(EVP_MAC_CTX* ctx) const { EVP_MAC_CTX_free(ctx); }

Result<HmacKey> HmacKey::Create(HmacAlgorithm algorithm, std::string_view key) {
  if (key.empty()) return InvalidArgument("HMAC key is empty");
  if (HmacMethod() == nullptr) return Internal("OpenSSL has no HMAC implementation");
  std::shared_ptr<EVP_MAC_CTX> ctx(EVP_MAC_CTX_new(HmacMethod()), CtxFree());
  if (ctx == nullptr) return Internal("EVP_MAC_CTX_new failed");
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                       const_cast<char*>(DigestName(algorithm)), 0),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                   params) != 1) {
    return Internal("EVP_MAC_init failed");
  }
  const size_t hex_size = EVP_MAC_CTX_get_mac_size(ctx.get()) * 2;
  return HmacKey(std::move(ctx), hex_size);
}

std::string HmacKey::Digest(std::span<const std::string_view> parts) const {
  std::unique_ptr<EVP_MAC_CTX, CtxFree> ctx(EVP_MAC_CTX_dup(keyed_.get()));
  if (ctx == nullptr) return {};
  for (std::string_view part : parts) {
    if (part.empty()) continue;
    if (EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(part.data()),
                       part.size()) != 1) {
      return {};
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  size_t length = 0;
  if (EVP_MAC_final(ctx.get(), digest, &length, sizeof digest) != 1) return {};
  return std::string(reinterpret_cast<const char*>(digest), length);
}

std::string HmacKey::Hex(std::initializer_list<std::string_view> parts) const {
  return HexEncode(Digest(std::span<const std::string_view>(parts.begin(), parts.size())));
}

bool SignatureMatches(std::string_view header_value, std::string_view prefix,
                      std::string_view expected_hex) {
  char lowered[EVP_MAX_MD_SIZE * 2];
  if (expected_hex.empty() || expected_hex.size() > sizeof lowered) return false;
  if (header_value.size() != prefix.size() + expected_hex.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (AsciiLower(header_value[i]) != AsciiLower(prefix[i])) return false;
  }
  // Lower-casing looks only at the sender's own bytes; the comparison with the
  // expected value is the part that must not leak timing.
  std::string_view hex = header_value.substr(prefix.size());
  for (size_t i = 0; i < hex.size(); ++i) lowered[i] = AsciiLower(hex[i]);
  return ConstantTimeEquals(std::string_view(lowered, hex.size()), expected_hex);
}

}  // namespace firebreak
