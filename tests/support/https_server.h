// TLS for tests: a throwaway PKI made with the `openssl` CLI, and a real HTTPS server
// (python3's http.server behind its ssl module) started as a child process on a free
// loopback port and stopped by PID. The server answers every request with the reply
// the test set last, and records what it saw (handshakes, failed handshakes, requests,
// closed connections) in a file the test reads back.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace firebreak::testing {

// PEM files in one directory. Every certificate is valid from now for two days.
struct TestCertificates {
  std::string ca_file;      // the test CA's certificate: what a client must trust
  std::string server_cert;  // signed by the CA for DNS:localhost and IP:127.0.0.1
  std::string server_key;
  std::string other_cert;  // signed by the CA for DNS:other.invalid only
  std::string other_key;
};

// Makes a CA and the two server certificates in `dir` (which must exist). On failure
// the message holds openssl's output.
Result<TestCertificates> MakeTestCertificates(const std::string& dir);

// What the server answers; every request gets the latest one.
struct HttpsReply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Answer after this long; if the client closes the connection meanwhile the request
  // is not answered and the close is recorded at once.
  std::chrono::milliseconds delay{0};
};

struct HttpsRequest {
  std::string connection;  // the client's "ip:port": equal for requests on one connection
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string Header(const std::string& lower_name) const;  // "" when absent
};

class HttpsServer {
 public:
  // Serves with `cert_file` and `key_file`; keeps its script, state and log in `dir`
  // (which must exist and be the server's alone).
  HttpsServer(std::string dir, std::string cert_file, std::string key_file);
  ~HttpsServer();  // SIGKILL by PID if still running, and waited for
  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;

  // Starts python3 and waits until it listens; false on failure (see Log()).
  bool Start(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void Stop();  // SIGKILL by PID and wait
  // Applies to requests read from now on.
  bool SetReply(const HttpsReply& reply);

  uint16_t port() const { return port_; }
  // "https://127.0.0.1:PORT" + path ("localhost" instead with `host`).
  std::string Url(const std::string& path, const std::string& host = "127.0.0.1") const;

  std::vector<HttpsRequest> Requests() const;
  int Handshakes() const;  // TLS handshakes completed
  // The server's error for each handshake that failed (e.g. the client's alert).
  std::vector<std::string> FailedHandshakes() const;
  int ClosedConnections() const;  // handshaken connections that have ended
  std::string Log() const;        // the server's output

 private:
  std::string dir_;
  std::string cert_file_;
  std::string key_file_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace firebreak::testing
