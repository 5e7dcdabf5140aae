// What verifying and turning one webhook request into a job costs per source kind: the
// hand-written `slack` source against the declarative signature engine (kind "hmac" and
// the provider presets). Each case is one correctly signed request (made by the kind's
// own SignRequest at the fake clock's time) that the source enqueues, measured as the
// server does it: Source::Handle on a Beast request, then the envelope headers the
// server appends for a source with `headers`. The JSON body is the same ~1 KB Slack
// event for every JSON case (it also has the "id" stripe and hmac dedupe on); Twilio
// posts a ~1 KB form, as it does, and `slack-form` (a slash command) is Slack's form
// path for comparison. Acceptance for the presets: no more than `slack` per request,
// ±10%. bench/sources_bench.sh runs these and prints the ratios.
#include <benchmark/benchmark.h>

#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "config/config.h"
#include "ingress/beast_request.h"
#include "ingress/source.h"

namespace firebreak {
namespace {

namespace http = boost::beast::http;

constexpr int64_t kNow = 1'700'000'000;

// Fields like a real delivery's; Slack's blocks repeat the text, as Slack's do.
constexpr char kJsonBody[] =
    R"({"token":"XXYYZZ","team_id":"T061EG9R6","api_app_id":"A0PNCHHK2","id":"evt_1PqR8sT2uV3wX4yZ",)"
    R"("event":{"type":"message","channel":"C024BE91L","user":"U2147483697","text":"Deploy of )"
    R"(api-gateway v2.14.3 to production finished: 42 pods rolled, 0 restarts, p99 latency 118 )"
    R"(ms. <https://ci.example.com/runs/88123|Run 88123>","ts":"1700000000.000200",)"
    R"("client_msg_id":"5a7c9d1e-3b2f-4e8a-9c6d-1f0e2b3a4c5d","team":"T061EG9R6","blocks":[)"
    R"({"type":"rich_text","block_id":"Ab3dE","elements":[{"type":"rich_text_section",)"
    R"("elements":[{"type":"text","text":"Deploy of api-gateway v2.14.3 to production )"
    R"(finished: 42 pods rolled, 0 restarts, p99 latency 118 ms. "},{"type":"link",)"
    R"("url":"https://ci.example.com/runs/88123","text":"Run 88123"}]}]}],)"
    R"("channel_type":"channel","event_ts":"1700000000.000200"},"type":"event_callback",)"
    R"("event_id":"Ev061EG9R6ABCD","event_time":1700000000,"authorizations":[{"enterprise_id":)"
    R"(null,"team_id":"T061EG9R6","user_id":"U0LAN0Z89","is_bot":true,)"
    R"("is_enterprise_install":false}],"is_ext_shared_channel":false,"event_context":)"
    R"("4-eyJldCI6Im1lc3NhZ2UiLCJ0aWQiOiJUMDYxRUc5UjYiLCJhaWQiOiJBMFBOQ0hISzIiLCJjaWQiOiJDMDI0QkU5MUwifQ"})";

// An inbound SMS as Twilio posts it (its real field set).
constexpr char kFormBody[] =
    "ToCountry=US&ToState=CA&SmsMessageSid=SM1f0e2b3a4c5d5a7c9d1e3b2f4e8a9c6d&NumMedia=0"
    "&ToCity=SAN+FRANCISCO&FromZip=94105&SmsSid=SM1f0e2b3a4c5d5a7c9d1e3b2f4e8a9c6d"
    "&FromState=CA&SmsStatus=received&FromCity=SAN+FRANCISCO"
    "&Body=Deploy+of+api-gateway+v2.14.3+to+production+finished%3A+42+pods+rolled%2C+0+"
    "restarts%2C+p99+latency+118+ms.+Run+88123+https%3A%2F%2Fci.example.com%2Fruns%2F88123+"
    "%E2%80%94+reply+ROLLBACK+to+undo+or+STATUS+for+details.+Deploy+of+api-gateway+v2.14.3+"
    "to+production+finished%3A+42+pods+rolled%2C+0+restarts%2C+p99+latency+118+ms.+Run+88123"
    "&FromCountry=US&To=%2B14155550100&MessagingServiceSid=MG9c6d1f0e2b3a4c5d5a7c9d1e3b2f4e8a"
    "&ToZip=94105&NumSegments=2&ReferralNumMedia=0&MessageSid=SM1f0e2b3a4c5d5a7c9d1e3b2f4e8a9c6d"
    "&AccountSid=AC5a7c9d1e3b2f4e8a9c6d1f0e2b3a4c5d&From=%2B14155550199&ApiVersion=2010-04-01"
    "&OptOutType=&AddOns=%7B%22status%22%3A%22successful%22%2C%22message%22%3Anull%2C%22code"
    "%22%3Anull%2C%22results%22%3A%7B%7D%7D";

