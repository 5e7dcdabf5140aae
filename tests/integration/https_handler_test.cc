// Issue 13 item 6: a url handler reaches an https:// endpoint (serverless handlers are
// https-only), trusting a private CA through handler.ca_file; `firebreak check`
// reports a ca_file it cannot use.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <memory>
#include <string>

#include "harness.h"
#include "support/https_server.h"

namespace firebreak::testing {
namespace {

constexpr char kSecret[] = "https-handler-test-secret";

class HttpsHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(mkdir(dir_.File("pki").c_str(), 0700), 0);
    ASSERT_EQ(mkdir(dir_.File("server").c_str(), 0700), 0);
    Result<TestCertificates> made = MakeTestCertificates(dir_.File("pki"));
    ASSERT_TRUE(made.ok()) << made.status().message();
    certs_ = *made;
  }

  // A config whose job "work" is handled by `handler` (a TOML inline table).
  std::string Config(const std::string& handler) {
    port_ = FreePort();
    dir_.Write("hmac.secret", kSecret);
    return dir_.Write("firebreak.toml", R"([server]
listen = "127.0.0.1:)" + std::to_string(port_) +
                                            R"("
threads = 1

[queue]
backend = "sqlite"
path = ")" + dir_.File("queue.db") + R"("

[worker]
sidecar = "127.0.0.1:0"
shutdown_grace = "2s"

[[sources]]
name = "test"
kind = "hmac"
path = "/hooks/test"
secret = { file = ")" + dir_.File("hmac.secret") +
                                            R"(" }
dedupe = "/id"
job = "work"

[[jobs]]
type = "work"
handler = )" + handler + R"(
timeout = "10s"
max_attempts = 3
backoff = { base = "100ms", factor = 2, max = "1s", jitter = "none" }
)");
  }

  TempDir dir_;
  TestCertificates certs_;
  uint16_t port_ = 0;
};

TEST_F(HttpsHandlerTest, HttpsUrlHandlerJobSucceeds) {
  HttpsServer server(dir_.File("server"), certs_.server_cert, certs_.server_key);
  ASSERT_TRUE(server.Start()) << server.Log();
  ASSERT_TRUE(server.SetReply({200, {{"Content-Type", "application/json"}}, R"({"actions":[]})"}));
  std::string config =
      Config("{ url = \"" + server.Url("/jobs") + "\", ca_file = \"" + certs_.ca_file + "\" }");

  auto check = RunFirebreak({"check", "-c", config});
  ASSERT_EQ(check.exit_code, 0) << check.out;
  EXPECT_NE(
      check.out.find("handler url " + server.Url("/jobs") + " (ca_file " + certs_.ca_file + ")"),
      std::string::npos)
      << check.out;

  FirebreakProcess process("run", config, dir_.File("log.txt"), port_);
  ASSERT_TRUE(process.Start()) << process.Log();
  auto sent = PostHmacSigned(port_, "/hooks/test", kSecret, R"({"id":"tls-1","text":"hi"})");
  ASSERT_TRUE(sent.ok()) << sent.status().ToString();
  ASSERT_EQ(sent->status, 200) << sent->body;

  ASSERT_TRUE(WaitFor(
      [&] {
        return MetricValue(ScrapeMetrics(port_), "firebreak_jobs_total",
                           {"outcome=\"succeeded\""}) == 1;
      },
      std::chrono::seconds(20)))
      << process.Log() << "\nserver:\n"
      << server.Log();
  std::vector<HttpsRequest> seen = server.Requests();
  ASSERT_EQ(seen.size(), 1u);  // succeeded at the first attempt, over the verified TLS
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/jobs");
  EXPECT_EQ(seen[0].Header("content-type"), "application/json");
  EXPECT_FALSE(seen[0].Header("x-firebreak-job-id").empty());
  EXPECT_NE(seen[0].body.find(R"("id":"tls-1")"), std::string::npos) << seen[0].body;
  EXPECT_NE(seen[0].body.find(R"("type":"work")"), std::string::npos) << seen[0].body;
  EXPECT_TRUE(server.FailedHandshakes().empty());
  EXPECT_EQ(process.Terminate(), 0) << process.Log();
}

TEST_F(HttpsHandlerTest, CheckRejectsACaFileItCannotUse) {
  const std::string missing = dir_.File("pki/missing.pem");
  auto result = RunFirebreak(
      {"check", "-c",
       Config("{ url = \"https://127.0.0.1:9/jobs\", ca_file = \"" + missing + "\" }")});
  EXPECT_EQ(result.exit_code, 2) << result.out;
  EXPECT_NE(result.out.find("firebreak.toml:"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("jobs \"work\": handler ca_file \"" + missing +
                            "\": cannot read: No such file or directory"),
            std::string::npos)
      << result.out;

  // A key is not a certificate: caught as well, not at the first job.
  result = RunFirebreak(
      {"check", "-c",
       Config("{ url = \"https://127.0.0.1:9/jobs\", ca_file = \"" + certs_.server_key + "\" }")});
  EXPECT_EQ(result.exit_code, 2) << result.out;
  EXPECT_NE(result.out.find("no PEM certificate in it"), std::string::npos) << result.out;
}

}  // namespace
}  // namespace firebreak::testing
