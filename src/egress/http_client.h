// Outbound HTTP(S) for integrations: libcurl's multi interface driven by an Asio
// io_context (curl's socket and timer callbacks become async_wait and steady_timer),
// so thousands of calls share one thread with the integration policies. Why curl and
// not Beast+asio::ssl: docs/egress.md (TLS with hostname checks, connection reuse,
// DNS, proxies and HTTP/2 come with it).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "egress/retry_policy.h"

namespace firebreak::egress {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct ClientRequest {
  std::string method = "GET";
  std::string url;      // absolute http:// or https:// URL
  HeaderList headers;   // sent as given (no Host, Content-Length or Transfer-Encoding)
  std::string body;     // sent when non-empty, or for methods that carry one
  std::chrono::milliseconds timeout{5000};  // the whole exchange, connect included
  size_t max_response_bytes = 16 * 1024 * 1024;
  // https only: a PEM file of the CAs trusted for this request, instead of the system
  // store ("" = the system store). Peer and host name verification are always on.
  std::string ca_file;
};

struct ClientResponse {
  AttemptOutcome outcome;  // kind + status (+ retry_after, filled by the caller)
  HeaderList headers;      // the final response's headers, names lower-cased
  std::string body;
  std::string error;       // for every kind but kResponse: curl's explanation
  // The transfer was aborted because the body passed max_response_bytes.
  bool body_too_large = false;
  std::chrono::microseconds elapsed{0};
};

// Single-threaded: construct, Send and Cancel on the thread that runs `io`; callbacks run
// there too, never inline in Send. Connections are kept and reused per host (up to
// max_connections idle). Each transfer is bounded by its timeout; curl aborts it then and
// the connection is closed (real cancellation, not an abandoned wait).
class HttpClient {
 public:
  using Callback = std::function<void(ClientResponse)>;

  explicit HttpClient(boost::asio::io_context& io, long max_connections = 256);
  // Aborts every transfer without calling its callback.
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Starts a transfer; returns its id for Cancel. A request curl refuses to start (bad
  // URL) completes with kConnectFailed, posted.
  uint64_t Send(ClientRequest request, Callback done);
  // Aborts a transfer (its callback is not called). No-op for unknown or finished ids.
  void Cancel(uint64_t id);
  size_t active() const { return transfers_.size(); }

 private:
  struct Transfer;
  struct Socket;

  static int OnSocket(void* easy, int fd, int what, void* client, void* socket_data);
  static int OnTimer(void* multi, long timeout_ms, void* client);
  void Arm(const std::shared_ptr<Socket>& socket);
  void OnSocketReady(int fd, int event);
  void OnTimeout();
  void CollectFinished();
  void Complete(std::unique_ptr<Transfer> transfer, int curl_code);

  boost::asio::io_context& io_;
  void* multi_ = nullptr;  // CURLM*
  boost::asio::steady_timer timer_;
  bool timer_armed_ = false;  // a wait on timer_ is pending
  std::chrono::steady_clock::time_point timer_deadline_;
  std::map<int, std::shared_ptr<Socket>> sockets_;  // by fd, while curl watches it
  std::map<uint64_t, std::unique_ptr<Transfer>> transfers_;
  uint64_t next_id_ = 1;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // outlived by handlers
};

}  // namespace firebreak::egress