// A slash command as Slack posts it: Slack's form path, the like-for-like baseline for
// Twilio's form.
constexpr char kSlackFormBody[] =
    "token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T061EG9R6&team_domain=example"
    "&enterprise_id=E0001&enterprise_name=Globular%20Construct%20Inc&channel_id=C024BE91L"
    "&channel_name=deploys&user_id=U2147483697&user_name=Steve&command=%2Fdeploy"
    "&text=api-gateway+v2.14.3+to+production+%E2%80%94+42+pods%2C+canary+10%25+for+15+"
    "minutes%2C+then+the+rest%3B+notify+%23ops+and+%23api-team+when+done%2C+roll+back+"
    "automatically+if+p99+latency+goes+over+250+ms+or+the+error+rate+over+0.5%25+during+"
    "the+canary.+Deploy+of+api-gateway+v2.14.3+to+production%3A+42+pods+rolled%2C+0+"
    "restarts%2C+p99+latency+118+ms.+Run+88123+https%3A%2F%2Fci.example.com%2Fruns%2F88123"
    "+%E2%80%94+ping+%40oncall+if+anything+looks+off+during+the+rollout+and+keep+%23inc+open"
    "&api_app_id=A0PNCHHK2&is_enterprise_install=false"
    "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1234%2F5678%2FabCdEfGhIjKlMnOp"
    "&trigger_id=13345224609.738474920.8088930838d88f008e0";

// Every case's source, as a config file declares it (so presets are filled in exactly
// as `firebreak run` fills them). Secrets are set after parsing.
constexpr char kConfig[] = R"(
[[sources]]
name = "slack"
kind = "slack"
path = "/hooks/slack"
secret = { env = "BENCH_SECRET" }
job = "t"

[[sources]]
name = "slack-form"
kind = "slack"
path = "/hooks/slack-form"
secret = { env = "BENCH_SECRET" }
job = "t"

[[sources]]
name = "hmac"
kind = "hmac"
path = "/hooks/hmac"
secret = { env = "BENCH_SECRET" }
job = "t"
header = "X-Signature"
prefix = "sha256="
dedupe = "/id"

# Slack's own scheme through the engine: the engine's overhead with Slack's crypto.
[[sources]]
name = "hmac-as-slack"
kind = "hmac"
path = "/hooks/hmac-as-slack"
secret = { env = "BENCH_SECRET" }
job = "t"
dedupe = ["/event_id"]
scheme = { header = "X-Slack-Signature", prefix = "v0=", signed = "v0:{timestamp}:{body}", timestamp_header = "X-Slack-Request-Timestamp" }

[[sources]]
name = "stripe"
kind = "stripe"
path = "/hooks/stripe"
secret = { env = "BENCH_SECRET" }
job = "t"

[[sources]]
name = "standard-webhooks"
kind = "standard-webhooks"
path = "/hooks/standard-webhooks"
secret = { env = "BENCH_SECRET_B64" }
job = "t"

[[sources]]
name = "shopify"
kind = "shopify"
path = "/hooks/shopify"
secret = { env = "BENCH_SECRET" }
job = "t"

[[sources]]
name = "twitch"
kind = "twitch"
path = "/hooks/twitch"
secret = { env = "BENCH_SECRET" }
job = "t"

[[sources]]
name = "twilio"
kind = "twilio"
path = "/hooks/twilio"
secret = { env = "BENCH_SECRET" }
public_url = "https://bot.example.com"
job = "t"

[[sources]]
name = "gitlab"
kind = "gitlab"
path = "/hooks/gitlab"
secret = { env = "BENCH_SECRET" }
job = "t"

[[jobs]]
type = "t"
handler = { url = "http://127.0.0.1:9/" }
)";

constexpr char kSecret[] = "8f742231b10e8888abcd99yyyzzz85a5";
constexpr char kSecretB64[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// The server's view of a request (ingress/server.cc's BeastRequestView): Beast's own
// case-insensitive header lookup, no copies.
struct Case {
  const SourceConfig* config;
  std::unique_ptr<Source> source;
  net::Request request;
};

struct Fixture {
  FakeClock clock{kNow * 1000};
  Config config;
  std::vector<Case> cases;
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "sources_bench: %s\n", what.c_str());
  std::abort();
}

