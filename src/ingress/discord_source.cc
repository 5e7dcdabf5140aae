#include "ingress/discord_source.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <iterator>
#include <optional>
#include <string>

#include "common/crypto.h"
#include "ingress/json_body.h"

namespace firebreak {
namespace {

constexpr std::string_view kSignatureHeader = "X-Signature-Ed25519";
constexpr std::string_view kTimestampHeader = "X-Signature-Timestamp";
constexpr size_t kKeySize = 32;
constexpr size_t kSignatureSize = 64;
constexpr int kPingType = 1;
constexpr int kMessageComponentType = 3;

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct BnCtxFree {
  void operator()(BN_CTX* ctx) const { BN_CTX_free(ctx); }
};
struct BnCtxEnd {
  void operator()(BN_CTX* ctx) const { BN_CTX_end(ctx); }
};

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes `hex` into exactly `size` bytes; false for any other length or a non-hex digit.
bool HexDecode(std::string_view hex, size_t size, unsigned char* out) {
  if (hex.size() != size * 2) return false;
  for (size_t i = 0; i < size; ++i) {
    const int high = HexDigit(hex[2 * i]);
    const int low = HexDigit(hex[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    out[i] = static_cast<unsigned char>(high << 4 | low);
  }
  return true;
}

// Digits only: Discord sends plain Unix seconds.
bool ParseUnixSeconds(std::string_view text, int64_t& seconds) {
  if (text.empty() || text.front() < '0' || text.front() > '9') return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  return error == std::errc() && end == text.data() + text.size();
}

// True if `encoded` is the RFC 8032 §5.1.3 encoding of a curve point whose order is not
// small. OpenSSL 3.0 accepts any 32 bytes as a raw Ed25519 public key and only fails at
// verification, so a mistyped key would refuse every request without saying why; and a
// small-order key (e.g. the identity, 01 00..00) verifies forged signatures.
bool IsUsableEd25519PublicKey(const unsigned char (&encoded)[kKeySize]) {
  std::unique_ptr<BN_CTX, BnCtxFree> owner(BN_CTX_new());
  if (owner == nullptr) return false;
  BN_CTX* ctx = owner.get();
  BN_CTX_start(ctx);
  std::unique_ptr<BN_CTX, BnCtxEnd> frame(ctx);
  BIGNUM* p = BN_CTX_get(ctx);
  BIGNUM* d = BN_CTX_get(ctx);
  BIGNUM* x = BN_CTX_get(ctx);
  BIGNUM* y = BN_CTX_get(ctx);
  BIGNUM* xx = BN_CTX_get(ctx);
  BIGNUM* yy = BN_CTX_get(ctx);
  BIGNUM* t = BN_CTX_get(ctx);
  BIGNUM* u = BN_CTX_get(ctx);
  BIGNUM* v = BN_CTX_get(ctx);
  if (v == nullptr) return false;

  // p = 2^255 - 19; d = -121665 / 121666 (mod p).
  if (BN_set_bit(p, 255) != 1 || BN_sub_word(p, 19) != 1) return false;
  if (BN_set_word(t, 121666) != 1 || BN_mod_inverse(t, t, p, ctx) == nullptr ||
      BN_set_word(d, 121665) != 1 || BN_mod_mul(d, d, t, p, ctx) != 1 || BN_sub(d, p, d) != 1) {
    return false;
  }

  // y is the little-endian value without its top bit, which is the sign of x.
  unsigned char y_bytes[kKeySize];
  std::copy(std::begin(encoded), std::end(encoded), y_bytes);
  const bool x_is_odd = (y_bytes[kKeySize - 1] & 0x80) != 0;
  y_bytes[kKeySize - 1] &= 0x7f;
  if (BN_lebin2bn(y_bytes, kKeySize, y) == nullptr || BN_cmp(y, p) >= 0) return false;

  // x^2 = (y^2 - 1) / (d y^2 + 1); the key is a point only if that has a square root.
  if (BN_mod_sqr(yy, y, p, ctx) != 1 || BN_mod_sub(u, yy, BN_value_one(), p, ctx) != 1 ||
      BN_mod_mul(v, d, yy, p, ctx) != 1 || BN_mod_add(v, v, BN_value_one(), p, ctx) != 1 ||
      BN_mod_inverse(v, v, p, ctx) == nullptr || BN_mod_mul(xx, u, v, p, ctx) != 1) {
    return false;
  }
  if (BN_is_zero(xx)) {
    if (x_is_odd) return false;  // "x = 0 with the sign bit set" is not an encoding
    BN_zero(x);
  } else {
    ERR_set_mark();
    BIGNUM* root = BN_mod_sqrt(x, xx, p, ctx);  // fails (with an error queued) for a non-square
    ERR_pop_to_mark();
    if (root == nullptr) return false;
  }

  // The sign of x does not change the order. Small order means [8]P is the identity (0, 1):
  // double three times with the complete formulas
  // x' = 2xy / (1 + d x^2 y^2), y' = (y^2 + x^2) / (1 - d x^2 y^2).
  for (int i = 0; i < 3; ++i) {
    if (BN_mod_sqr(xx, x, p, ctx) != 1 || BN_mod_sqr(yy, y, p, ctx) != 1 ||
        BN_mod_mul(t, xx, yy, p, ctx) != 1 || BN_mod_mul(t, t, d, p, ctx) != 1 ||
        BN_mod_add(u, BN_value_one(), t, p, ctx) != 1 ||
        BN_mod_sub(v, BN_value_one(), t, p, ctx) != 1 || BN_mod_inverse(u, u, p, ctx) == nullptr ||
        BN_mod_inverse(v, v, p, ctx) == nullptr || BN_mod_mul(t, x, y, p, ctx) != 1 ||
        BN_mod_add(t, t, t, p, ctx) != 1 || BN_mod_mul(x, t, u, p, ctx) != 1 ||
        BN_mod_add(t, yy, xx, p, ctx) != 1 || BN_mod_mul(y, t, v, p, ctx) != 1) {
      return false;
    }
  }
  return !(BN_is_zero(x) && BN_is_one(y));
}

Result<std::shared_ptr<const EVP_PKEY>> ParsePublicKey(const SourceConfig& config) {
  const std::string source = "source \"" + config.name + "\": ";
  unsigned char raw[kKeySize];
  if (!HexDecode(config.public_key, kKeySize, raw)) {
    return InvalidArgument(source +
                           "public_key must be 64 hex characters (the Ed25519 public key from "
                           "the Discord developer portal)");
  }
  if (!IsUsableEd25519PublicKey(raw)) {
    return InvalidArgument(source + "public_key is not a valid Ed25519 public key");
  }
  EVP_PKEY* key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw, kKeySize);
  if (key == nullptr) {
    return InvalidArgument(source + "public_key is not a valid Ed25519 public key");
  }
  return std::shared_ptr<const EVP_PKEY>(
      key, [](const EVP_PKEY* k) { EVP_PKEY_free(const_cast<EVP_PKEY*>(k)); });
}

// The private key as an EVP_PKEY and its public key's hex; see DiscordPublicKeyHexFromPrivate.
Status LoadPrivateKey(std::string_view private_key_hex, std::unique_ptr<EVP_PKEY, PkeyFree>& key,
                      std::string& public_hex) {
  const Status malformed = InvalidArgument(
      "Ed25519 private key must be 64 hex characters (the 32-byte seed) or 128 (seed and "
      "public key)");
  unsigned char raw[2 * kKeySize];
  const size_t size = private_key_hex.size() / 2;
  if ((size != kKeySize && size != 2 * kKeySize) || !HexDecode(private_key_hex, size, raw)) {
    return malformed;
  }
  key.reset(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, raw, kKeySize));
  OPENSSL_cleanse(raw, kKeySize);
  if (key == nullptr) return Internal("OpenSSL refused the Ed25519 private key");
  unsigned char public_raw[kKeySize];
  size_t public_size = sizeof public_raw;
  if (EVP_PKEY_get_raw_public_key(key.get(), public_raw, &public_size) != 1 ||
      public_size != kKeySize) {
    return Internal("OpenSSL could not derive the Ed25519 public key");
  }
  if (size == 2 * kKeySize && !std::equal(public_raw, public_raw + kKeySize, raw + kKeySize)) {
    return InvalidArgument(
        "Ed25519 private key: its second half is not the public key of its seed");
  }
  public_hex = HexEncode(std::string_view(reinterpret_cast<const char*>(public_raw), kKeySize));
  return Status::Ok();
}

// An interaction's guild and channel, and its user: member.user in a guild, user in a DM.
const SearchKeyPointers& DiscordKeys() {
  static const SearchKeyPointers keys({{"discord.guild", "/guild_id"},
                                       {"discord.channel", "/channel_id"},
                                       {"discord.user", "/member/user/id"},
                                       {"discord.user", "/user/id"}});
  return keys;
}

}  // namespace

bool VerifyEd25519(const EVP_PKEY* public_key, std::string_view message,
                   std::string_view signature) {
  if (public_key == nullptr || signature.size() != kSignatureSize) return false;
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) return false;
  // Ed25519 hashes internally, so no digest is named; verification only reads the key.
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr,
                           const_cast<EVP_PKEY*>(public_key)) != 1) {
    return false;
  }
  const bool valid =
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) == 1;
  // A refused signature leaves an error on this thread's queue; clear it so no later
  // OpenSSL call on this ingress thread reports it as its own.
  ERR_clear_error();
  return valid;
}

