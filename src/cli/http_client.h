// A small blocking HTTP/1.1 client for the CLI (`firebreak send`) and tests.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace firebreak {

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string Header(std::string_view name) const;  // case-insensitive; "" if absent
};

struct HttpRequest {
  std::string method = "POST";
  std::string url;  // http://host:port/path?query
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{10'000};
};

// One request on a fresh connection. kUnavailable on connection errors,
// kDeadlineExceeded on timeout, kInvalidArgument on a bad URL.
Result<HttpResponse> HttpCall(const HttpRequest& request);

// A keep-alive connection for many sequential requests to one host (tests, load).
// Not thread-safe. Reconnects transparently when the server closed the connection
// before a request was written.
class HttpConnection {
 public:
  HttpConnection(std::string host, uint16_t port);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;
  Result<HttpResponse> Send(const std::string& method, const std::string& target,
                            const std::vector<std::pair<std::string, std::string>>& headers,
                            const std::string& body,
                            std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace firebreak
