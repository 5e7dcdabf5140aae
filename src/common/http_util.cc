#include "common/http_util.h"

#include <array>
#include <vector>

namespace firebreak {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kMaxRetryAfterSeconds = 365LL * 24 * 3600;

bool IsDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Parses digits, saturating at `cap` instead of overflowing.
int64_t ParseDigitsCapped(std::string_view digits, int64_t cap) {
  int64_t value = 0;
  for (char c : digits) {
    value = value * 10 + (c - '0');
    if (value >= cap) return cap;
  }
  return value;
}

// 1..12 for "Jan".."Dec", 0 otherwise.
unsigned MonthNumber(std::string_view token) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
  for (size_t i = 0; i < kMonths.size(); ++i) {
    if (EqualsIgnoreCase(token, kMonths[i])) return static_cast<unsigned>(i + 1);
  }
  return 0;
}

bool IsWeekday(std::string_view token) {
  static constexpr std::array<std::string_view, 14> kDays = {
      "mon",    "tue",     "wed",       "thu",      "fri",    "sat",      "sun",
      "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"};
  for (std::string_view day : kDays) {
    if (EqualsIgnoreCase(token, day)) return true;
  }
  return false;
}

// "08:49:37" → seconds since midnight.
std::optional<int64_t> ParseTimeOfDay(std::string_view token) {
  if (token.size() != 8 || token[2] != ':' || token[5] != ':') return std::nullopt;
  std::string_view h = token.substr(0, 2), m = token.substr(3, 2), s = token.substr(6, 2);
  if (!IsDigits(h) || !IsDigits(m) || !IsDigits(s)) return std::nullopt;
  int64_t hours = ParseDigitsCapped(h, 100), minutes = ParseDigitsCapped(m, 100),
          seconds = ParseDigitsCapped(s, 100);
  if (hours > 23 || minutes > 59 || seconds > 60) return std::nullopt;
  return hours * 3600 + minutes * 60 + seconds;
}

// The three HTTP-date forms share their pieces in different orders, so the date is
// read token by token: weekday (ignored), day, month name, year, hh:mm:ss, "GMT".
std::optional<int64_t> ParseHttpDateSeconds(std::string_view value) {
  std::vector<std::string_view> tokens;
  size_t start = 0;
  for (size_t i = 0; i <= value.size(); ++i) {
    if (i == value.size() || value[i] == ' ' || value[i] == ',' || value[i] == '-') {
      if (i > start) tokens.push_back(value.substr(start, i - start));
      start = i + 1;
    }
  }
  std::optional<int64_t> day, year, time_of_day;
  unsigned month = 0;
  for (std::string_view token : tokens) {
    if (IsDigits(token)) {
      if (token.size() > 4) return std::nullopt;
      int64_t number = ParseDigitsCapped(token, 10'000);
      if (!day) {
        day = number;
      } else if (!year) {
        // RFC 850's two-digit years.
        if (token.size() <= 2) number += number < 70 ? 2000 : 1900;
        year = number;
      } else {
        return std::nullopt;
      }
    } else if (token.find(':') != std::string_view::npos) {
      if (time_of_day) return std::nullopt;
      time_of_day = ParseTimeOfDay(token);
      if (!time_of_day) return std::nullopt;
    } else if (unsigned m = MonthNumber(token); m != 0) {
      if (month != 0) return std::nullopt;
      month = m;
    } else if (!IsWeekday(token) && !EqualsIgnoreCase(token, "GMT") &&
               !EqualsIgnoreCase(token, "UTC")) {
      return std::nullopt;
    }
  }
  if (!day || !year || !time_of_day || month == 0) return std::nullopt;
  std::chrono::year_month_day date{std::chrono::year(static_cast<int>(*year)),
                                   std::chrono::month(month),
                                   std::chrono::day(static_cast<unsigned>(*day))};
  if (!date.ok()) return std::nullopt;
  int64_t days = std::chrono::sys_days(date).time_since_epoch().count();
  return days * 86'400 + *time_of_day;
}

}  // namespace