Result<std::string> DiscordPublicKeyHexFromPrivate(std::string_view private_key_hex) {
  std::unique_ptr<EVP_PKEY, PkeyFree> key;
  std::string public_hex;
  if (Status status = LoadPrivateKey(private_key_hex, key, public_hex); !status.ok()) {
    return status;
  }
  return public_hex;
}

Result<std::unique_ptr<Source>> DiscordSource::Create(const SourceConfig& config,
                                                      const Clock& clock) {
  Result<std::shared_ptr<const EVP_PKEY>> key = ParsePublicKey(config);
  if (!key.ok()) return key.status();
  return std::unique_ptr<Source>(new DiscordSource(config, clock, std::move(key).value()));
}

SourceDecision DiscordSource::Handle(const IngressRequest& request) const {
  if (request.Method() != "POST") return SourceDecision::Reject(405, "method not allowed");
  std::string_view signature_hex = request.Header(kSignatureHeader);
  std::string_view timestamp = request.Header(kTimestampHeader);
  if (signature_hex.empty() || timestamp.empty()) {
    return SourceDecision::Reject(401, "missing signature");
  }
  unsigned char signature[kSignatureSize];
  if (!HexDecode(signature_hex, kSignatureSize, signature)) {
    return SourceDecision::Reject(401, "invalid signature");
  }
  std::string_view body = request.Body();
  // Ed25519 signs the whole message in one pass, so timestamp and body are joined; the
  // per-thread buffer keeps its capacity (at most max_body) between requests.
  thread_local std::string message;
  message.assign(timestamp);
  message.append(body);
  const bool verified =
      VerifyEd25519(public_key_.get(), message,
                    std::string_view(reinterpret_cast<const char*>(signature), kSignatureSize));
  if (!verified) return SourceDecision::Reject(401, "invalid signature");

  // Discord's docs name no freshness window, but a signed request stays valid forever, so
  // without one a captured interaction could be replayed once its dedupe key expires.
  int64_t sent_at = 0;
  const int64_t now = clock_.NowSeconds();
  if (!ParseUnixSeconds(timestamp, sent_at) || sent_at > now + kMaxClockSkewSeconds ||
      sent_at < now - kMaxClockSkewSeconds) {
    return SourceDecision::Reject(401, "stale timestamp");
  }

  Result<JsonBody> parsed = ParseJsonBody(body);
  if (!parsed.ok() || !parsed->IsObject()) return SourceDecision::Reject(400, "invalid JSON body");
  int64_t type = 0;
  if (parsed->root().at_key("type").get(type) != simdjson::SUCCESS) {
    return SourceDecision::Reject(400, "missing interaction type");
  }
  if (type == kPingType) {
    SourceDecision answer;
    answer.kind = SourceDecision::Kind::kRespond;
    answer.status = 200;
    answer.body = R"({"type":1})";
    return answer;
  }
  std::optional<std::string_view> id = parsed->StringAt("/id");
  if (!id.has_value() || id->empty()) return SourceDecision::Reject(400, "missing interaction id");

  SourceDecision decision;
  decision.kind = SourceDecision::Kind::kEnqueue;
  decision.status = 200;
  decision.dedupe_keys.push_back(config().name + ":" + std::string(*id));
  decision.payload_json.assign(body);
  decision.headers_json = "{}";
  decision.search_keys = SearchKeysOf(parsed->root(), DiscordKeys());
  // Discord needs an answer within 3 s; the handler replies later via the follow-up
  // webhook. A component's deferral edits its message instead of posting a new one.
  decision.body = type == kMessageComponentType ? R"({"type":6})" : R"({"type":5})";
  return decision;
}

