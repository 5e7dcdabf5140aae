#include "ingress/scheme_source.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <optional>
#include <span>
#include <utility>

#include "common/crypto.h"
#include "common/http_util.h"
#include "common/json_string.h"
#include "ingress/form.h"
#include "ingress/json_body.h"

namespace firebreak {
namespace {

using Scheme = SignatureScheme;

// Bounds on what one request may make the engine do: signatures compared per header
// (a rotation sends two or three) and pieces of a signed string.
constexpr size_t kMaxCandidates = 8;
constexpr size_t kMaxTemplateParts = 16;

std::string SourcePrefix(const SourceConfig& config) {
  return "source \"" + config.name + "\": ";
}

// The key bytes of `secret`: as written, or base64 after the scheme's prefix.
Result<std::string> KeyBytes(const SourceConfig& config, std::string_view secret) {
  const Scheme& scheme = config.scheme;
  if (!scheme.secret_prefix.empty() && secret.substr(0, scheme.secret_prefix.size()) ==
                                           scheme.secret_prefix) {
    secret.remove_prefix(scheme.secret_prefix.size());
  }
  if (scheme.secret_encoding == Scheme::SecretEncoding::kRaw) return std::string(secret);
  std::optional<std::string> decoded = Base64Decode(secret);
  // Standard Webhooks libraries accept a secret whose '=' padding was dropped.
  if (!decoded && secret.size() % 4 != 0) {
    std::string padded(secret);
    padded.append(4 - secret.size() % 4, '=');
    decoded = Base64Decode(padded);
  }
  if (!decoded || decoded->empty()) {
    return InvalidArgument(SourcePrefix(config) + "the secret is not base64" +
                           (scheme.secret_prefix.empty()
                                ? std::string()
                                : " after \"" + scheme.secret_prefix + "\"") +
                           " (kind " + config.KindName() + " expects the secret as the provider "
                           "shows it)");
  }
  return std::move(*decoded);
}

std::vector<const Secret*> AcceptedSecrets(const SourceConfig& config) {
  std::vector<const Secret*> secrets;
  if (config.secret && !config.secret->value.empty()) secrets.push_back(&*config.secret);
  if (config.previous_secret && !config.previous_secret->value.empty()) {
    secrets.push_back(&*config.previous_secret);
  }
  return secrets;
}

bool StartsWithIgnoringCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && EqualsIgnoreCase(text.substr(0, prefix.size()), prefix);
}

// The signature header split into candidate signatures and the timestamp entry.
struct SignatureHeader {
  std::array<std::string_view, kMaxCandidates> candidates;
  size_t count = 0;
  std::string_view timestamp;
};

SignatureHeader ParseSignatureHeader(std::string_view value, const Scheme& scheme) {
  SignatureHeader parsed;
  while (true) {
    size_t end = scheme.separator.empty() ? std::string_view::npos : value.find(scheme.separator);
    // Standard Webhooks' "v1,sig" entries are space separated: a run of blanks is one.
    std::string_view entry = TrimBlanks(value.substr(0, end));
    if (!scheme.timestamp_entry.empty() && entry.substr(0, scheme.timestamp_entry.size()) ==
                                               scheme.timestamp_entry) {
      parsed.timestamp = entry.substr(scheme.timestamp_entry.size());
    } else if (StartsWithIgnoringCase(entry, scheme.prefix) && entry.size() > scheme.prefix.size() &&
               parsed.count < kMaxCandidates) {
      parsed.candidates[parsed.count++] = entry.substr(scheme.prefix.size());
    }
    if (end == std::string_view::npos) break;
    value.remove_prefix(end + scheme.separator.size());
  }
  return parsed;
}

bool ParseDigits(std::string_view text, int64_t& value) {
  if (text.empty() || text.size() > 18) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return std::from_chars(text.data(), text.data() + text.size(), value).ec == std::errc();
}

bool ParseTimestamp(std::string_view text, Scheme::TimestampFormat format, int64_t& seconds) {
  switch (format) {
    case Scheme::TimestampFormat::kUnixSeconds:
      return ParseDigits(text, seconds);
    case Scheme::TimestampFormat::kUnixMillis:
      if (!ParseDigits(text, seconds)) return false;
      seconds /= 1000;
      return true;
    case Scheme::TimestampFormat::kRfc3339:
      return ParseRfc3339(text, seconds);
  }
  return false;
}

std::string FormatTimestamp(int64_t now_seconds, Scheme::TimestampFormat format) {
  switch (format) {
    case Scheme::TimestampFormat::kUnixMillis:
      return std::to_string(now_seconds * 1000);
    case Scheme::TimestampFormat::kRfc3339:
      return FormatRfc3339(now_seconds);
    case Scheme::TimestampFormat::kUnixSeconds:
      break;
  }
  return std::to_string(now_seconds);
}

// The URL the provider posted to: the configured public origin, else the one the proxy
// in front says (X-Forwarded-Proto/-Host), else this server's Host over http.
std::string RequestUrl(const SourceConfig& config, const IngressRequest& request) {
  if (!config.public_url.empty()) return config.public_url + std::string(request.Target());
  auto first_value = [&](std::string_view name) {
    std::string_view value = request.Header(name);
    return TrimBlanks(value.substr(0, value.find(',')));
  };
  std::string_view proto = first_value("X-Forwarded-Proto");
  std::string_view host = first_value("X-Forwarded-Host");
  if (host.empty()) host = request.Header("Host");
  return std::string(proto.empty() ? "http" : proto) + "://" + std::string(host) +
         std::string(request.Target());
}

// The same URL with its scheme's default port added, or any port removed (Twilio signs
// the URL as its client saw it, which may or may not have had ":443").
std::optional<std::string> TogglePort(const std::string& url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return std::nullopt;
  const std::string scheme = url.substr(0, scheme_end);
  const char* port = scheme == "https" ? ":443" : scheme == "http" ? ":80" : nullptr;
  if (port == nullptr) return std::nullopt;
  const size_t host_start = scheme_end + 3;
  size_t host_end = url.find_first_of("/?", host_start);
  if (host_end == std::string::npos) host_end = url.size();
  std::string_view authority(url.data() + host_start, host_end - host_start);
  const size_t port_length = std::char_traits<char>::length(port);
  if (authority.size() > port_length &&
      authority.substr(authority.size() - port_length) == port) {
    return url.substr(0, host_end - port_length) + url.substr(host_end);
  }
  if (const size_t colon = authority.rfind(':');
      colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
    // Another port: Twilio's validators also try the URL without it.
    return url.substr(0, host_start + colon) + url.substr(host_end);
  }
  return url.substr(0, host_end) + port + url.substr(host_end);
}

// Twilio: every form field's name then value, sorted by name (then value).
std::string SortedFormParams(const DecodedForm& form) {
  std::vector<uint32_t> order(form.size());
  size_t size = 0;
  for (size_t i = 0; i < form.size(); ++i) {
    order[i] = static_cast<uint32_t>(i);
    size += form.key(i).size() + form.value(i).size();
  }
  std::sort(order.begin(), order.end(), [&form](uint32_t a, uint32_t b) {
    return std::pair(form.key(a), form.value(a)) < std::pair(form.key(b), form.value(b));
  });
  std::string out;
  out.reserve(size);
  for (uint32_t i : order) {
    out += form.key(i);
    out += form.value(i);
  }
  return out;
}

// The value of query parameter `name` in `target` ("" when absent), undecoded: hex
// digests need no decoding.
std::string_view QueryParam(std::string_view target, std::string_view name) {
  const size_t question = target.find('?');
  if (question == std::string_view::npos) return {};
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const size_t ampersand = query.find('&');
    std::string_view pair = query.substr(0, ampersand);
    query = ampersand == std::string_view::npos ? std::string_view() : query.substr(ampersand + 1);
    if (pair.size() > name.size() && pair.substr(0, name.size()) == name &&
        pair[name.size()] == '=') {
      return pair.substr(name.size() + 1);
    }
  }
  return {};
}

