#include "ingress/job_key.h"

#include <gtest/gtest.h>

namespace firebreak {
namespace {

JobConfig Keyed(const std::string& key, int per_key = 1) {
  JobConfig job;
  job.type = "t";
  job.key = key;
  job.concurrency_per_key = per_key;
  return job;
}

TEST(JobKeyTest, APointerTakesTheValueThereAsText) {
  const std::string payload = R"({"event":{"channel":"C42","team":7,"flags":[1]}})";
  EXPECT_EQ(JobKeyOf(Keyed("/event/channel"), payload, {}), "C42");
  EXPECT_EQ(JobKeyOf(Keyed("/event/team"), payload, {}), "7");
  // Missing, not a string or integer, or not JSON at all: the job has no key.
  EXPECT_EQ(JobKeyOf(Keyed("/event/user"), payload, {}), "");
  EXPECT_EQ(JobKeyOf(Keyed("/event/flags"), payload, {}), "");
  EXPECT_EQ(JobKeyOf(Keyed("/event/channel"), "not json", {}), "");
  EXPECT_EQ(JobKeyOf(Keyed(""), payload, {}), "");
}

TEST(JobKeyTest, ASearchKeyNameTakesThatKeysValue) {
  const std::vector<std::string> keys = {"slack.team:T1", "slack.channel:C9",
                                         "slack.channel_name:general"};
  EXPECT_EQ(JobKeyOf(Keyed("slack.channel"), "{}", keys), "C9");
  EXPECT_EQ(JobKeyOf(Keyed("slack.team"), "{}", keys), "T1");
  // A name is matched whole: "slack.chan" is no prefix match.
  EXPECT_EQ(JobKeyOf(Keyed("slack.chan"), "{}", keys), "");
  EXPECT_EQ(JobKeyOf(Keyed("slack.user"), "{}", keys), "");
}

TEST(JobKeyTest, AssignSetsTheKeyAndItsLimit) {
  NewJob job;
  job.payload_json = R"({"chat":{"id":-100123}})";
  AssignJobKey(Keyed("/chat/id", 3), job);
  EXPECT_EQ(job.ordering_key, "-100123");
  EXPECT_EQ(job.key_limit, 3);
}

TEST(JobKeyTest, PriorityComesFromThePayloadOverTheSources) {
  JobConfig job = Keyed("");
  EXPECT_EQ(JobPriorityOf(job, R"({"priority":2})", 1), 1);  // no priority_from: the source's
  job.priority_from = "/meta/priority";
  EXPECT_EQ(JobPriorityOf(job, R"({"meta":{"priority":2}})", 1), 2);
  EXPECT_EQ(JobPriorityOf(job, R"({"meta":{"priority":9}})", 0), kMaxPriority);
  EXPECT_EQ(JobPriorityOf(job, R"({"meta":{"priority":-4}})", 1), 0);
  EXPECT_EQ(JobPriorityOf(job, R"({"meta":{"priority":"high"}})", 1), 1);  // not an integer
  EXPECT_EQ(JobPriorityOf(job, R"({"meta":{}})", 1), 1);
  NewJob assigned;
  assigned.priority = 1;
  assigned.payload_json = R"({"meta":{"priority":3}})";
  AssignJobKey(job, assigned);
  EXPECT_EQ(assigned.priority, 3);
}

TEST(JobKeyTest, ADebouncedJobWaitsItsPeriod) {
  JobConfig config = Keyed("");
  config.debounce_key = "/chat";
  config.debounce_period = std::chrono::milliseconds(2000);
  NewJob job;
  job.payload_json = R"({"chat":"c1"})";
  job.enqueued_at_ms = 1'000'000;
  job.run_at_ms = 1'000'000;
  AssignJobKey(config, job);
  EXPECT_EQ(job.debounce_key, "c1");
  EXPECT_EQ(job.run_at_ms, 1'002'000);
  NewJob keyless;  // no value at the key: neither debounced nor delayed
  keyless.payload_json = "{}";
  keyless.enqueued_at_ms = keyless.run_at_ms = 5;
  AssignJobKey(config, keyless);
  EXPECT_EQ(keyless.debounce_key, "");
  EXPECT_EQ(keyless.run_at_ms, 5);
}

}  // namespace
}  // namespace firebreak
