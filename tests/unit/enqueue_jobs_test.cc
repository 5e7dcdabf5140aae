// worker/actions.h BuildEnqueuedJobs: a handler's "enqueue" entries become jobs of
// configured types, delayed and deduped as asked; anything else names the entry.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "worker/actions.h"

namespace firebreak {
namespace {

Config TwoTypes() {
  Result<Config> config = ParseConfig(R"(
[[jobs]]
type = "work"
handler = { command = ["true"] }
[[jobs]]
type = "reminder"
handler = { command = ["true"] }
max_attempts = 7
)",
                                      "bot.toml");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return config.ok() ? std::move(config).value() : Config{};
}

Job Parent() {
  Job job;
  job.id = "01PARENT";
  job.type = "work";
  job.source = "slack";
  job.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  return job;
}

TEST(EnqueueJobsTest, EntriesBecomeDelayedDedupedJobsOfTheirType) {
  const Config config = TwoTypes();
  const int64_t now = 1'800'000'000'000;
  Result<std::vector<NewJob>> jobs = BuildEnqueuedJobs(
      R"([{"type":"reminder","payload":{"user":"U1"},"delay":"10m"},
          {"type":"reminder","delay":2500,"key":"remind:U1"},
          {"type":"work"}])",
      Parent(), config, now);
  ASSERT_TRUE(jobs.ok()) << jobs.status().ToString();
  ASSERT_EQ(jobs->size(), 3u);
  const NewJob& first = (*jobs)[0];
  EXPECT_EQ(first.type, "reminder");
  EXPECT_EQ(first.source, "slack");
  EXPECT_EQ(nlohmann::json::parse(first.payload_json), (nlohmann::json{{"user", "U1"}}));
  EXPECT_EQ(first.run_at_ms, now + 600'000);
  EXPECT_EQ(first.enqueued_at_ms, now);
  EXPECT_EQ(first.max_attempts, 7);  // the type's, not the parent's
  EXPECT_EQ(first.dedupe_keys, std::vector<std::string>{"enqueue:01PARENT:0"});
  EXPECT_EQ(first.traceparent, Parent().traceparent);
  EXPECT_EQ(nlohmann::json::parse(first.headers_json)["x-firebreak-parent-job"], "01PARENT");
  EXPECT_EQ((*jobs)[1].run_at_ms, now + 2'500);
  EXPECT_EQ((*jobs)[1].dedupe_keys, std::vector<std::string>{"enqueue:remind:U1"});
  EXPECT_EQ((*jobs)[1].payload_json, "{}");
  EXPECT_EQ((*jobs)[2].run_at_ms, now);
  EXPECT_NE((*jobs)[0].id, (*jobs)[1].id);
}

TEST(EnqueueJobsTest, MalformedEntriesNameTheirIndexAndTheProblem) {
  const Config config = TwoTypes();
  auto error = [&](const std::string& json) {
    Result<std::vector<NewJob>> jobs = BuildEnqueuedJobs(json, Parent(), config, 0);
    EXPECT_FALSE(jobs.ok()) << json;
    return jobs.ok() ? std::string() : jobs.status().message();
  };
  EXPECT_EQ(error(R"({"type":"work"})"), "\"enqueue\" is not an array");
  EXPECT_EQ(error(R"([1])"), "enqueue 0: not an object");
  EXPECT_EQ(error(R"([{"type":"work"},{"type":"nope"}])"), "enqueue 1: no [[jobs]] type \"nope\"");
  EXPECT_EQ(error(R"([{"payload":{}}])"), "enqueue 0: needs a string \"type\"");
  EXPECT_EQ(error(R"([{"type":"work","when":"soon"}])"), "enqueue 0: unknown field \"when\"");
  EXPECT_EQ(error(R"([{"type":"work","delay":"soon"}])"),
            "enqueue 0: bad delay \"soon\" (e.g. \"10m\")");
  EXPECT_EQ(error(R"([{"type":"work","delay":-5}])"),
            "enqueue 0: \"delay\" must be a duration (\"10m\") or milliseconds");
  EXPECT_EQ(error(R"([{"type":"work","delay":"999h"}])"),
            "enqueue 0: \"delay\" is longer than 30 days");
  EXPECT_EQ(error(R"([{"type":"work","key":""}])"),
            "enqueue 0: key must be 1-255 characters without control characters");
  std::string many = "[";
  for (size_t i = 0; i <= kMaxEnqueuePerJob; ++i) many += std::string(i ? "," : "") + "{\"type\":\"work\"}";
  EXPECT_EQ(error(many + "]"), "more than 100 jobs to enqueue");
}

}  // namespace
}  // namespace firebreak
