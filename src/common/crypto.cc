#include "common/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>

namespace firebreak {

std::optional<HmacAlgorithm> ParseHmacAlgorithm(std::string_view name) {
  if (name == "sha1") return HmacAlgorithm::kSha1;
  if (name == "sha256") return HmacAlgorithm::kSha256;
  if (name == "sha512") return HmacAlgorithm::kSha512;
  return std::nullopt;
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto b = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = kHex[b >> 4];
    out[2 * i + 1] = kHex[b & 0xf];
  }
  return out;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int length =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(bytes.data()),
                      static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(length));
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (text.size() % 4 != 0) return std::nullopt;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool alphabet = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                          (c >= '0' && c <= '9') || c == '+' || c == '/';
    // '=' only as the last one or two characters.
    const bool padding = c == '=' && i + 2 >= text.size() &&
                         (i + 1 == text.size() || text.back() == '=');
    if (!alphabet && !padding) return std::nullopt;
  }
  // EVP_DecodeBlock writes 3 bytes per 4 characters, padding included; the '=' count says
  // how many of the last three are not data.
  std::string out(text.size() / 4 * 3, '\0');
  const int length = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                     reinterpret_cast<const unsigned char*>(text.data()),
                                     static_cast<int>(text.size()));
  if (length < 0) return std::nullopt;
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
  out.resize(static_cast<size_t>(length) - padding);
  return out;
}

std::string HmacHex(HmacAlgorithm algorithm, std::string_view key, std::string_view data) {
  const EVP_MD* md = algorithm == HmacAlgorithm::kSha1     ? EVP_sha1()
                     : algorithm == HmacAlgorithm::kSha512 ? EVP_sha512()
                                                           : EVP_sha256();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &length);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), length));
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void RandomBytes(void* out, size_t size) {
  if (RAND_bytes(static_cast<unsigned char*>(out), static_cast<int>(size)) != 1) std::abort();
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  RandomBytes(raw.data(), raw.size());
  return HexEncode(raw);
}

std::string NewJobId(int64_t now_ms) {
  static constexpr char kCrockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  unsigned char bytes[16];
  auto ts = static_cast<uint64_t>(now_ms);
  for (int i = 5; i >= 0; --i) {
    bytes[i] = static_cast<unsigned char>(ts & 0xff);
    ts >>= 8;
  }
  RandomBytes(bytes + 6, 10);
  // 128 bits → 26 base32 digits, most significant first; the first digit holds the
  // top 3 bits (130 bits of digits, two leading zero bits).
  std::string out(26, '0');
  for (int digit = 0; digit < 26; ++digit) {
    unsigned value = 0;
    for (int bit = 0; bit < 5; ++bit) {
      int pos = digit * 5 + bit - 2;  // bit index into the 128-bit big-endian number
      unsigned b = 0;
      if (pos >= 0) b = (bytes[pos / 8] >> (7 - pos % 8)) & 1u;
      value = (value << 1) | b;
    }
    out[static_cast<size_t>(digit)] = kCrockford[value];
  }
  return out;
}

namespace {

// Trace and span ids must be unique and unpredictable enough not to collide, not secret
// (W3C trace-context §3.2): a per-thread generator seeded from the OS RNG, because
// RAND_bytes per id costs microseconds on the request path.
uint64_t NextIdBits() {
  thread_local std::mt19937_64 generator = [] {
    std::array<uint64_t, 4> seed;
    RandomBytes(seed.data(), sizeof seed);
    std::seed_seq sequence(reinterpret_cast<const uint32_t*>(seed.data()),
                           reinterpret_cast<const uint32_t*>(seed.data() + seed.size()));
    return std::mt19937_64(sequence);
  }();
  uint64_t bits = 0;
  while (bits == 0) bits = generator();  // an all-zero id is invalid
  return bits;
}

void AppendHex64(std::string& out, uint64_t bits) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out.push_back(kHex[(bits >> shift) & 0xf]);
}

}  // namespace

std::string NewTraceparent() {
  std::string out;
  out.reserve(55);
  out.append("00-");
  // The trace id starts with the Unix time in ms (48 bits; 80 random bits follow, as
  // AWS X-Ray's ids carry their time): ids made close together sort together, so the
  // queue's search index takes each new one at its end instead of on a random page.
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  AppendHex64(out, (static_cast<uint64_t>(now_ms) << 16) | (NextIdBits() & 0xffffu));
  AppendHex64(out, NextIdBits());
  out.push_back('-');
  AppendHex64(out, NextIdBits());
  out.append("-01");
  return out;
}

std::string ChildTraceparent(std::string_view parent) {
  if (!IsValidTraceparent(parent)) return NewTraceparent();
  // 00-<32 hex trace>-<16 hex span>-<2 hex flags>
  std::string out;
  out.reserve(55);
  out.append(parent.substr(0, 36));
  AppendHex64(out, NextIdBits());
  out.append(parent.substr(52));
  return out;
}

std::string TraceIdOf(std::string_view traceparent) {
  return traceparent.size() >= 35 ? std::string(traceparent.substr(3, 32)) : std::string();
}

bool IsValidTraceparent(std::string_view v) {
  // 00-<32 hex>-<16 hex>-<2 hex>, trace and span not all zeros.
  if (v.size() != 55 || v.substr(0, 3) != "00-" || v[35] != '-' || v[52] != '-') return false;
  auto all_hex = [](std::string_view s) {
    for (char c : s) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
  };
  auto trace = v.substr(3, 32), span = v.substr(36, 16), flags = v.substr(53, 2);
  if (!all_hex(trace) || !all_hex(span) || !all_hex(flags)) return false;
  auto all_zero = [](std::string_view s) { return s.find_first_not_of('0') == s.npos; };
  return !all_zero(trace) && !all_zero(span);
}

}  // namespace firebreak
