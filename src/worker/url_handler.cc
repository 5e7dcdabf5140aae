#include "worker/url_handler.h"

#include <simdjson.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/url/parse.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <utility>

#include "common/crypto.h"
#include "common/file_util.h"
#include "common/http_util.h"
#include "common/units.h"

namespace firebreak {
namespace {

constexpr long kMaxPooledConnections = 16;
// A CA file is a few KiB; a bundle of every public CA is ~220 KiB.
constexpr size_t kMaxCaFileBytes = 16 * 1024 * 1024;

#ifdef FIREBREAK_VERSION
constexpr const char* kUserAgent = "firebreak/" FIREBREAK_VERSION;
#else
constexpr const char* kUserAgent = "firebreak";
#endif

// A 2xx body may carry "actions" and "enqueue" arrays (anything else there is ignored:
// any other body is fine too), and for a batch run "results", kept as given (the worker
// checks it: worker/answer.h).
void ReadSuccessBody(std::string_view body, HandlerResult& result) {
  if (body.empty()) return;
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element document;
  if (parser.parse(body.data(), body.size()).get(document) != simdjson::SUCCESS) return;
  simdjson::dom::element value;
  if (document.at_key("actions").get(value) == simdjson::SUCCESS && value.is_array()) {
    result.actions_json = simdjson::minify(value);
  }
  if (document.at_key("enqueue").get(value) == simdjson::SUCCESS && value.is_array()) {
    result.enqueue_json = simdjson::minify(value);
  }
  if (document.at_key("results").get(value) == simdjson::SUCCESS && !value.is_null()) {
    result.results_json = simdjson::minify(value);
  }
}

// Header values must not carry control characters (no header injection).
std::string HeaderSafe(std::string_view value) {
  std::string out(value);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '_';
  }
  return out;
}

// What curl would accept and more: an absolute http(s) URL with a host, and nothing
// curl would act on silently (user info becomes Basic auth; a fragment is dropped).
Status CheckUrl(const std::string& url, bool* is_https) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("handler url " + why + ": " + url);
  };
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) return bad("is not a valid URL (" + parsed.error().message() + ")");
  const std::string scheme = AsciiLower(parsed->scheme());
  if (scheme != "http" && scheme != "https") return bad("must start with http:// or https://");
  *is_https = scheme == "https";
  if (!parsed->has_authority() || parsed->encoded_host().empty()) return bad("has no host");
  if (parsed->has_userinfo()) return bad("must not carry user info");
  if (parsed->has_fragment()) return bad("must not have a fragment");
  if (parsed->has_port() && parsed->port_number() == 0) return bad("has a bad port (1-65535)");
  return Status::Ok();
}

