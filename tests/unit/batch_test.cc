// Batching (issue 17): the pure parts — what a batched type claims, when a batch is due,
// the batch envelope, how a batch answer splits into per-job outcomes — and the
// `batch` config key.
#include "worker/batch.h"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "worker/answer.h"

namespace firebreak {
namespace {

using std::chrono::milliseconds;
using Kind = HandlerResult::Kind;

BatchConfig Batch(int max, int wait_ms) {
  BatchConfig batch;
  batch.max = max;
  batch.wait = milliseconds(wait_ms);
  return batch;
}

Job JobWithId(const std::string& id) {
  Job job;
  job.id = id;
  job.type = "t";
  return job;
}

std::vector<std::string> Ids(const std::vector<Job>& jobs) {
  std::vector<std::string> ids;
  for (const Job& job : jobs) ids.push_back(job.id);
  return ids;
}

// --- what to claim --------------------------------------------------------------

TEST(PlanBatchClaimTest, EveryFreeRunIsFilled) {
  BatchClaim claim = PlanBatchClaim(Batch(50, 1000), /*concurrency=*/2, /*running=*/0,
                                    /*held=*/0, /*free_in_flight=*/64);
  EXPECT_EQ(claim.jobs, 100);
  EXPECT_EQ(claim.new_runs, 2);
}

TEST(PlanBatchClaimTest, AFormingBatchFillsUpWithoutANewRun) {
  BatchClaim claim = PlanBatchClaim(Batch(50, 1000), 1, 0, 30, 64);
  EXPECT_EQ(claim.jobs, 20);
  EXPECT_EQ(claim.new_runs, 0);
  // Even when max_in_flight has no run left: the forming batch's run is counted already.
  claim = PlanBatchClaim(Batch(50, 1000), 1, 0, 30, 0);
  EXPECT_EQ(claim.jobs, 20);
  EXPECT_EQ(claim.new_runs, 0);
}

TEST(PlanBatchClaimTest, BusyRunsAndMaxInFlightLimitIt) {
  EXPECT_EQ(PlanBatchClaim(Batch(50, 1000), 2, 2, 0, 64).jobs, 0);  // every run busy
  BatchClaim claim = PlanBatchClaim(Batch(50, 1000), 3, 1, 0, 64);
  EXPECT_EQ(claim.jobs, 100);
  EXPECT_EQ(claim.new_runs, 2);
  claim = PlanBatchClaim(Batch(50, 1000), 4, 0, 0, 1);  // max_in_flight leaves one run
  EXPECT_EQ(claim.jobs, 50);
  EXPECT_EQ(claim.new_runs, 1);
  claim = PlanBatchClaim(Batch(50, 1000), 4, 0, 60, 1);  // 2 forming runs + 1 more
  EXPECT_EQ(claim.jobs, 90);
  EXPECT_EQ(claim.new_runs, 1);
  EXPECT_EQ(PlanBatchClaim(Batch(50, 1000), 1, 0, 50, 64).jobs, 0);  // full, not started yet
}

TEST(PlanBatchClaimTest, FormingRuns) {
  EXPECT_EQ(FormingRuns(Batch(50, 1000), 0), 0);
  EXPECT_EQ(FormingRuns(Batch(50, 1000), 1), 1);
  EXPECT_EQ(FormingRuns(Batch(50, 1000), 50), 1);
  EXPECT_EQ(FormingRuns(Batch(50, 1000), 51), 2);
  EXPECT_EQ(FormingRuns(Batch(1, 1000), 7), 7);
}

// --- when a batch is due --------------------------------------------------------

TEST(BatchFormerTest, FullBatchIsDueAtOnceOldestFirst) {
  BatchFormer former(Batch(3, 1000));
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 7; ++i) former.Add(JobWithId("j" + std::to_string(i)), t0);
  EXPECT_EQ(Ids(former.TakeDue(t0)), (std::vector<std::string>{"j0", "j1", "j2"}));
  EXPECT_EQ(Ids(former.TakeDue(t0)), (std::vector<std::string>{"j3", "j4", "j5"}));
  EXPECT_TRUE(former.TakeDue(t0).empty());  // one left, its wait not over
  EXPECT_EQ(former.held(), 1u);
}

TEST(BatchFormerTest, PartialBatchIsDueWhenTheOldestHasWaited) {
  BatchFormer former(Batch(50, 1000));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(former.Deadline().has_value());
  former.Add(JobWithId("a"), t0);
  former.Add(JobWithId("b"), t0 + milliseconds(400));
  former.Add(JobWithId("c"), t0 + milliseconds(900));
  ASSERT_TRUE(former.Deadline().has_value());
  EXPECT_EQ(*former.Deadline(), t0 + milliseconds(1000));  // the first claim's wait
  EXPECT_TRUE(former.TakeDue(t0 + milliseconds(999)).empty());
  EXPECT_EQ(Ids(former.TakeDue(t0 + milliseconds(1000))),
            (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(former.held(), 0u);
  EXPECT_FALSE(former.Deadline().has_value());
}

TEST(BatchFormerTest, AfterAFullBatchTheNextOldestSetsTheDeadline) {
  BatchFormer former(Batch(2, 1000));
  const auto t0 = std::chrono::steady_clock::now();
  former.Add(JobWithId("a"), t0);
  former.Add(JobWithId("b"), t0 + milliseconds(100));
  former.Add(JobWithId("c"), t0 + milliseconds(300));
  EXPECT_EQ(Ids(former.TakeDue(t0 + milliseconds(300))), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(*former.Deadline(), t0 + milliseconds(1300));
  EXPECT_EQ(Ids(former.TakeAll()), (std::vector<std::string>{"c"}));
  EXPECT_EQ(former.held(), 0u);
}

// --- the envelope ---------------------------------------------------------------

TEST(BatchEnvelopeTest, SplicesTheJobEnvelopesInOrder) {
  std::string envelope =
      BuildBatchEnvelope("j1", "chat.\"store\"",
                         {R"({"id":"j1","payload":{"n":1}})", R"({"id":"j2","payload":{"n":2}})"});
  EXPECT_EQ(envelope.find('\n'), std::string::npos);
  nlohmann::json parsed = nlohmann::json::parse(envelope);
  EXPECT_EQ(parsed["id"], "j1");
  EXPECT_EQ(parsed["type"], "chat.\"store\"");
  ASSERT_EQ(parsed["batch"].size(), 2u);
  EXPECT_EQ(parsed["batch"][1]["id"], "j2");
  EXPECT_EQ(parsed["batch"][1]["payload"]["n"], 2);
}

// --- answers --------------------------------------------------------------------

const std::vector<std::string> kIds = {"j1", "j2", "j3"};

HandlerResult Answer(const std::string& line) {
  Result<HandlerResult> parsed = ParseCommandAnswer(line, "j1");
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  return parsed.ok() ? *parsed : HandlerResult{};
}

TEST(SplitBatchAnswerTest, OkFinishesEveryJob) {
  Result<std::vector<HandlerResult>> split =
      SplitBatchAnswer(Answer(R"({"id":"j1","ok":true})"), kIds);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  ASSERT_EQ(split->size(), 3u);
  for (const HandlerResult& r : *split) EXPECT_EQ(r.kind, Kind::kOk);
}

TEST(SplitBatchAnswerTest, FailureRetriesEveryJobWithItsRetryAfter) {
  Result<std::vector<HandlerResult>> split = SplitBatchAnswer(
      Answer(R"({"id":"j1","ok":false,"error":"store down","retry_after":3})"), kIds);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  for (const HandlerResult& r : *split) {
    EXPECT_EQ(r.kind, Kind::kFailed);
    EXPECT_EQ(r.error, "store down");
    EXPECT_EQ(r.retry_after, milliseconds(3000));
  }
  split = SplitBatchAnswer(Answer(R"({"id":"j1","ok":false,"retry":false})"), kIds);
  ASSERT_TRUE(split.ok());
  for (const HandlerResult& r : *split) EXPECT_EQ(r.kind, Kind::kRejected);
}

TEST(SplitBatchAnswerTest, TimeoutAppliesToEveryJobEvenWithResults) {
  HandlerResult timed_out{Kind::kTimedOut, "timed out after 5s", {}, {}, {}, {}};
  Result<std::vector<HandlerResult>> split = SplitBatchAnswer(timed_out, kIds);
  ASSERT_TRUE(split.ok());
  for (const HandlerResult& r : *split) {
    EXPECT_EQ(r.kind, Kind::kTimedOut);
    EXPECT_EQ(r.error, "timed out after 5s");
  }
}

TEST(SplitBatchAnswerTest, ResultsOverrideTheAnswerPerJob) {
  Result<std::vector<HandlerResult>> split =
      SplitBatchAnswer(Answer(R"({"id":"j1","ok":true,"results":[
        {"id":"j2","ok":false,"error":"bad item","retry":false},
        {"id":"j3","ok":true,"actions":[{"integration":"x","path":"/a"}],
         "enqueue":[{"type":"t"}]}]})"),
                       kIds);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  EXPECT_EQ((*split)[0].kind, Kind::kOk);  // not listed: the answer's own outcome
  EXPECT_TRUE((*split)[0].actions_json.empty());
  EXPECT_EQ((*split)[1].kind, Kind::kRejected);
  EXPECT_EQ((*split)[1].error, "bad item");
  EXPECT_EQ((*split)[2].kind, Kind::kOk);
  EXPECT_EQ((*split)[2].actions_json, R"([{"integration":"x","path":"/a"}])");
  EXPECT_EQ((*split)[2].enqueue_json, R"([{"type":"t"}])");

  // A failed answer can still let some jobs through.
  split = SplitBatchAnswer(
      Answer(R"({"id":"j1","ok":false,"error":"partial","results":[{"id":"j3","ok":true}]})"),
      kIds);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  EXPECT_EQ((*split)[0].kind, Kind::kFailed);
  EXPECT_EQ((*split)[1].kind, Kind::kFailed);
  EXPECT_EQ((*split)[2].kind, Kind::kOk);
}

TEST(SplitBatchAnswerTest, UrlHandlerResultsComeAsJsonText) {
  HandlerResult ok;  // a 2xx whose body had "results" (url_handler.cc)
  ok.results_json = R"([{"id":"j1","ok":false,"retry_after":1.5}])";
  Result<std::vector<HandlerResult>> split = SplitBatchAnswer(ok, kIds);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  EXPECT_EQ((*split)[0].kind, Kind::kFailed);
  EXPECT_EQ((*split)[0].error, "handler reported failure");
  EXPECT_EQ((*split)[0].retry_after, milliseconds(1500));
  EXPECT_EQ((*split)[1].kind, Kind::kOk);
}

TEST(SplitBatchAnswerTest, MalformedAnswersAreErrorsNamingTheProblem) {
  auto error_of = [](const std::string& results_json, const std::string& actions = "") {
    HandlerResult answer;
    answer.results_json = results_json;
    answer.actions_json = actions;
    Result<std::vector<HandlerResult>> split = SplitBatchAnswer(answer, kIds);
    EXPECT_FALSE(split.ok()) << results_json;
    return split.ok() ? std::string() : split.status().message();
  };
  EXPECT_NE(error_of(R"({"id":"j1"})").find("\"results\" is not an array"), std::string::npos);
  EXPECT_NE(error_of(R"([1])").find("results[0] is not an object"), std::string::npos);
  EXPECT_NE(error_of(R"([{"ok":true}])").find("results[0] has no string \"id\""),
            std::string::npos);
  EXPECT_NE(error_of(R"([{"id":"j9","ok":true}])").find("\"j9\" is not a job of this batch"),
            std::string::npos);
  EXPECT_NE(error_of(R"([{"id":"j2","ok":true},{"id":"j2","ok":false}])")
                .find("results[1] lists job \"j2\" a second time"),
            std::string::npos);
  EXPECT_NE(error_of(R"([{"id":"j2"}])").find("results[0] has no boolean \"ok\""),
            std::string::npos);
  EXPECT_NE(error_of(R"([{"id":"j2","ok":false,"retry":"no"}])").find("\"retry\" is not a boolean"),
            std::string::npos);
  EXPECT_NE(error_of(R"([{"id":"j2","ok":false,"retry_after":-1}])").find("retry_after"),
            std::string::npos);
  EXPECT_NE(error_of(R"([{"id":"j2","ok":true,"actions":{}}])").find("\"actions\" is not an array"),
            std::string::npos);
  EXPECT_NE(error_of("", R"([{"integration":"x","path":"/a"}])").find("\"results\" entry"),
            std::string::npos);
}

TEST(ParseCommandAnswerTest, KeepsResultsAsJsonTextForBatches) {
  HandlerResult r = Answer(R"({"id":"j1","ok":true,"results":[ {"id":"j2", "ok":false} ]})");
  EXPECT_EQ(r.results_json, R"([{"id":"j2","ok":false}])");
  r = Answer(R"({"id":"j1","ok":true,"results":null})");
  EXPECT_TRUE(r.results_json.empty());
}

// --- config ---------------------------------------------------------------------

constexpr char kJob[] = R"([[jobs]]
type = "chat.store"
handler = { url = "http://127.0.0.1:9000/jobs" }
)";

TEST(BatchConfigTest, ParsesMaxAndWaitAndShowsThemInTheSummary) {
  Result<Config> config =
      ParseConfig(std::string(kJob) + "batch = { max = 50, wait = \"250ms\" }\n", "bot.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(config->jobs[0].batch.enabled());
  EXPECT_EQ(config->jobs[0].batch.max, 50);
  EXPECT_EQ(config->jobs[0].batch.wait, milliseconds(250));
  EXPECT_NE(Summarize(*config).find("batch max 50 wait 250ms"), std::string::npos)
      << Summarize(*config);

  config = ParseConfig(std::string(kJob) + "batch = { max = 10 }\n", "bot.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->jobs[0].batch.wait, milliseconds(1000));  // the default

  config = ParseConfig(kJob, "bot.toml");
  ASSERT_TRUE(config.ok());
  EXPECT_FALSE(config->jobs[0].batch.enabled());
  EXPECT_EQ(Summarize(*config).find("batch"), std::string::npos);
}

TEST(BatchConfigTest, BadValuesNameFileLineAndKey) {
  auto error_of = [](const std::string& batch_line) {
    Result<Config> config = ParseConfig(std::string(kJob) + batch_line + "\n", "bot.toml");
    EXPECT_FALSE(config.ok()) << batch_line;
    return config.ok() ? std::string() : config.status().message();
  };
  std::string e = error_of("batch = { max = 0 }");
  EXPECT_EQ(e.rfind("bot.toml:4:", 0), 0u) << e;
  EXPECT_NE(e.find("jobs[0].batch.max: "), std::string::npos) << e;
  EXPECT_NE(e.find("between 1 and 1000"), std::string::npos) << e;
  e = error_of("batch = { max = 1001 }");
  EXPECT_NE(e.find("jobs[0].batch.max: "), std::string::npos) << e;
  e = error_of("batch = { wait = \"1s\" }");
  EXPECT_NE(e.find("jobs[0].batch.max: required key is missing"), std::string::npos) << e;
  e = error_of("batch = { max = 5, wait = \"0s\" }");
  EXPECT_NE(e.find("jobs[0].batch.wait: must be above zero"), std::string::npos) << e;
  e = error_of("batch = { max = 5, wait = \"2m\" }");
  EXPECT_NE(e.find("jobs[0].batch.wait: must be at most 1m"), std::string::npos) << e;
  e = error_of("batch = { max = 5, wiat = \"1s\" }");
  EXPECT_NE(e.find("jobs[0].batch.wiat: unknown key"), std::string::npos) << e;
  e = error_of("batch = 50");
  EXPECT_NE(e.find("jobs[0].batch: expected a table"), std::string::npos) << e;
}

}  // namespace
}  // namespace firebreak
