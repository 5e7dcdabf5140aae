// Thin wrappers over OpenSSL for the request path: HMAC, digests, constant-time
// comparison and random ids.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace firebreak {

enum class HmacAlgorithm { kSha1, kSha256, kSha512 };

std::optional<HmacAlgorithm> ParseHmacAlgorithm(std::string_view name);

// Lower-case hex HMAC of `data` under `key`.
std::string HmacHex(HmacAlgorithm algorithm, std::string_view key, std::string_view data);

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

// Compares in time independent of where the inputs differ (lengths may leak).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// Cryptographically random bytes (RAND_bytes); aborts if the RNG fails, which
// only happens when the OS has no entropy source at all.
void RandomBytes(void* out, size_t size);
// `bytes` random bytes as lower-case hex (sample ids, delivery ids).
std::string RandomHex(size_t bytes);

std::string HexEncode(std::string_view bytes);

// Standard base64 (RFC 4648 §4, with '=' padding).
std::string Base64Encode(std::string_view bytes);
// The bytes of standard padded base64 (blanks around it ignored); nullopt for anything
// else, including a length that is not a multiple of 4.
std::optional<std::string> Base64Decode(std::string_view text);

// Job ids: ULIDs (48-bit ms timestamp + 80 random bits, Crockford base32, 26
// chars), so they sort by creation time.
std::string NewJobId(int64_t now_ms);

// W3C trace context. A fresh "00-<trace>-<span>-01"; the trace id begins with the time in
// ms, so trace ids sort by when they were made (the rest is random).
std::string NewTraceparent();
// The traceparent of a child span: the same trace id and flags, a fresh span id. A
// malformed parent gives a fresh trace.
std::string ChildTraceparent(std::string_view parent);
// True if `value` is a well-formed version-00 traceparent.
bool IsValidTraceparent(std::string_view value);
// The 32-hex trace id of a traceparent, "" if it is too short to hold one.
std::string TraceIdOf(std::string_view traceparent);

}  // namespace firebreak
