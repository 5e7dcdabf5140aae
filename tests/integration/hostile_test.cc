// Hostile clients (issue 4): whatever a connection sends, or doesn't, the server answers
// or closes it and goes on serving well-formed requests.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace firebreak::testing {
namespace {

int Connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// True when the server closed `fd` (EOF or reset) within `timeout_ms`.
bool ClosedByServer(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return false;
  char c;
  return recv(fd, &c, 1, 0) <= 0;
}

// Sends `bytes` on a fresh connection and returns the status code of the answer, 0 if
// the server closed without one, -1 if it neither answered nor closed in `timeout_ms`.
int RawExchange(uint16_t port, const std::string& bytes, int timeout_ms = 5000) {
  int fd = Connect(port);
  if (fd < 0) return -1;
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer and close before reading it all
    sent += static_cast<size_t>(n);
  }
  std::string reply;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) {
      close(fd);
      return -1;
    }
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
    if (reply.find("\r\n") != std::string::npos) break;
  }
  close(fd);
  if (reply.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::stoi(reply.substr(9, 3));
}

std::string SignedPost(const std::string& body, const std::string& extra_headers = "") {
  return "POST /hooks/h HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "X-Signature: " +
         HmacSha256Hex("hostile-secret", body) +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" +
         body;
}

// Resident set size of `pid` in KiB (0 if unreadable).
long RssKib(pid_t pid) {
  for (const std::string& line : ReadLines("/proc/" + std::to_string(pid) + "/status")) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

class HostileTest : public ::testing::Test {
 protected:
  void Start(const std::string& server_extra) {
    port_ = FreePort();
    dir_.Write("secret", "hostile-secret");
    config_ = dir_.Write("firebreak.toml", R"([server]
listen = "127.0.0.1:)" + std::to_string(port_) +
                                               "\"\n" + server_extra + R"(
[queue]
path = ")" + dir_.File("q.db") + R"("
[worker]
sidecar = "127.0.0.1:0"  # tests run in parallel: any free port
[[sources]]
name = "h"
kind = "hmac"
path = "/hooks/h"
secret = { file = ")" + dir_.File("secret") + R"(" }
dedupe = "/id"
job = "h.event"
[[jobs]]
type = "h.event"
handler = { command = ["cat"] }
)");
    process_ = std::make_unique<FirebreakProcess>("ingest", config_, dir_.File("log.txt"), port_);
    ASSERT_TRUE(process_->Start()) << process_->Log();
  }

  int PostValid(const std::string& id) {
    auto res = PostHmacSigned(port_, "/hooks/h", "hostile-secret", R"({"id":")" + id + "\"}");
    return res.ok() ? res->status : -1;
  }

  TempDir dir_;
  uint16_t port_ = 0;
  std::string config_;
  std::unique_ptr<FirebreakProcess> process_;
};

