// Hostile clients (issue 4): whatever a connection sends, or doesn't, the server answers
// or closes it and goes on serving well-formed requests.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
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

class HostileTest : public ::testing::Test {
 protected:
  void Start(const std::string& server_extra) {
    port_ = FreePort();
    dir_.Write("secret", "hostile-secret");
    config_ = dir_.Write("firebreak.toml", R"([server]
listen = "127.0.0.1:)" + std::to_string(port_) + "\"\n" + server_extra + R"(
[queue]
path = ")" + dir_.File("q.db") + R"("
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

}  // namespace
}  // namespace firebreak::testing