// The object `document` without its top-level member `name` (a token that must not reach
// the handler), as compact JSON.
std::string WithoutMember(const JsonBody& document, std::string_view name) {
  simdjson::dom::object object;
  if (document.root().get(object) != simdjson::SUCCESS) return simdjson::minify(document.root());
  std::string out = "{";
  for (auto [key, value] : object) {
    if (key == name) continue;
    if (out.size() > 1) out.push_back(',');
    AppendJsonString(out, key);
    out.push_back(':');
    out += simdjson::minify(value);
  }
  out.push_back('}');
  return out;
}

// The payload, made once per request and only as far as something needs it: its JSON
// text (the body, or a form as the JSON object of its fields) and its parsed document.
class LazyBody {
 public:
  LazyBody(std::string_view body, bool is_form) : body_(body), is_form_(is_form) {}

  // The form's fields, decoded once; nullptr with `error` set when malformed. Form
  // bodies only.
  const DecodedForm* Form(std::string& error) {
    if (!form_decoded_) {
      form_decoded_ = true;
      Result<DecodedForm> form = DecodedForm::Decode(body_);
      if (form.ok()) {
        form_ = std::move(form).value();
      } else {
        error_ = "malformed form body";
      }
    }
    error = error_;
    return form_ ? &*form_ : nullptr;
  }

