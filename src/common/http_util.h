// Small pure HTTP helpers shared by the URL handler, the CLI client and egress: parsing
// an http:// URL and an HTTP Retry-After value. No I/O; safe to call from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace firebreak {

// ASCII case folding for header names (locale-independent, unlike std::tolower).
char AsciiLower(char c);
std::string AsciiLower(std::string_view text);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
// True for a non-empty value of printable ASCII without blanks (ids and event names in
// headers: what may go unescaped into a dedupe key).
bool IsVisibleAscii(std::string_view value);
// `s` without leading and trailing spaces and tabs (header values, list entries).
std::string_view TrimBlanks(std::string_view s);

// "http://host[:port][/path][?query]" split into what a client needs.
struct HttpUrl {
  std::string host;  // "example.com", "127.0.0.1", "::1" (brackets removed)
  uint16_t port = 80;
  std::string host_header;  // value for the Host header: "example.com:8080", "[::1]:80"
  std::string target;       // request target: "/path?query" ("/" when the URL has none)
};

// Accepts http:// only. https:// is kInvalidArgument "https <what>s are not
// supported in this build yet"; user info, fragments, empty hosts and bad ports are
// kInvalidArgument naming what is wrong. `what` names the URL in messages.
Result<HttpUrl> ParseHttpUrl(std::string_view url, std::string_view what = "handler url");

// A Retry-After header value: delta-seconds ("120") or an HTTP-date (IMF-fixdate,
// RFC 850 or asctime form), relative to `now_epoch_ms`. A date in the past gives 0.
// nullopt when the value is neither. Very large values are capped at one year.
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         int64_t now_epoch_ms);

// A URL with the password of its userinfo masked, for logs and summaries:
// "redis://:hunter2@host/0" → "redis://:***@host/0".
std::string RedactUrl(const std::string& url);

}  // namespace firebreak
