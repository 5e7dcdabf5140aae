// A simulated external API (Slack, OpenAI, a CRM...) for tests: a real HTTP/1.1 server on
// a free loopback port, in this process, whose answers a test scripts per request. It can
// be slow, hang, fail, rate-limit or drop connections, and it records what it saw: every
// request, its own peak concurrency, and connections the client gave up on.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace firebreak::testing {

struct UpstreamRequest {
  std::string method;
  std::string target;                         // path and query as sent
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::chrono::steady_clock::time_point at;   // when the request was fully read
  std::string Header(const std::string& lower_name) const;
};

struct UpstreamReply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body = "{\"ok\":true}";
  std::chrono::milliseconds delay{0};  // answer after this long
  bool hang = false;   // never answer: wait until the client closes the connection
  bool drop = false;   // close the connection without answering
};

class UpstreamServer {
 public:
  using Behavior = std::function<UpstreamReply(const UpstreamRequest&)>;

  // Answers 200 {"ok":true} until SetBehavior says otherwise. Listens at once.
  explicit UpstreamServer(Behavior behavior = {}, int threads = 2);
  ~UpstreamServer();
  UpstreamServer(const UpstreamServer&) = delete;
  UpstreamServer& operator=(const UpstreamServer&) = delete;

  uint16_t port() const { return port_; }
  std::string Url() const;  // "http://127.0.0.1:PORT"
  // Thread-safe; applies to requests read from now on. The behavior runs on a server
  // thread, possibly on several at once.
  void SetBehavior(Behavior behavior);

  int64_t requests() const { return requests_.load(); }
  int64_t connections() const { return connections_.load(); }  // accepted so far
  int in_flight() const { return in_flight_.load(); }
  int peak_in_flight() const { return peak_in_flight_.load(); }
  // Requests answered with `hang` whose client closed the connection (gave up).
  int64_t abandoned() const { return abandoned_.load(); }
  // ...of which the client aborted with a reset (RST), not a graceful close (FIN).
  int64_t aborted() const { return aborted_.load(); }
  std::vector<UpstreamRequest> Requests() const;  // every request so far, in arrival order
  void ResetStats();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> connections_{0};
  std::atomic<int> in_flight_{0};
  std::atomic<int> peak_in_flight_{0};
  std::atomic<int64_t> abandoned_{0};
  std::atomic<int64_t> aborted_{0};
  friend struct Impl;
};

}  // namespace firebreak::testing
