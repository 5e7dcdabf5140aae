#include "ingress/hmac_source.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "ingress/form.h"
#include "ingress/json_body.h"

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

Status ValidateHmacConfig(const SourceConfig& config) {
  const std::string source = "source \"" + config.name + "\": ";
  if (!config.secret.has_value() || config.secret->value.empty()) {
    return InvalidArgument(source + "secret is missing or not resolved");
  }
  if (!ParseHmacAlgorithm(config.algorithm).has_value()) {
    return InvalidArgument(source + "algorithm \"" + config.algorithm +
                           "\" is not one of sha1, sha256, sha512");
  }
  if (config.header.empty()) return InvalidArgument(source + "header must not be empty");
  if (!IsValidJsonPointer(config.dedupe)) {
    return InvalidArgument(source + "dedupe \"" + config.dedupe + "\" is not a JSON pointer");
  }
  return Status::Ok();
}

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

std::string HmacKey::Hex(std::initializer_list<std::string_view> parts) const {
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
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), length));
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

Result<std::unique_ptr<Source>> HmacSource::Create(const SourceConfig& config) {
  if (Status status = ValidateHmacConfig(config); !status.ok()) return status;
  Result<HmacKey> key =
      HmacKey::Create(*ParseHmacAlgorithm(config.algorithm), config.secret->value);
  if (!key.ok()) return key.status();
  return std::unique_ptr<Source>(new HmacSource(config, std::move(key).value()));
}

SourceDecision HmacSource::Handle(const IngressRequest& request) const {
  if (request.Method() != "POST") return SourceDecision::Reject(405, "method not allowed");
  const SourceConfig& cfg = config();
  std::string_view signature = request.Header(cfg.header);
  if (signature.empty()) return SourceDecision::Reject(401, "missing signature");
  std::string_view body = request.Body();
  if (!SignatureMatches(signature, cfg.prefix, key_.Hex({body}))) {
    return SourceDecision::Reject(401, "invalid signature");
  }

  SourceDecision decision;
  decision.kind = SourceDecision::Kind::kEnqueue;
  decision.status = 200;
  decision.headers_json = "{}";

  // The parsed document the dedupe pointer reads; for a form it is parsed from the
  // generated object only when a pointer needs it.
  std::optional<JsonBody> document;
  if (IsFormContentType(request.Header("Content-Type"))) {
    Result<std::string> object = FormToJsonObject(body);
    if (!object.ok()) return SourceDecision::Reject(400, "malformed form body");
    decision.payload_json = std::move(object).value();
    if (!cfg.dedupe.empty()) {
      Result<JsonBody> parsed = ParseJsonBody(decision.payload_json);
      if (!parsed.ok()) return SourceDecision::Reject(400, "malformed form body");
      document = *parsed;
    }
  } else {
    Result<JsonBody> parsed = ParseJsonBody(body);
    if (!parsed.ok()) return SourceDecision::Reject(400, "malformed JSON");
    document = *parsed;
    decision.payload_json.assign(body);
  }

  if (cfg.dedupe.empty()) {
    decision.dedupe_keys.push_back(cfg.name + ":sha256:" + Sha256Hex(body));
    return decision;
  }
  Result<std::string> key_text = document->KeyTextAt(cfg.dedupe);
  if (!key_text.ok()) {
    if (key_text.status().code() == StatusCode::kNotFound) {
      return SourceDecision::Reject(400, "dedupe key " + cfg.dedupe + " missing");
    }
    return SourceDecision::Reject(400, "dedupe key " + cfg.dedupe + " is not a string or integer");
  }
  // An empty key would fold every such event into one job.
  if (key_text->empty())
    return SourceDecision::Reject(400, "dedupe key " + cfg.dedupe + " missing");
  decision.dedupe_keys.push_back(cfg.name + ":" + *key_text);
  return decision;
}

Result<SignedRequest> HmacSource::Sign(const SourceConfig& config, std::string_view body) {
  if (Status status = ValidateHmacConfig(config); !status.ok()) return status;
  Result<HmacKey> key =
      HmacKey::Create(*ParseHmacAlgorithm(config.algorithm), config.secret->value);
  if (!key.ok()) return key.status();
  std::string hex = key->Hex({body});
  if (hex.empty()) return Internal("HMAC computation failed");
  SignedRequest signed_request;
  signed_request.headers.emplace_back(config.header, config.prefix + hex);
  signed_request.content_type = "application/json";
  return signed_request;
}

}  // namespace firebreak