Fixture& Shared() {
  static Fixture* fixture = [] {
    auto* f = new Fixture();
    Result<Config> parsed = ParseConfig(kConfig, "sources_bench.toml");
    if (!parsed.ok()) Die(parsed.status().message());
    f->config = std::move(parsed).value();
    for (SourceConfig& source : f->config.sources) {
      source.secret->value = source.secret->ref == "BENCH_SECRET_B64" ? kSecretB64 : kSecret;
    }
    for (const SourceConfig& source : f->config.sources) {
      Case c;
      c.config = &source;
      Result<std::unique_ptr<Source>> made = MakeSource(source, f->clock);
      if (!made.ok()) Die(made.status().message());
      c.source = std::move(made).value();
      const std::string body = source.name == "twilio"       ? kFormBody
                               : source.name == "slack-form" ? kSlackFormBody
                                                             : kJsonBody;
      Result<SignedRequest> signed_request =
          SignRequest(source, body, kNow, "https://bot.example.com" + source.path);
      if (!signed_request.ok()) Die(signed_request.status().message());
      net::Request& req = c.request;
      req.method(http::verb::post);
      req.target(signed_request->url.empty()
                     ? source.path
                     : signed_request->url.substr(
                           std::string_view(signed_request->url).find(source.path)));
      req.version(11);
      // What a proxy in front passes on besides the platform's own headers.
      req.set(http::field::host, "bot.example.com");
      req.set(http::field::user_agent, "Platform-Hookshot/1.0 (+https://example.com/webhooks)");
      req.set(http::field::accept, "*/*; q=0.5, application/xml");
      req.set(http::field::accept_encoding, "gzip");
      req.set("X-Forwarded-For", "203.0.113.7");
      req.set("X-Forwarded-Proto", "https");
      req.set("X-Request-Id", "4b1e9c0a-8d2f-4a7e-b3c6-5f0d1e2a3b4c");
      req.set(http::field::content_type, signed_request->content_type);
      for (const auto& [name, value] : signed_request->headers) req.set(name, value);
      req.body() = signed_request->body ? *signed_request->body : body;
      req.prepare_payload();
      // The case must be the accepted path, not a cheap rejection.
      SourceDecision decision = c.source->Handle(BeastRequestView(req));
      if (decision.kind != SourceDecision::Kind::kEnqueue) {
        Die(source.name + ": the signed request was answered " + std::to_string(decision.status) +
            " " + decision.error);
      }
      f->cases.push_back(std::move(c));
    }
    return f;
  }();
  return *fixture;
}

// `envelope` false: Handle alone, to see what copying the preset's headers costs.
void BM_SourceHandle(benchmark::State& state, const char* name, bool envelope) {
  const Case* found = nullptr;
  for (const Case& c : Shared().cases) {
    if (c.config->name == name) found = &c;
  }
  if (found == nullptr) Die(std::string("no source ") + name);
  const Case& c = *found;
  const BeastRequestView request(c.request);
  for (auto _ : state) {
    SourceDecision decision = c.source->Handle(request);
    // The server adds the envelope headers (presets' `headers`) after Handle.
    if (envelope) c.source->envelope_headers().AppendTo(request, decision.headers_json);
    benchmark::DoNotOptimize(decision);
  }
  state.SetLabel(std::to_string(c.request.body().size()) + " B body");
  state.SetItemsProcessed(state.iterations());
}

// One benchmark per source of kConfig (slack first: the baseline); then, for the presets
// that copy headers into the envelope, Handle alone.
const bool kRegistered = [] {
  for (const char* name : {"slack", "slack-form", "hmac", "hmac-as-slack", "stripe",
                           "standard-webhooks", "shopify", "twitch", "twilio", "gitlab"}) {
    benchmark::RegisterBenchmark((std::string("BM_SourceHandle/") + name).c_str(), BM_SourceHandle,
                                 name, true);
  }
  for (const char* name : {"standard-webhooks", "shopify", "twitch", "twilio", "gitlab"}) {
    benchmark::RegisterBenchmark(
        (std::string("BM_SourceHandle/") + name + "/without_envelope").c_str(), BM_SourceHandle,
        name, false);
  }
  return true;
}();

}  // namespace
}  // namespace firebreak
