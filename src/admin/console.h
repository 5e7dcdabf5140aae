// The web console (issue 16, docs/web-console.md): the browser app served under /admin/
// on the admin listener, and what its login needs: signed session cookies, CSRF tokens
// and the same-origin check. The admin API (admin_api.cc) wires these into its gate.
//
//   GET  /admin                 301 to admin/ (relative: works under any proxy prefix)
//   GET  /admin/                the app's page, with a fresh CSP nonce
//   GET  /admin/assets/<version>/<path>   the app's files (src/admin/ui/<path>), embedded;
//                               <version> is a hash of them all, so they are cached for
//                               good and an upgraded binary's page asks for new URLs
//   POST /admin/login           {"token":"..."} → the session cookie (admin_api.cc)
//   POST /admin/logout          clears it (admin_api.cc)
//
// Sessions are stateless, so every process behind a load balancer accepts them and a
// restart keeps them: the cookie is `<token name>:<expires ms>:<nonce>:<mac>`, the MAC an
// HMAC-SHA256 keyed by a key derived from that token's value. Changing a token ends its
// sessions; logging out clears the cookie (a copy taken before stays valid until it
// expires, 12 h at most).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "net/http_server.h"

namespace firebreak::admin {

inline constexpr std::string_view kSessionCookie = "fb_session";
inline constexpr std::string_view kCsrfHeader = "X-CSRF-Token";
inline constexpr int64_t kSessionLifetimeMs = 12 * 3600 * 1000;

// The key a token's sessions are signed with (never the token itself, so a cookie's
// MAC says nothing usable about the token).
std::string SessionKey(std::string_view token_value);

struct ConsoleSession {
  std::string token_name;
  int64_t expires_at_ms = 0;
  std::string nonce;  // hex; also what the CSRF token is derived from
};

// The cookie value for `session`, signed with `key`.
std::string SignSession(std::string_view key, const ConsoleSession& session);

// The session in the request's `fb_session` cookie, signature not yet checked (the
// caller finds the token's key by name, then calls VerifySession); nullopt when there is
// no such cookie or it is malformed.
struct SignedSession {
  ConsoleSession session;
  std::string mac;
};
std::optional<SignedSession> ReadSessionCookie(const net::Request& req);

// True when `signed_session` was signed with `key` and is not expired at `now_ms`.
bool VerifySession(std::string_view key, const SignedSession& signed_session, int64_t now_ms);

// The CSRF token of a session: the page reads it from /session and sends it in
// X-CSRF-Token with every mutation; a cross-site page cannot read it.
std::string CsrfToken(std::string_view key, const ConsoleSession& session);

// Set-Cookie for `value` (HttpOnly, SameSite=Strict, Secure when the request came over
// https: X-Forwarded-Proto from the proxy in front). No Path: the browser scopes it to
// the login URL's directory, i.e. <prefix>/admin, whatever the proxy's prefix is.
std::string SessionSetCookie(const net::Request& req, std::string_view value,
                             int64_t max_age_s);

// The browser-request check for a mutation made with a cookie: `Origin` must be present
// and name the host the request was sent to (Host, or X-Forwarded-Host behind a proxy),
// and `Sec-Fetch-Site`, when sent, must be same-origin. "" when it passes, else why not.
std::string CrossOriginRefusal(const net::Request& req);

// The app's files. `dev_dir` (FIREBREAK_ADMIN_UI_DIR) serves them from disk instead of
// the embedded copy, read at every request: for working on the console without
// rebuilding.
class ConsoleAssets {
 public:
  explicit ConsoleAssets(std::string dev_dir = "");

  // The first 12 hex digits of SHA-256 over every embedded file; "dev" when served from
  // disk (then nothing is cached).
  const std::string& version() const { return version_; }

  // True for the paths this serves without authentication: /admin, /admin/ and
  // /admin/assets/... (GET and HEAD).
  static bool Serves(std::string_view path);

  // Answers a request for one of those paths: 200 (or 304 for a matching
  // If-None-Match), 404 for a file that does not exist or another version, 405 for
  // another method.
  net::Response Serve(const net::Request& req, std::string_view path) const;

 private:
  std::optional<std::string> Read(std::string_view asset) const;
  std::string dev_dir_;
  std::string version_;
};

}  // namespace firebreak::admin