Result<SignedRequest> DiscordSource::Sign(const SourceConfig& config,
                                          std::string_view private_key_hex, std::string_view body,
                                          int64_t now_seconds) {
  std::unique_ptr<EVP_PKEY, PkeyFree> key;
  std::string public_hex;
  if (Status status = LoadPrivateKey(private_key_hex, key, public_hex); !status.ok()) {
    return InvalidArgument("source \"" + config.name + "\": " + status.message());
  }
  if (!config.public_key.empty()) {
    std::string configured = config.public_key;
    for (char& c : configured) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (configured != public_hex) {
      return InvalidArgument("source \"" + config.name +
                             "\": the signing key's public key is not public_key");
    }
  }

  const std::string timestamp = std::to_string(now_seconds);
  std::string message = timestamp;
  message.append(body);
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  unsigned char signature[kSignatureSize];
  size_t signature_size = sizeof signature;
  if (ctx == nullptr || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), signature, &signature_size,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
      signature_size != kSignatureSize) {
    ERR_clear_error();
    return Internal("Ed25519 signing failed");
  }

  SignedRequest signed_request;
  signed_request.headers.emplace_back(
      std::string(kSignatureHeader),
      HexEncode(std::string_view(reinterpret_cast<const char*>(signature), kSignatureSize)));
  signed_request.headers.emplace_back(std::string(kTimestampHeader), timestamp);
  signed_request.content_type = "application/json";
  return signed_request;
}

}  // namespace firebreak
