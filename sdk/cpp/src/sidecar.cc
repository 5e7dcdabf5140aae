// The sidecar client: libcurl, one easy handle (and so one kept-alive connection) per
// thread, and the mapping of firebreak's own refusals to exceptions.
#include <curl/curl.h>

#include <cctype>
#include <cstdlib>
#include <memory>

#include "firebreak/sdk.h"

namespace firebreak {
namespace {

std::string Lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string Trim(const std::string& text) {
  size_t begin = text.find_first_not_of(" \t\r\n");
  size_t end = text.find_last_not_of(" \t\r\n");
  return begin == std::string::npos ? "" : text.substr(begin, end - begin + 1);
}

size_t CollectBody(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

size_t CollectHeader(char* data, size_t size, size_t count, void* out) {
  auto* headers = static_cast<Headers*>(out);
  std::string line(data, size * count);
  if (line.rfind("HTTP/", 0) == 0) {
    headers->clear();  // a new response (after a 100 Continue)
  } else if (size_t colon = line.find(':'); colon != std::string::npos) {
    (*headers)[Lower(Trim(line.substr(0, colon)))] = Trim(line.substr(colon + 1));
  }
  return size * count;
}

struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};

// One handle per thread: curl keeps the connection to the sidecar open between calls.
CURL* ThreadHandle() {
  static const bool initialized = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!initialized) throw TransportError("curl_global_init failed", false);
  thread_local std::unique_ptr<CURL, EasyDeleter> handle(curl_easy_init());
  if (!handle) throw TransportError("curl_easy_init failed", false);
  return handle.get();
}

std::optional<double> RetryAfter(const Headers& headers) {
  auto it = headers.find("retry-after");
  if (it == headers.end()) return std::nullopt;
  char* end = nullptr;
  double seconds = std::strtod(it->second.c_str(), &end);
  if (end == it->second.c_str()) return std::nullopt;
  return seconds;
}

}  // namespace

SidecarError::SidecarError(int status, std::string reason, std::optional<double> retry_after)
    : std::runtime_error("HTTP " + std::to_string(status) + ": " + reason),
      status_(status),
      reason_(std::move(reason)),
      retry_after_(retry_after) {}

UpstreamError::UpstreamError(int status, const std::string& body)
    : std::runtime_error("upstream answered HTTP " + std::to_string(status) + ": " +
                         body.substr(0, 200)),
      status_(status) {}

Json Response::json() const { return body.empty() ? Json() : Json::parse(body); }

const Response& Response::raise_for_status() const {
  if (status >= 400) throw UpstreamError(status, body);
  return *this;
}

void throw_sidecar_error(const Response& response) {
  const Json parsed = Json::parse(response.body, nullptr, false);
  std::string reason = parsed.is_object() && parsed.contains("error") && parsed["error"].is_string()
                           ? parsed["error"].get<std::string>()
                           : response.body;
  const std::optional<double> after = RetryAfter(response.headers);
  auto header = [&](const char* name) {
    auto it = response.headers.find(name);
    return it == response.headers.end() ? std::string() : it->second;
  };
  const int status = response.status;
  if (header("x-firebreak-breaker") == "open") throw BreakerOpen(status, reason, after);
  if (header("x-firebreak-rejected") == "rate_limit" || status == 429) {
    throw RateLimited(status, reason, after);
  }
  if (header("x-firebreak-rejected") == "concurrency") throw ConcurrencyFull(status, reason, after);
  if (status == 504) throw UpstreamTimeout(status, reason, after);
  if (status == 502) throw UpstreamUnreachable(status, reason, after);
  if (status == 412) throw Conflict(status, reason, after);
  if (status == 503) throw StoreUnavailable(status, reason, after);
  throw SidecarError(status, reason, after);
}

Sidecar::Sidecar(std::string url) : url_(std::move(url)) {
  if (url_.empty()) {
    const char* env = std::getenv("FIREBREAK_SIDECAR");
    url_ = env != nullptr && *env != '\0' ? env : "http://127.0.0.1:8081";
  }
  if (url_.rfind("http://", 0) != 0 || url_.size() <= 7) {
    throw std::invalid_argument("FIREBREAK_SIDECAR must be http://host:port, not '" + url_ + "'");
  }
  while (url_.back() == '/') url_.pop_back();
}

Response Sidecar::request(const std::string& method, const std::string& target,
                          const std::string& body, const Headers& headers,
                          double timeout_seconds) const {
  CURL* easy = ThreadHandle();
  curl_easy_reset(easy);  // keeps the connection cache
  Response response;
  const std::string url = url_ + target;
  curl_slist* list = nullptr;
  for (const auto& [name, value] : headers)
    list = curl_slist_append(list, (name + ": " + value).c_str());
  list = curl_slist_append(list, "Expect:");  // no 100-continue round trip on loopback
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "HEAD") curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_seconds * 1000 + 0.5));
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, CollectBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, CollectHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &response.headers);
  const CURLcode code = curl_easy_perform(easy);
  curl_slist_free_all(list);
  if (code != CURLE_OK) {
    throw TransportError("sidecar " + method + " " + target + ": " + curl_easy_strerror(code),
                         code == CURLE_OPERATION_TIMEDOUT);
  }
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  response.status = static_cast<int>(status);
  return response;
}

}  // namespace firebreak
