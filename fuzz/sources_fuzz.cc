// Every platform source's Handle on arbitrary requests. Byte 0 picks the source, byte 1
// the mode: even = the body is signed correctly by the source's own Sign (so the fuzzer
// reaches body parsing and dedupe-key extraction), odd = signature headers come from the
// input too (header parsing and comparison). Signed with byte 1 % 4 == 2, the input's
// headers win over the signer's (a preset's sample headers: Twitch's message type for its
// handshake, envelope and dedupe headers). Handle must never crash or throw, and a forged
// request must never be enqueued.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "config/webhook_presets.h"
#include "fake_request.h"
#include "ingress/source.h"

namespace firebreak {
namespace {

constexpr char kSeed[] = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
constexpr char kPublic[] = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
constexpr int64_t kNow = 1'700'000'000;

Secret Literal(const char* value) { return Secret{Secret::Kind::kEnv, "X", "fuzz:1:1", value}; }

struct Fixture {
  FakeClock clock{kNow * 1000};
  std::vector<SourceConfig> configs;
  std::vector<std::unique_ptr<Source>> sources;

  Fixture() {
    auto add = [&](SourceKind kind, const char* name) -> SourceConfig& {
      SourceConfig& c = configs.emplace_back();
      c.name = name;
      c.kind = kind;
      c.path = std::string("/hooks/") + name;
      c.job = name;
      c.secret = Literal("fuzz_secret-1");
      return c;
    };
    add(SourceKind::kSlack, "slack");
    add(SourceKind::kHmac, "hmac").dedupe = {"/id"};
    add(SourceKind::kHmac, "hmacbody");
    SourceConfig& discord = add(SourceKind::kDiscord, "discord");
    discord.secret.reset();
    discord.public_key = kPublic;
    discord.signing_key = Literal(kSeed);
    add(SourceKind::kTelegram, "telegram");
    add(SourceKind::kGithub, "github");
    add(SourceKind::kMeta, "meta").verify_token = Literal("verify");
    // Every provider preset: the declarative engine's header, timestamp, template, token
    // and handshake parsing.
    for (const WebhookPreset& preset : WebhookPresets()) {
      SourceConfig& c = add(SourceKind::kHmac, preset.name.c_str());
      c.preset = &preset;
      c.scheme = preset.scheme;
      c.tolerance = preset.tolerance;
      c.dedupe = preset.dedupe;
      c.headers = preset.headers;
      if (preset.scheme.secret_encoding == SignatureScheme::SecretEncoding::kBase64) {
        c.secret = Literal("ZnV6el9zZWNyZXQtMQ==");
      }
      c.previous_secret = Literal(c.secret->value == "fuzz_secret-1" ? "fuzz_secret-0"
                                                                      : "b2xkX3NlY3JldA==");
    }
    for (const SourceConfig& c : configs) {
      auto made = MakeSource(c, clock);
      if (!made.ok()) std::abort();
      sources.push_back(std::move(made).value());
    }
  }
};

// Splits "name: value\n" lines (up to a blank line) off the front of `data`.
std::string_view TakeHeaders(std::string_view data,
                             std::vector<std::pair<std::string, std::string>>& headers) {
  while (!data.empty()) {
    size_t end = data.find('\n');
    std::string_view line = data.substr(0, end);
    data = end == std::string_view::npos ? std::string_view() : data.substr(end + 1);
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    headers.emplace_back(line.substr(0, colon), value);
  }
  return data;
}

}  // namespace
}  // namespace firebreak

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace firebreak;
  static Fixture fixture;
  if (size < 2) return 0;
  const size_t which = data[0] % fixture.sources.size();
  const bool sign = data[1] % 2 == 0;
  const bool get = data[1] % 8 == 7;  // handshakes (meta) and 405s
  const bool input_headers_win = data[1] % 4 == 2;
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  const SourceConfig& config = fixture.configs[which];

  std::vector<std::pair<std::string, std::string>> headers;
  std::string body(TakeHeaders(rest, headers));
  constexpr std::string_view kOrigin = "http://fuzz.test";
  std::string target = get ? config.path + "?" + body.substr(0, 256) : config.path;
  std::optional<SignedRequest> signed_request;
  if (sign) {
    auto made = SignRequest(config, body, kNow, std::string(kOrigin) + target);
    if (made.ok()) {
      signed_request = std::move(made).value();
      if (signed_request->body) body = *signed_request->body;
      // Posted where the provider would post it (Twilio's JSON: ?bodySHA256=...).
      if (std::string_view url = signed_request->url; url.substr(0, kOrigin.size()) == kOrigin) {
        target = std::string(url.substr(kOrigin.size()));
      }
    }
  }
  testing::FakeRequest request(body, get ? "GET" : "POST", target);
  request.SetHeader("Host", "fuzz.test");
  if (!input_headers_win) {
    for (const auto& [name, value] : headers) request.SetHeader(name, value);
  }
  if (signed_request) {
    for (const auto& [name, value] : signed_request->headers) request.SetHeader(name, value);
    request.SetHeader("Content-Type", signed_request->content_type);
  }
  if (input_headers_win) {
    for (const auto& [name, value] : headers) request.SetHeader(name, value);
  }
  SourceDecision decision = fixture.sources[which]->Handle(request);
  // Only a correctly signed request may be stored: the fuzzer cannot compute a valid
  // signature or guess a secret token, so an unsigned request that is enqueued means a
  // broken check.
  if (!sign && decision.kind == SourceDecision::Kind::kEnqueue) std::abort();
  return 0;
}