// The CA file must be there and hold PEM certificates; curl reads it again (and caches
// it) when it verifies a server, so this only catches a wrong path or file early.
Status CheckCaFile(const std::string& path) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("handler ca_file \"" + path + "\": " + why);
  };
  Result<std::string> text = ReadSmallFile(path, kMaxCaFileBytes);
  if (!text.ok() && text.status().code() == StatusCode::kResourceExhausted) {
    return bad("larger than 16 MiB, not a CA file");
  }
  if (!text.ok()) return bad("cannot read: " + text.status().message());
  if (text->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return bad("no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)");
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<UrlHandler>> UrlHandler::Create(const JobConfig& job,
                                                       boost::asio::io_context& io,
                                                       const Clock& clock) {
  bool is_https = false;
  if (Status status = CheckUrl(job.handler.url, &is_https); !status.ok()) return status;
  if (!job.handler.ca_file.empty()) {
    if (!is_https) {
      return InvalidArgument("handler ca_file needs an https:// url, not " + job.handler.url);
    }
    if (Status status = CheckCaFile(job.handler.ca_file); !status.ok()) return status;
  }
  return std::unique_ptr<UrlHandler>(new UrlHandler(job, io, clock));
}

UrlHandler::UrlHandler(const JobConfig& job, boost::asio::io_context& io, const Clock& clock)
    : io_(io),
      clock_(clock),
      url_(job.handler.url),
      ca_file_(job.handler.ca_file),
      client_(std::make_unique<egress::HttpClient>(
          io, std::clamp<long>(job.concurrency, 1, kMaxPooledConnections))) {}

UrlHandler::~UrlHandler() {
  client_.reset();  // aborts every transfer; its callbacks are not called
  for (auto& [id, attempt] : running_) {
    Answer(std::move(attempt.done),
           {HandlerResult::Kind::kFailed, "handler stopped", {}, {}, {}, {}});
  }
}

void UrlHandler::Run(HandlerJob job, std::chrono::milliseconds timeout, HandlerCallback done) {
  if (shutting_down_) {
    Answer(std::move(done), {HandlerResult::Kind::kFailed, "handler is shut down", {}, {}, {}, {}});
    return;
  }
  egress::ClientRequest request;
  request.method = "POST";
  request.url = url_;
  request.headers = {{"Content-Type", "application/json"},
                     {"User-Agent", kUserAgent},
                     {"X-Firebreak-Job-Id", HeaderSafe(job.id)}};
  // The attempt's span context: the bot's own spans (and its calls back through the
  // sidecar) continue the trace.
  if (IsValidTraceparent(job.traceparent)) {
    request.headers.emplace_back("traceparent", job.traceparent);
  }
  request.body = std::move(job.envelope_json);
  request.timeout = timeout;  // curl aborts the transfer then (kTimeout)
  request.max_response_bytes = kMaxResponseBody;
  request.ca_file = ca_file_;
  const uint64_t id = next_attempt_++;
  running_.emplace(id, Attempt{std::move(done), timeout});
  // The client calls back on `io_`, never inline and never once destroyed (it is ours).
  client_->Send(std::move(request), [this, id](egress::ClientResponse response) {
    OnResponse(id, std::move(response));
  });
}

void UrlHandler::Shutdown() {
  shutting_down_ = true;
  if (running_.empty()) client_.reset();  // curl_multi_cleanup closes the pooled connections
}

void UrlHandler::ReleaseClientWhenIdle() {
  if (!shutting_down_ || !running_.empty() || client_ == nullptr) return;
  std::weak_ptr<bool> alive = alive_;
  boost::asio::post(io_, [this, alive] {
    if (alive.expired() || !running_.empty()) return;
    client_.reset();
  });
}

void UrlHandler::OnResponse(uint64_t id, egress::ClientResponse response) {
  auto it = running_.find(id);
  if (it == running_.end()) return;
  Attempt attempt = std::move(it->second);
  running_.erase(it);
  Answer(std::move(attempt.done), ResultOf(response, attempt.timeout));
  ReleaseClientWhenIdle();
}

HandlerResult UrlHandler::ResultOf(const egress::ClientResponse& response,
                                   std::chrono::milliseconds timeout) const {
  using Kind = HandlerResult::Kind;
  switch (response.outcome.kind) {
    case egress::AttemptOutcome::Kind::kTimeout:
      return {Kind::kTimedOut, "timed out after " + FormatDuration(timeout), {}, {}, {}, {}};
    case egress::AttemptOutcome::Kind::kConnectFailed:
    case egress::AttemptOutcome::Kind::kConnectionError:
      if (response.body_too_large) {
        return {Kind::kFailed, "response body larger than 1 MiB", {}, {}, {}, {}};
      }
      return {Kind::kFailed, response.error, {}, {}, {}, {}};
    case egress::AttemptOutcome::Kind::kResponse:
      break;
  }
  const int status = response.outcome.status;
  HandlerResult result;
  std::string status_text = "HTTP " + std::to_string(status);
  if (status >= 200 && status < 300) {
    ReadSuccessBody(response.body, result);
  } else if (status == 408 || status == 429 || (status >= 500 && status < 600)) {
    result.kind = Kind::kFailed;
    result.error = std::move(status_text);
    for (const auto& [name, value] : response.headers) {  // names are lower-cased
      if (name == "retry-after") result.retry_after = ParseRetryAfter(value, clock_.NowMs());
    }
  } else if (status >= 400 && status < 500) {
    result.kind = Kind::kRejected;
    result.error = std::move(status_text);
  } else {
    result.kind = Kind::kFailed;  // 1xx/3xx: not an answer we understand
    result.error = std::move(status_text);
  }
  return result;
}

void UrlHandler::Answer(HandlerCallback done, HandlerResult result) {
  boost::asio::post(io_, [done = std::move(done), result = std::move(result)]() mutable {
    done(std::move(result));
  });
}

}  // namespace firebreak