std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string AsciiLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

bool IsVisibleAscii(std::string_view value) {
  for (char c : value) {
    if (c < '!' || c > '~') return false;
  }
  return !value.empty();
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

Result<HttpUrl> ParseHttpUrl(std::string_view url, std::string_view what) {
  const std::string subject(what);
  constexpr std::string_view kHttp = "http://";
  constexpr std::string_view kHttps = "https://";
  if (url.size() >= kHttps.size() && EqualsIgnoreCase(url.substr(0, kHttps.size()), kHttps)) {
    return InvalidArgument("https " + subject + "s are not supported in this build yet");
  }
  if (url.size() < kHttp.size() || !EqualsIgnoreCase(url.substr(0, kHttp.size()), kHttp)) {
    return InvalidArgument(subject + " must start with http://: " + std::string(url));
  }
  std::string_view rest = url.substr(kHttp.size());
  if (rest.find('#') != std::string_view::npos) {
    return InvalidArgument(subject + " must not have a fragment: " + std::string(url));
  }
  for (char c : rest) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return InvalidArgument(subject + " has a space or control character: " + std::string(url));
    }
  }
  size_t authority_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view target =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) {
    return InvalidArgument(subject + " must not carry user info: " + std::string(url));
  }

  HttpUrl out;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return InvalidArgument(subject + " has an unclosed IPv6 literal: " + std::string(url));
    }
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return InvalidArgument(subject + " has junk after the IPv6 host: " + std::string(url));
      }
      port_text = after.substr(1);
      if (port_text.empty())
        return InvalidArgument(subject + " has an empty port: " + std::string(url));
    }
  } else {
    size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty())
        return InvalidArgument(subject + " has an empty port: " + std::string(url));
    }
  }
  if (out.host.empty()) return InvalidArgument(subject + " has no host: " + std::string(url));
  if (!port_text.empty()) {
    if (!IsDigits(port_text) || port_text.size() > 5) {
      return InvalidArgument(subject + " has a bad port: " + std::string(url));
    }
    int64_t port = ParseDigitsCapped(port_text, 100'000);
    if (port < 1 || port > 65535) {
      return InvalidArgument(subject + " port out of range: " + std::string(url));
    }
    out.port = static_cast<uint16_t>(port);
  }
  out.host_header = std::string(authority);
  if (target.empty()) {
    out.target = "/";
  } else if (target.front() == '?') {
    out.target = "/" + std::string(target);
  } else {
    out.target = std::string(target);
  }
  return out;
}

std::optional<milliseconds> ParseRetryAfter(std::string_view value, int64_t now_epoch_ms) {
  value = TrimBlanks(value);
  if (value.empty()) return std::nullopt;
  if (IsDigits(value)) {
    return milliseconds(ParseDigitsCapped(value, kMaxRetryAfterSeconds) * 1000);
  }
  std::optional<int64_t> at_seconds = ParseHttpDateSeconds(value);
  if (!at_seconds) return std::nullopt;
  int64_t delta_ms = *at_seconds * 1000 - now_epoch_ms;
  if (delta_ms < 0) delta_ms = 0;
  if (delta_ms > kMaxRetryAfterSeconds * 1000) delta_ms = kMaxRetryAfterSeconds * 1000;
  return milliseconds(delta_ms);
}

// "redis://:hunter2@host/0" → "redis://:***@host/0".
std::string RedactUrl(const std::string& url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return url;
  size_t authority_start = scheme_end + 3;
  size_t authority_end = url.find_first_of("/?#", authority_start);
  if (authority_end == std::string::npos) authority_end = url.size();
  size_t at = url.rfind('@', authority_end);
  if (at == std::string::npos || at < authority_start) return url;
  size_t colon = url.find(':', authority_start);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

}  // namespace firebreak
