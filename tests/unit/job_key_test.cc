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

}  // namespace
}  // namespace firebreak