  // The payload's JSON text; false with `error` set when the body is malformed. A JSON
  // body must be parsed to be known valid; a form's object is valid JSON as made.
  bool Text(std::string_view& text, std::string& error) {
    if (!is_form_) {
      if (Document(error) == nullptr) return false;
      text = body_;
      return true;
    }
    if (!form_json_made_) {
      form_json_made_ = true;
      if (const DecodedForm* form = Form(error)) {
        Result<std::string> object = FormToJsonObject(*form);
        if (object.ok()) {
          form_json_ = std::move(object).value();
        } else {
          error_ = "malformed form body";
        }
      }
    }
    error = error_;
    text = form_json_;
    return error_.empty();
  }

  // nullptr with `error` set when the body is malformed.
  const JsonBody* Document(std::string& error) {
    if (parsed_) {
      error = error_;
      return document_ ? &*document_ : nullptr;
    }
    parsed_ = true;
    std::string_view text = body_;
    if (is_form_ && !Text(text, error)) return nullptr;
    if (Result<JsonBody> parsed = ParseJsonBody(text); parsed.ok()) {
      document_ = *parsed;
    } else {
      error_ = is_form_ ? "malformed form body" : "malformed JSON";
    }
    error = error_;
    return document_ ? &*document_ : nullptr;
  }

 private:
  std::string_view body_;
  bool is_form_;
  bool form_decoded_ = false;
  bool form_json_made_ = false;
  bool parsed_ = false;
  std::optional<DecodedForm> form_;
  std::string form_json_;
  std::optional<JsonBody> document_;
  std::string error_;
};

}  // namespace

std::string ExpandSample(std::string_view text, int64_t now_seconds) {
  std::string out;
  while (!text.empty()) {
    const size_t brace = text.find('{');
    out.append(text.substr(0, brace));
    if (brace == std::string_view::npos) break;
    text.remove_prefix(brace);
    if (text.substr(0, 4) == "{id}") {
      out += RandomHex(8);
      text.remove_prefix(4);
    } else if (text.substr(0, 8) == "{now_ms}") {
      out += std::to_string(now_seconds * 1000);
      text.remove_prefix(8);
    } else if (text.substr(0, 5) == "{now}") {
      out += std::to_string(now_seconds);
      text.remove_prefix(5);
    } else {
      out.push_back('{');
      text.remove_prefix(1);
    }
  }
  return out;
}

