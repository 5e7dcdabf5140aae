// The ingress server hands the queue what its source took from a request: a real server on
// a free port, a signed delivery over HTTP, and a queue that records each NewJob.
#include "ingress/server.h"

#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cli/http_client.h"
#include "common/clock.h"
#include "config/config.h"
#include "ingress/source.h"
#include "queue/queue.h"
#include "telemetry/metrics.h"

namespace firebreak {
namespace {

// Stores nothing: accepts every Enqueue and keeps the job it was given.
class RecordingQueue final : public Queue {
 public:
  void Enqueue(NewJob job, EnqueueCallback done) override {
    EnqueueResult result;
    result.job_id = job.id;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    done(std::move(result));
  }
  std::vector<NewJob> jobs() {
    std::lock_guard<std::mutex> lock(mutex_);
    return jobs_;
  }

  void Claim(std::vector<ClaimSlots> /*slots*/, ClaimCallback done) override {
    done(std::vector<Job>{});
  }
  void Finish(JobFinish /*finish*/, StatusCallback done) override { done(Status::Ok()); }
  void SetWakeup(std::function<void()> /*wakeup*/) override {}
  Result<std::vector<TypeDepth>> Stats() override { return std::vector<TypeDepth>{}; }
  Result<std::vector<TypeThroughput>> Throughput(int64_t /*window_ms*/) override {
    return std::vector<TypeThroughput>{};
  }
  QueueHealth Health() override { return {}; }
  Result<Job> GetJob(const std::string& /*id*/) override { return NotFound("none"); }
  Result<DeadListPage> ListDead(const std::string& /*type*/, int /*limit*/,
                                const std::string& /*cursor*/) override {
    return DeadListPage{};
  }
  Status Replay(const std::string& /*id*/) override { return NotFound("none"); }
  Result<int64_t> ReplayAll(const std::string& /*type*/,
                            const std::function<void(int64_t)>& /*progress*/) override {
    return int64_t{0};
  }
  Status Purge(const std::string& /*id*/) override { return NotFound("none"); }
  Result<int64_t> PurgeAll(const std::string& /*type*/) override { return int64_t{0}; }
  // The admin side is not what these tests look at.
  Result<JobPage> ListJobs(const JobFilter& /*filter*/, int /*limit*/,
                           const std::string& /*cursor*/) override {
    return JobPage{};
  }
  Result<std::string> Rerun(const std::string& /*id*/) override { return NotFound("none"); }
  Status RunNow(const std::string& /*id*/) override { return NotFound("none"); }
  Status Cancel(const std::string& /*id*/) override { return NotFound("none"); }
  Status SetPaused(const std::string& /*type*/, bool /*paused*/) override { return Status::Ok(); }
  Status AppendAudit(const AuditEntry& /*entry*/) override { return Status::Ok(); }
  Result<AuditPage> ListAudit(int /*limit*/, const std::string& /*cursor*/) override {
    return AuditPage{};
  }
  Result<std::vector<HistoryBucket>> History(int64_t, int64_t, int) override {
    return std::vector<HistoryBucket>{};
  }
  void Close() override {}

 private:
  std::mutex mutex_;
  std::vector<NewJob> jobs_;
};

TEST(IngressServerTest, EnqueuedJobCarriesTheSourcesSearchKeys) {
  Result<Config> parsed = ParseConfig(R"([server]
threads = 1

[[sources]]
name = "tg"
kind = "telegram"
path = "/hooks/tg"
secret = { env = "TG_SECRET" }
job = "tg.update"
search_keys = ["/message/text"]

[[jobs]]
type = "tg.update"
handler = { url = "http://127.0.0.1:9000/jobs" }
)",
                                      "ingress_server_test.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  Config config = std::move(parsed).value();
  config.server.listen = "127.0.0.1:0";  // a free port (the config wants a fixed one)
  const std::string token = "tg_Webhook-Secret_0123456789";
  config.sources.at(0).secret->value = token;
  SystemClock clock;
  Result<std::unique_ptr<Source>> source = MakeSource(config.sources.at(0), clock);
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  std::vector<std::unique_ptr<Source>> sources;
  sources.push_back(std::move(source).value());
  RecordingQueue queue;
  Metrics metrics;
  IngressServer server(config, std::move(sources), queue, metrics, clock);
  ASSERT_TRUE(server.Start().ok());

  const std::string update =
      R"({"update_id":10000,"message":{"message_id":1365,"date":1441645532,)"
      R"("chat":{"id":-1001234567890,"type":"supergroup","title":"Ops"},)"
      R"("from":{"id":1111111,"is_bot":false,"first_name":"Test"},"text":"/start"}})";
  Result<HttpResponse> response =
      HttpCall({"POST",
                "http://127.0.0.1:" + std::to_string(server.port()) + "/hooks/tg",
                {{"Content-Type", "application/json"},
                 {"X-Telegram-Bot-Api-Secret-Token", token}},
                update,
                std::chrono::seconds(5)});
  server.Stop(std::chrono::milliseconds(1000));
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 200) << response->body;

  const std::vector<NewJob> jobs = queue.jobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].source, "tg");
  EXPECT_EQ(jobs[0].dedupe_keys, std::vector<std::string>{"tg:10000"});
  EXPECT_EQ(jobs[0].search_keys,
            (std::vector<std::string>{"telegram.chat:-1001234567890", "telegram.user:1111111",
                                      "message.text:/start"}));
  EXPECT_EQ(jobs[0].payload_json, update);
}

}  // namespace
}  // namespace firebreak
