#include "admin/console.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

#include "admin/admin_http.h"
#include "admin/ui_assets.h"
#include "common/crypto.h"
#include "common/http_util.h"

namespace firebreak::admin {
namespace {

namespace http = boost::beast::http;

constexpr std::string_view kRoot = "/admin";
constexpr std::string_view kIndexPath = "/admin/";
constexpr std::string_view kAssetsPrefix = "/admin/assets/";
constexpr std::string_view kIndexAsset = "index.html";
constexpr std::string_view kNoncePlaceholder = "{{nonce}}";
constexpr std::string_view kVersionPlaceholder = "{{version}}";

// Replaces every `placeholder` in `text` with `value`.
void ReplaceAll(std::string& text, std::string_view placeholder, std::string_view value) {
  for (size_t at = text.find(placeholder); at != std::string::npos;
       at = text.find(placeholder, at + value.size())) {
    text.replace(at, placeholder.size(), value);
  }
}

std::string SessionMessage(const ConsoleSession& session) {
  return "v1|" + session.token_name + "|" + std::to_string(session.expires_at_ms) + "|" +
         session.nonce;
}

std::string_view ContentTypeOf(std::string_view asset) {
  auto ends = [&](std::string_view suffix) { return asset.ends_with(suffix); };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js") || ends(".mjs")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  if (ends(".ico")) return "image/x-icon";
  if (ends(".json")) return "application/json";
  return "application/octet-stream";
}

// Headers every console answer carries: no sniffing, no framing, no referrer.
void Harden(net::Response& res) {
  res.set("X-Content-Type-Options", "nosniff");
  res.set("X-Frame-Options", "DENY");
  res.set("Referrer-Policy", "no-referrer");
  res.set("Cross-Origin-Opener-Policy", "same-origin");
}

// "Host: a.example:8080" → "a.example:8080", lowercased; the first of a list (a proxy
// chain's X-Forwarded-Host).
std::string FirstHost(std::string_view value) {
  value = value.substr(0, value.find(','));
  return AsciiLower(TrimBlanks(value));
}

}  // namespace

std::string SessionKey(std::string_view token_value) {
  return HmacHex(HmacAlgorithm::kSha256, token_value, "firebreak console session v1");
}

std::string SignSession(std::string_view key, const ConsoleSession& session) {
  return session.token_name + ":" + std::to_string(session.expires_at_ms) + ":" + session.nonce +
         ":" + HmacHex(HmacAlgorithm::kSha256, key, SessionMessage(session));
}

std::optional<SignedSession> ReadSessionCookie(const net::Request& req) {
  auto [first, last] = req.equal_range(http::field::cookie);
  for (auto it = first; it != last; ++it) {
    std::string_view cookies(it->value());
    while (!cookies.empty()) {
      size_t end = cookies.find(';');
      std::string_view pair = TrimBlanks(cookies.substr(0, end));
      cookies = end == std::string_view::npos ? std::string_view() : cookies.substr(end + 1);
      size_t eq = pair.find('=');
      if (eq == std::string_view::npos || pair.substr(0, eq) != kSessionCookie) continue;
      std::string_view value = pair.substr(eq + 1);
      // name:expires:nonce:mac; a token name has no ':' ([A-Za-z0-9_.-]).
      std::vector<std::string_view> parts;
      while (parts.size() < 4) {
        size_t colon = value.find(':');
        parts.push_back(value.substr(0, colon));
        if (colon == std::string_view::npos) break;
        value = value.substr(colon + 1);
      }
      if (parts.size() != 4 || parts[0].empty() || parts[2].empty() || parts[3].empty()) {
        return std::nullopt;
      }
      SignedSession out;
      out.session.token_name = std::string(parts[0]);
      auto [ptr, ec] = std::from_chars(parts[1].data(), parts[1].data() + parts[1].size(),
                                       out.session.expires_at_ms);
      if (ec != std::errc() || ptr != parts[1].data() + parts[1].size()) return std::nullopt;
      out.session.nonce = std::string(parts[2]);
      out.mac = std::string(parts[3]);
      return out;
    }
  }
  return std::nullopt;
}

bool VerifySession(std::string_view key, const SignedSession& signed_session, int64_t now_ms) {
  const std::string expected =
      HmacHex(HmacAlgorithm::kSha256, key, SessionMessage(signed_session.session));
  return ConstantTimeEquals(expected, signed_session.mac) &&
         signed_session.session.expires_at_ms > now_ms;
}

std::string CsrfToken(std::string_view key, const ConsoleSession& session) {
  return HmacHex(HmacAlgorithm::kSha256, key, "csrf|" + SessionMessage(session)).substr(0, 40);
}

std::string SessionSetCookie(const net::Request& req, std::string_view value,
                             int64_t max_age_s) {
  std::string cookie = std::string(kSessionCookie) + "=" + std::string(value) +
                       "; Max-Age=" + std::to_string(max_age_s) + "; HttpOnly; SameSite=Strict";
  auto proto = req.find("X-Forwarded-Proto");
  if (proto != req.end() && FirstHost(proto->value()) == "https") cookie += "; Secure";
  return cookie;
}

std::string CrossOriginRefusal(const net::Request& req) {
  auto fetch_site = req.find("Sec-Fetch-Site");
  if (fetch_site != req.end() && fetch_site->value() != "same-origin") {
    return "cross-site request refused (Sec-Fetch-Site: " + std::string(fetch_site->value()) +
           ")";
  }
  auto origin_field = req.find(http::field::origin);
  if (origin_field == req.end()) return "a browser session's changes must carry an Origin header";
  std::string_view origin(origin_field->value());
  size_t scheme_end = origin.find("://");
  if (scheme_end == std::string_view::npos) return "cross-origin request refused (Origin: null)";
  const std::string origin_host = AsciiLower(origin.substr(scheme_end + 3));
  for (std::string_view field : {"Host", "X-Forwarded-Host"}) {
    auto host = req.find(field);
    if (host != req.end() && !origin_host.empty() && FirstHost(host->value()) == origin_host) {
      return "";
    }
  }
  return "cross-origin request refused (Origin: " + std::string(origin) + ")";
}

ConsoleAssets::ConsoleAssets(std::string dev_dir) : dev_dir_(std::move(dev_dir)) {
  if (!dev_dir_.empty()) {
    version_ = "dev";
    return;
  }
  std::string all;
  for (const UiAsset& asset : EmbeddedUiAssets()) {
    all.append(asset.path).push_back('\0');
    all.append(asset.bytes).push_back('\0');
  }
  version_ = Sha256Hex(all).substr(0, 12);
}

bool ConsoleAssets::Serves(std::string_view path) {
  return path == kRoot || path == kIndexPath || path.starts_with(kAssetsPrefix);
}

std::optional<std::string> ConsoleAssets::Read(std::string_view asset) const {
  if (!dev_dir_.empty()) {
    std::ifstream in(dev_dir_ + "/" + std::string(asset), std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream bytes;
    bytes << in.rdbuf();
    return bytes.str();
  }
  auto assets = EmbeddedUiAssets();
  auto it = std::lower_bound(assets.begin(), assets.end(), asset,
                             [](const UiAsset& a, std::string_view p) { return a.path < p; });
  if (it == assets.end() || it->path != asset) return std::nullopt;
  return std::string(it->bytes);
}

net::Response ConsoleAssets::Serve(const net::Request& req, std::string_view path) const {
  if (req.method() != http::verb::get) {
    net::Response res = Error(req, http::status::method_not_allowed, "use GET");
    res.set(http::field::allow, "GET");
    return res;
  }
  if (path == kRoot) {
    // Relative, so that behind a proxy at /ops/ the browser goes to /ops/admin/.
    net::Response res = net::MakeResponse(req, http::status::moved_permanently, "");
    res.set(http::field::location, "admin/");
    Harden(res);
    return res;
  }
  const bool index = path == kIndexPath;
  std::string_view asset = kIndexAsset;
  if (!index) {
    // assets/<version>/<file>: another version is a page of another binary (or build).
    std::string_view rest = path.substr(kAssetsPrefix.size());
    const size_t slash = rest.find('/');
    if (slash == std::string_view::npos || rest.substr(0, slash) != version_) {
      return Error(req, http::status::not_found,
                   "no console file " + std::string(path) + " (this is version " + version_ + ")");
    }
    asset = rest.substr(slash + 1);
  }
  // The page itself is only served with its CSP; no climbing out of the folder.
  if (asset.empty() || (!index && asset == kIndexAsset) ||
      asset.find("..") != std::string_view::npos || asset.find('\\') != std::string_view::npos ||
      asset.starts_with('/')) {
    return Error(req, http::status::not_found, "no console file " + std::string(path));
  }
  std::optional<std::string> bytes = Read(asset);
  if (!bytes) {
    std::string error = "no console file " + std::string(path);
    if (index) error += " (this binary was built without src/admin/ui)";
    return Error(req, http::status::not_found, error);
  }
  if (index) {
    // A fresh nonce per answer: the only scripts that run are the page's own tags.
    std::string raw(16, '\0');
    RandomBytes(raw.data(), raw.size());
    const std::string nonce = Base64Encode(raw);
    std::string page = std::move(*bytes);
    ReplaceAll(page, kNoncePlaceholder, nonce);
    ReplaceAll(page, kVersionPlaceholder, version_);
    net::Response res =
        net::MakeResponse(req, http::status::ok, std::move(page), ContentTypeOf(kIndexAsset));
    res.set(http::field::cache_control, "no-store");
    res.set("Content-Security-Policy",
            "default-src 'none'; script-src 'nonce-" + nonce +
                "' 'strict-dynamic'; style-src 'self'; img-src 'self' data:; "
                "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
                "form-action 'self'; frame-ancestors 'none'");
    Harden(res);
    return res;
  }
  const std::string etag = "\"" + version_ + "-" + Sha256Hex(*bytes).substr(0, 16) + "\"";
  auto if_none_match = req.find(http::field::if_none_match);
  net::Response res =
      if_none_match != req.end() && if_none_match->value() == etag
          ? net::MakeResponse(req, http::status::not_modified, "")
          : net::MakeResponse(req, http::status::ok, std::move(*bytes), ContentTypeOf(asset));
  res.set(http::field::etag, etag);
  // The URL names the version: it never changes content, so it is never asked again.
  // Served from disk (dev), it is revalidated every time instead.
  res.set(http::field::cache_control,
          version_ == "dev" ? "no-cache" : "public, max-age=31536000, immutable");
  Harden(res);
  return res;
}

}  // namespace firebreak::admin