bool ParseRfc3339(std::string_view text, int64_t& seconds) {
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)
  auto number = [&](size_t at, size_t length, int& out) {
    if (at + length > text.size()) return false;
    out = 0;
    for (size_t i = at; i < at + length; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      out = out * 10 + (text[i] - '0');
    }
    return true;
  };
  int year, month, day, hour, minute, second;
  if (!number(0, 4, year) || text.size() < 20 || text[4] != '-' || !number(5, 2, month) ||
      text[7] != '-' || !number(8, 2, day) || (text[10] != 'T' && text[10] != 't') ||
      !number(11, 2, hour) || text[13] != ':' || !number(14, 2, minute) || text[16] != ':' ||
      !number(17, 2, second)) {
    return false;
  }
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 ||
      day > kDays[month - 1] + (month == 2 && leap ? 1 : 0) || hour > 23 || minute > 59 ||
      second > 60) {
    return false;
  }
  size_t at = 19;
  if (text[at] == '.') {
    ++at;
    const size_t digits = at;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') ++at;
    if (at == digits) return false;
  }
  int offset_seconds = 0;
  if (at < text.size() && (text[at] == 'Z' || text[at] == 'z') && at + 1 == text.size()) {
    offset_seconds = 0;
  } else if (at + 6 == text.size() && (text[at] == '+' || text[at] == '-') &&
             text[at + 3] == ':') {
    int offset_hours, offset_minutes;
    if (!number(at + 1, 2, offset_hours) || !number(at + 4, 2, offset_minutes) ||
        offset_hours > 23 || offset_minutes > 59) {
      return false;
    }
    offset_seconds = (offset_hours * 60 + offset_minutes) * 60 * (text[at] == '-' ? -1 : 1);
  } else {
    return false;
  }
  // Days from the civil date (Howard Hinnant's algorithm).
  const int y = year - (month <= 2 ? 1 : 0);
  const int era = (y >= 0 ? y : y - 399) / 400;
  const int yoe = y - era * 400;
  const int doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const int64_t days = static_cast<int64_t>(era) * 146097 + doe - 719468;
  seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
  return true;
}

std::string FormatRfc3339(int64_t seconds) {
  const std::time_t time = static_cast<std::time_t>(seconds);
  std::tm utc{};
  gmtime_r(&time, &utc);
  char text[40];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S.000000000Z", &utc);
  return text;
}

Result<std::unique_ptr<Source>> SchemeSource::Create(const SourceConfig& config,
                                                     const Clock& clock) {
  const std::vector<const Secret*> secrets = AcceptedSecrets(config);
  if (!config.secret || config.secret->value.empty()) {
    return InvalidArgument(SourcePrefix(config) + "secret is missing or not resolved");
  }
  for (const std::string& from : config.dedupe) {
    const bool valid = from == "body" || (from.rfind("header:", 0) == 0 && from.size() > 7) ||
                       (!from.empty() && from[0] == '/' && IsValidJsonPointer(from));
    if (!valid) {
      return InvalidArgument(SourcePrefix(config) + "dedupe \"" + from +
                             "\" is not a JSON pointer, \"header:Name\" or \"body\"");
    }
  }
  std::unique_ptr<SchemeSource> source(new SchemeSource(config, clock));
  const Scheme& scheme = config.scheme;
  source->needs_document_ =
      !scheme.token_field.empty() ||
      (config.preset != nullptr && config.preset->handshake != Handshake::kNone) ||
      std::any_of(config.dedupe.begin(), config.dedupe.end(),
                  [](const std::string& from) { return !from.empty() && from[0] == '/'; });
  if (scheme.mode == Scheme::Mode::kToken) {
    for (const Secret* secret : secrets) source->token_digests_.push_back(Sha256Hex(secret->value));
    return std::unique_ptr<Source>(std::move(source));
  }
  std::optional<HmacAlgorithm> algorithm = ParseHmacAlgorithm(scheme.algorithm);
  if (!algorithm) {
    return InvalidArgument(SourcePrefix(config) + "algorithm \"" + scheme.algorithm +
                           "\" is not one of sha1, sha256, sha512");
  }
  if (scheme.header.empty()) {
    return InvalidArgument(SourcePrefix(config) + "header must not be empty");
  }
  Result<std::vector<TemplatePart>> parts = ParseSignedTemplate(scheme.signed_template);
  if (!parts.ok()) return InvalidArgument(SourcePrefix(config) + parts.status().message());
  if (parts->size() > kMaxTemplateParts) {
    return InvalidArgument(SourcePrefix(config) + "the signed template has more than " +
                           std::to_string(kMaxTemplateParts) + " parts");
  }
  source->template_ = std::move(parts).value();
  for (const TemplatePart& part : source->template_) {
    if (part.kind == TemplatePart::Kind::kUrl) source->signs_url_ = true;
  }
  for (const Secret* secret : secrets) {
    Result<std::string> bytes = KeyBytes(config, secret->value);
    if (!bytes.ok()) return bytes.status();
    Result<HmacKey> key = HmacKey::Create(*algorithm, *bytes);
    if (!key.ok()) return key.status();
    source->keys_.push_back(std::move(key).value());
  }
  return std::unique_ptr<Source>(std::move(source));
}