TEST_F(HostileTest, ConnectionsPastMaxConnectionsAreClosedAndServiceResumes) {
  ASSERT_NO_FATAL_FAILURE(Start("max_connections = 8\nread_timeout = \"2s\"\n"));
  ASSERT_EQ(PostValid("before"), 200);
  // Eight idle connections that never send a byte take every slot...
  std::vector<int> idle;
  for (int i = 0; i < 8; ++i) {
    int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  // ...(give the server a moment to accept them all) so the ninth is closed at once.
  ASSERT_TRUE(WaitFor(
      [&] {
        int fd = Connect(port_);
        bool closed = fd >= 0 && ClosedByServer(fd, 200);
        if (fd >= 0) close(fd);
        return closed;
      },
      std::chrono::seconds(5)));
  // read_timeout evicts the idle ones; then well-formed requests are served again.
  for (int fd : idle) EXPECT_TRUE(ClosedByServer(fd, 5000)) << "idle connection kept open";
  for (int fd : idle) close(fd);
  EXPECT_TRUE(WaitFor([&] { return PostValid("after") == 200; }, std::chrono::seconds(5)));
  EXPECT_NE(process_->Log().find("server.max_connections reached"), std::string::npos);
  EXPECT_EQ(process_->Terminate(), 0);
}

TEST_F(HostileTest, MalformedRequestsAreAnsweredOrClosedWhileValidTrafficFlows) {
  ASSERT_NO_FATAL_FAILURE(
      Start("read_timeout = \"2s\"\nmax_body = \"256KiB\"\nmax_connections = 64\n"));
  const long rss_before = RssKib(process_->pid());
  // A well-formed client keeps sending throughout, on its keep-alive connection (as a
  // platform's sender does), so the connection flood below cannot lock it out.
  std::atomic<bool> done{false};
  std::vector<int> statuses;
  std::vector<double> latencies_ms;
  HttpConnection client("127.0.0.1", port_);
  std::thread valid([&] {
    for (int i = 0; !done && i < 5000; ++i) {
      auto started = std::chrono::steady_clock::now();
      const std::string body = R"({"id":"valid-)" + std::to_string(i) + "\"}";
      auto res = client.Send("POST", "/hooks/h",
                             {{"Content-Type", "application/json"},
                              {"X-Signature", HmacSha256Hex("hostile-secret", body)}},
                             body);
      statuses.push_back(res.ok() ? res->status : -1);
      latencies_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
              .count());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  struct JoinOnExit {  // a failed ASSERT below must not leave the thread running
    std::atomic<bool>& done;
    std::thread& thread;
    ~JoinOnExit() {
      done = true;
      if (thread.joinable()) thread.join();
    }
  } join_on_exit{done, valid};

  std::string deep(5000, '[');
  deep += std::string(5000, ']');
  std::string many_headers;
  for (int i = 0; i < 2000; ++i) many_headers += "X-H" + std::to_string(i) + ": v\r\n";
  const std::string base = "POST /hooks/h HTTP/1.1\r\nHost: x\r\n";
  EXPECT_EQ(RawExchange(port_, base + "X-Big: " + std::string(20000, 'a') + "\r\n\r\n"), 431);
  EXPECT_EQ(RawExchange(port_, base + many_headers + "\r\n"), 431);
  EXPECT_EQ(RawExchange(port_, base + "Transfer-Encoding: chunked\r\n\r\nZZ\r\nxx\r\n0\r\n\r\n"),
            400);
  EXPECT_EQ(RawExchange(port_, "GARBAGE\r\n\r\n"), 400);
  EXPECT_EQ(RawExchange(port_, SignedPost(deep)), 400) << "nesting depth 5000";
  EXPECT_EQ(RawExchange(port_, SignedPost("{\"id\":\"\xff\xfe\"}")), 400) << "invalid UTF-8";
  EXPECT_EQ(RawExchange(port_, SignedPost(std::string(300 * 1024, ' '))), 413);
  // Content-Length larger than what arrives: the request never completes; read_timeout
  // closes it without an answer.
  const std::string body = R"({"id":"short"})";
  std::string short_body = SignedPost(body);
  const std::string length = "Content-Length: " + std::to_string(body.size());
  short_body.replace(short_body.find(length), length.size(), "Content-Length: 99");
  EXPECT_EQ(RawExchange(port_, short_body, 5000), 0);
  // A slow sender (a byte a second) is cut off at read_timeout too.
  {
    int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    const std::string request = SignedPost(R"({"id":"slow"})");
    bool closed = false;
    for (size_t i = 0; i < request.size() && !closed; ++i) {
      if (send(fd, &request[i], 1, MSG_NOSIGNAL) <= 0) break;
      closed = ClosedByServer(fd, 1000);
    }
    EXPECT_TRUE(closed || ClosedByServer(fd, 3000)) << "slow sender kept its connection";
    close(fd);
  }
  // A flood of half-open connections up to the limit and past it: the ones past it are
  // closed at once, the rest time out after read_timeout.
  std::vector<int> flood;
  for (int i = 0; i < 80; ++i) {
    int fd = Connect(port_);
    if (fd >= 0) flood.push_back(fd);
  }
  int closed_at_once = 0;
  for (int fd : flood) closed_at_once += ClosedByServer(fd, 50) ? 1 : 0;
  EXPECT_GE(closed_at_once, 80 - 64) << "connections past max_connections were kept";
  for (int fd : flood) EXPECT_TRUE(ClosedByServer(fd, 5000)) << "flood connection kept open";
  for (int fd : flood) close(fd);
  done = true;
  valid.join();

  ASSERT_FALSE(statuses.empty());
  for (int status : statuses) EXPECT_EQ(status, 200);
  std::sort(latencies_ms.begin(), latencies_ms.end());
  double p99 = latencies_ms[latencies_ms.size() * 99 / 100];
  std::printf("valid client: %zu requests during the hostile ones, p99 %.1f ms\n",
              latencies_ms.size(), p99);
  EXPECT_LT(p99, 50.0);
  const long rss_after = RssKib(process_->pid());
  std::printf("server RSS %ld KiB before, %ld KiB after\n", rss_before, rss_after);
  EXPECT_LT(rss_after, rss_before + 64 * 1024) << "RSS grew by more than 64 MiB";
  EXPECT_EQ(process_->Terminate(), 0);
}

}  // namespace
}  // namespace firebreak::testing