bool SchemeSource::TokenMatches(std::string_view token) const {
  // Digests have one length whatever was sent, so the comparison's time says nothing
  // about the token's length or content.
  const std::string digest = Sha256Hex(token);
  bool matched = false;
  for (const std::string& accepted : token_digests_) {
    matched = ConstantTimeEquals(digest, accepted) || matched;
  }
  return matched;
}

SourceDecision SchemeSource::Handle(const IngressRequest& request) const {
  if (request.Method() != "POST") return SourceDecision::Reject(405, "method not allowed");
  const SourceConfig& cfg = config();
  const Scheme& scheme = cfg.scheme;
  const std::string_view body = request.Body();
  const bool is_form = IsFormContentType(request.Header("Content-Type"));
  LazyBody payload(body, is_form);
  std::string error;

  if (scheme.mode == Scheme::Mode::kToken) {
    std::string_view token;
    if (!scheme.token_field.empty()) {
      const JsonBody* document = payload.Document(error);
      if (document == nullptr) return SourceDecision::Reject(400, error);
      token = document->StringAt(scheme.token_field).value_or("");
    } else {
      token = request.Header(scheme.header);
    }
    if (token.empty()) return SourceDecision::Reject(401, "missing token");
    if (!TokenMatches(token)) return SourceDecision::Reject(401, "invalid token");
  } else {
    const std::string_view header = request.Header(scheme.header);
    if (header.empty()) return SourceDecision::Reject(401, "missing signature");
    const SignatureHeader signatures = ParseSignatureHeader(header, scheme);
    if (signatures.count == 0) return SourceDecision::Reject(401, "invalid signature");

    // The replay window, when the scheme signs a timestamp: checked before the HMAC when
    // the timestamp is in a header, after it when it is in the (signed) body, so a forged
    // request never makes the body be parsed.
    auto outside_window = [&](std::string_view text) -> std::optional<SourceDecision> {
      if (text.empty()) return SourceDecision::Reject(401, "missing timestamp");
      int64_t sent_at = 0;
      const int64_t now = clock_.NowSeconds();
      const int64_t window = cfg.tolerance.count() / 1000;
      if (!ParseTimestamp(text, scheme.timestamp_format, sent_at) || sent_at > now + window ||
          sent_at < now - window) {
        return SourceDecision::Reject(401, "stale timestamp");
      }
      return std::nullopt;
    };
    std::string_view timestamp;
    if (!scheme.timestamp_header.empty()) {
      timestamp = request.Header(scheme.timestamp_header);
      if (auto refused = outside_window(timestamp)) return std::move(*refused);
    } else if (!scheme.timestamp_entry.empty()) {
      timestamp = signatures.timestamp;
      if (auto refused = outside_window(timestamp)) return std::move(*refused);
    }

    // The signed string, piece by piece (nothing is copied but the URL and form fields).
    std::array<std::string_view, kMaxTemplateParts> parts;
    size_t url_part = kMaxTemplateParts;
    std::string url;
    std::string form_params;
    for (size_t i = 0; i < template_.size(); ++i) {
      const TemplatePart& part = template_[i];
      switch (part.kind) {
        case TemplatePart::Kind::kLiteral:
          parts[i] = part.text;
          break;
        case TemplatePart::Kind::kBody:
          parts[i] = body;
          break;
        case TemplatePart::Kind::kTimestamp:
          parts[i] = timestamp;
          break;
        case TemplatePart::Kind::kHeader:
          parts[i] = request.Header(part.text);
          if (parts[i].empty()) return SourceDecision::Reject(401, "missing " + part.text + " header");
          break;
        case TemplatePart::Kind::kUrl:
          url = RequestUrl(cfg, request);
          parts[i] = url;
          url_part = i;
          break;
        case TemplatePart::Kind::kFormParams:
          if (is_form) {
            const DecodedForm* form = payload.Form(error);
            if (form == nullptr) return SourceDecision::Reject(400, error);
            form_params = SortedFormParams(*form);
          }
          parts[i] = form_params;
          break;
      }
    }
    auto matches = [&]() {
      const std::span<const std::string_view> pieces(parts.data(), template_.size());
      for (const HmacKey& key : keys_) {
        const std::string digest = key.Digest(pieces);
        if (digest.empty()) continue;
        const bool hex = scheme.encoding == Scheme::Encoding::kHex;
        const std::string expected = hex ? HexEncode(digest) : Base64Encode(digest);
        for (size_t c = 0; c < signatures.count; ++c) {
          if (hex ? SignatureMatches(signatures.candidates[c], "", expected)
                  : ConstantTimeEquals(signatures.candidates[c], expected)) {
            return true;
          }
        }
      }
      return false;
    };
    bool valid = matches();
    if (!valid && url_part != kMaxTemplateParts) {
      if (std::optional<std::string> other = TogglePort(url)) {
        url = std::move(*other);
        parts[url_part] = url;
        valid = matches();
      }
    }
    if (!valid) return SourceDecision::Reject(401, "invalid signature");

    if (!scheme.timestamp_field.empty()) {
      const JsonBody* document = payload.Document(error);
      if (document == nullptr) return SourceDecision::Reject(400, error);
      Result<std::string> text = document->KeyTextAt(scheme.timestamp_field);
      if (auto refused = outside_window(text.ok() ? std::string_view(*text) : std::string_view())) {
        return std::move(*refused);
      }
    }

    // A URL-only signature (Twilio's JSON deliveries) binds the body through its hash.
    if (cfg.preset != nullptr && !cfg.preset->body_sha256_param.empty() && !is_form) {
      std::string_view claimed = QueryParam(request.Target(), cfg.preset->body_sha256_param);
      if (claimed.empty() || !SignatureMatches(claimed, "", Sha256Hex(body))) {
        return SourceDecision::Reject(401, "body does not match " +
                                               cfg.preset->body_sha256_param);
      }
    }
  }

  std::string_view payload_text;
  if (!payload.Text(payload_text, error)) return SourceDecision::Reject(400, error);
  // The parsed document, only where a handshake, a dedupe pointer or a token field reads it
  // (a JSON body is parsed anyway by Text, to be known valid).
  const JsonBody* document = nullptr;
  if (needs_document_) {
    document = payload.Document(error);
    if (document == nullptr) return SourceDecision::Reject(400, error);
  }
  if (cfg.preset != nullptr && cfg.preset->handshake != Handshake::kNone) {
    if (std::optional<SourceDecision> answer = AnswerHandshake(request, *document)) {
      return std::move(*answer);
    }
  }

  SourceDecision decision;
  decision.kind = SourceDecision::Kind::kEnqueue;
  decision.status = 200;
  decision.headers_json = "{}";
  for (const std::string& from : cfg.dedupe) {
    if (from == "body") {
      decision.dedupe_keys.push_back(cfg.name + ":sha256:" + Sha256Hex(body));
      break;
    }
    if (from.rfind("header:", 0) == 0) {
      std::string_view value = request.Header(std::string_view(from).substr(7));
      if (!IsVisibleAscii(value)) continue;
      decision.dedupe_keys.push_back(cfg.name + ":" + std::string(value));
      break;
    }
    Result<std::string> key_text = document->KeyTextAt(from);
    if (!key_text.ok() && key_text.status().code() != StatusCode::kNotFound) {
      return SourceDecision::Reject(400, "dedupe key " + from + " is not a string or integer");
    }
    // An empty key would fold every such event into one job.
    if (!key_text.ok() || key_text->empty()) continue;
    decision.dedupe_keys.push_back(cfg.name + ":" + *key_text);
    break;
  }
  if (cfg.dedupe.empty()) decision.dedupe_keys.push_back(cfg.name + ":sha256:" + Sha256Hex(body));
  if (decision.dedupe_keys.empty()) {
    return SourceDecision::Reject(400, "dedupe key " + cfg.dedupe.back() + " missing");
  }

  if (!search_key_pointers().empty()) {
    // Read where the payload already is: a JSON body's document (parsed by Text), a
    // form's decoded fields.
    SearchKeys keys;
    if (!is_form) {
      if (const JsonBody* parsed = payload.Document(error)) {
        search_key_pointers().AddFrom(parsed->root(), keys);
      }
    } else if (const DecodedForm* form = payload.Form(error)) {
      search_key_pointers().AddFrom(*form, keys);
    }
    decision.search_keys = keys.Take();
  }

  // The token authenticated the request; the handler must not see it.
  const std::string& token_field = scheme.token_field;
  if (scheme.mode == Scheme::Mode::kToken && token_field.size() > 1 &&
      token_field.find('/', 1) == std::string::npos && token_field.find('~') == std::string::npos &&
      document->IsObject()) {
    decision.payload_json = WithoutMember(*document, std::string_view(token_field).substr(1));
  } else {
    decision.payload_json.assign(payload_text);
  }
  return decision;
}

std::optional<SourceDecision> SchemeSource::AnswerHandshake(const IngressRequest& request,
                                                            const JsonBody& document) const {
  constexpr std::nullopt_t none = std::nullopt;
  SourceDecision answer;
  answer.kind = SourceDecision::Kind::kRespond;
  answer.status = 200;
  switch (config().preset->handshake) {
    case Handshake::kNone:
      return none;
    case Handshake::kTwitch: {
      if (request.Header("Twitch-Eventsub-Message-Type") != "webhook_callback_verification") {
        return none;
      }
      std::optional<std::string_view> challenge = document.StringAt("/challenge");
      if (!challenge || challenge->empty()) return SourceDecision::Reject(400, "missing challenge");
      answer.content_type = "text/plain";
      answer.body.assign(*challenge);
      return answer;
    }
    case Handshake::kZoom: {
      if (document.StringAt("/event") != "endpoint.url_validation") return none;
      std::optional<std::string_view> plain = document.StringAt("/payload/plainToken");
      if (!plain || plain->empty()) return SourceDecision::Reject(400, "missing plainToken");
      answer.body = "{\"plainToken\":";
      AppendJsonString(answer.body, *plain);
      answer.body += ",\"encryptedToken\":\"" + keys_.front().Hex({*plain}) + "\"}";
      return answer;
    }
    case Handshake::kLine: {
      simdjson::dom::array events;
      if (document.root().at_pointer("/events").get(events) != simdjson::SUCCESS ||
          events.size() != 0) {
        return none;
      }
      answer.body = "{}";
      return answer;
    }
  }
  return none;
}

Result<SignedRequest> SchemeSource::Sign(const SourceConfig& config, std::string_view body,
                                         int64_t now_seconds, std::string_view url) {
  const Scheme& scheme = config.scheme;
  if (!config.secret || config.secret->value.empty()) {
    return InvalidArgument(SourcePrefix(config) + "secret is missing or not resolved");
  }
  SignedRequest signed_request;
  // JSON for a JSON-looking body, else a form (Twilio, Mattermost).
  const size_t first = body.find_first_not_of(" \t\r\n");
  signed_request.content_type =
      first == std::string_view::npos || body[first] == '{' || body[first] == '['
          ? "application/json"
          : "application/x-www-form-urlencoded";
  // The headers a delivery of this provider carries besides the signature (event type,
  // delivery id), with fresh ids.
  if (config.preset != nullptr) {
    for (const auto& [name, value] : config.preset->sample_headers) {
      signed_request.headers.emplace_back(name, ExpandSample(value, now_seconds));
    }
  }
  const bool is_form = IsFormContentType(signed_request.content_type);
  auto header_value = [&](std::string_view name) -> std::string_view {
    for (const auto& [header, value] : signed_request.headers) {
      if (EqualsIgnoreCase(header, name)) return value;
    }
    return {};
  };

  if (scheme.mode == Scheme::Mode::kToken) {
    if (scheme.token_field.empty()) {
      signed_request.headers.emplace_back(scheme.header, config.secret->value);
      return signed_request;
    }
    // The token goes into the body, as the provider puts it there.
    const std::string field = scheme.token_field.substr(1);
    std::string with_token;
    if (is_form) {
      with_token = std::string(body) + (body.empty() ? "" : "&") + field + "=";
      std::string encoded;
      for (unsigned char c : config.secret->value) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
          encoded.push_back(static_cast<char>(c));
        } else {
          char escaped[4];
          std::snprintf(escaped, sizeof escaped, "%%%02X", c);
          encoded += escaped;
        }
      }
      with_token += encoded;
    } else {
      const size_t brace = body.find('{');
      if (brace == std::string_view::npos) {
        return InvalidArgument(SourcePrefix(config) + "the body must be a JSON object to carry "
                                                      "the token");
      }
      std::string member;
      AppendJsonString(member, field);
      member += ":";
      AppendJsonString(member, config.secret->value);
      const size_t next = body.find_first_not_of(" \t\r\n", brace + 1);
      const bool empty = next != std::string_view::npos && body[next] == '}';
      with_token = std::string(body.substr(0, brace + 1)) + member + (empty ? "" : ",") +
                   std::string(body.substr(brace + 1));
    }
    signed_request.body = std::move(with_token);
    return signed_request;
  }

  Result<std::vector<TemplatePart>> parts = ParseSignedTemplate(scheme.signed_template);
  if (!parts.ok()) return InvalidArgument(SourcePrefix(config) + parts.status().message());
  std::optional<HmacAlgorithm> algorithm = ParseHmacAlgorithm(scheme.algorithm);
  if (!algorithm) return InvalidArgument(SourcePrefix(config) + "unknown algorithm");
  Result<std::string> key_bytes = KeyBytes(config, config.secret->value);
  if (!key_bytes.ok()) return key_bytes.status();
  Result<HmacKey> key = HmacKey::Create(*algorithm, *key_bytes);
  if (!key.ok()) return key.status();

  const std::string timestamp = FormatTimestamp(now_seconds, scheme.timestamp_format);
  if (!scheme.timestamp_header.empty()) {
    signed_request.headers.emplace_back(scheme.timestamp_header, timestamp);
  }
  std::string full_url(url);
  if (!config.public_url.empty()) full_url = config.public_url + config.path;
  if (config.preset != nullptr && !config.preset->body_sha256_param.empty() && !is_form) {
    full_url += (full_url.find('?') == std::string::npos ? "?" : "&") +
                config.preset->body_sha256_param + "=" + Sha256Hex(body);
    signed_request.url = full_url;
  }
  std::string form_params;
  if (is_form) {
    Result<DecodedForm> form = DecodedForm::Decode(body);
    if (!form.ok()) return InvalidArgument("the body is not a well-formed form");
    form_params = SortedFormParams(*form);
  }
  std::vector<std::string> ids;  // fresh values for {header:NAME}, kept alive for `pieces`
  ids.reserve(parts->size());
  std::vector<std::string_view> pieces;
  for (const TemplatePart& part : *parts) {
    switch (part.kind) {
      case TemplatePart::Kind::kLiteral:
        pieces.push_back(part.text);
        break;
      case TemplatePart::Kind::kBody:
        pieces.push_back(body);
        break;
      case TemplatePart::Kind::kTimestamp:
        pieces.push_back(timestamp);
        break;
      case TemplatePart::Kind::kHeader: {
        if (header_value(part.text).empty()) {
          signed_request.headers.emplace_back(part.text, "msg_" + RandomHex(12));
        }
        ids.emplace_back(header_value(part.text));
        pieces.push_back(ids.back());
        break;
      }
      case TemplatePart::Kind::kUrl:
        pieces.push_back(full_url);
        break;
      case TemplatePart::Kind::kFormParams:
        pieces.push_back(form_params);
        break;
    }
  }
  const std::string digest = key->Digest(pieces);
  if (digest.empty()) return Internal("HMAC computation failed");
  std::string signature = scheme.prefix + (scheme.encoding == Scheme::Encoding::kHex
                                               ? HexEncode(digest)
                                               : Base64Encode(digest));
  if (!scheme.timestamp_entry.empty()) {
    signature = scheme.timestamp_entry + timestamp + scheme.separator + signature;
  }
  signed_request.headers.emplace_back(scheme.header, std::move(signature));
  return signed_request;
}

}  // namespace firebreak
