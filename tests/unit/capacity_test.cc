// The capacity read-out's arithmetic (queue/capacity.h): Little's law L = λ·W from the
// queue's counts, utilization against the configured concurrency, and the hints.
#include "queue/capacity.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace firebreak {
namespace {

TypeThroughput Counts(const std::string& type, int64_t window_ms, int64_t arrived, int64_t finished,
                      int64_t busy_ms) {
  TypeThroughput t;
  t.type = type;
  t.window_ms = window_ms;
  t.arrived = arrived;
  t.finished = finished;
  t.busy_ms = busy_ms;
  return t;
}

TypeDepth Depth(const std::string& type, int64_t ready, int64_t in_flight = 0) {
  TypeDepth d;
  d.type = type;
  d.ready = ready;
  d.in_flight = in_flight;
  return d;
}

bool HasHint(const TypeCapacity& c, const std::string& words) {
  for (const std::string& hint : c.hints) {
    if (hint.find(words) != std::string::npos) return true;
  }
  return false;
}

TEST(CapacityTest, LittlesLawFromArrivalRateAndMeanJobTime) {
  // 300 jobs in 5 minutes = 1/s; 300 attempts took 120 s of handler time = 0.4 s each.
  TypeCapacity c =
      ComputeTypeCapacity(Counts("slack.event", 300'000, 300, 300, 120'000), Depth("", 0, 1), 20);
  EXPECT_EQ(c.type, "slack.event");
  EXPECT_DOUBLE_EQ(c.window_seconds, 300);
  EXPECT_DOUBLE_EQ(c.arrival_rate_per_s, 1.0);
  ASSERT_TRUE(c.mean_job_seconds.has_value());
  EXPECT_DOUBLE_EQ(*c.mean_job_seconds, 0.4);
  ASSERT_TRUE(c.concurrency_needed.has_value());
  EXPECT_DOUBLE_EQ(*c.concurrency_needed, 0.4);
  EXPECT_EQ(c.concurrency_configured, 20);
  ASSERT_TRUE(c.utilization.has_value());
  EXPECT_DOUBLE_EQ(*c.utilization, 0.02);
  EXPECT_EQ(c.in_flight, 1);
  EXPECT_TRUE(c.hints.empty()) << c.hints.front();

  // The README's example: 50 events/s × 0.4 s = 20 in flight.
  TypeCapacity busy = ComputeTypeCapacity(Counts("t", 60'000, 3000, 3000, 1'200'000), {}, 20);
  EXPECT_DOUBLE_EQ(*busy.concurrency_needed, 20);
  EXPECT_DOUBLE_EQ(*busy.utilization, 1.0);
  EXPECT_FALSE(HasHint(busy, "more than concurrency")) << "exactly at capacity is not over it";
}

TEST(CapacityTest, ZeroArrivalsNeedNoWorkers) {
  TypeCapacity idle = ComputeTypeCapacity(Counts("t", 300'000, 0, 0, 0), {}, 4);
  EXPECT_DOUBLE_EQ(idle.arrival_rate_per_s, 0);
  EXPECT_FALSE(idle.mean_job_seconds.has_value());
  EXPECT_FALSE(idle.concurrency_needed.has_value());
  EXPECT_FALSE(idle.utilization.has_value());
  EXPECT_TRUE(idle.hints.empty()) << idle.hints.front();

  // Draining an old backlog: no arrivals, so none are needed for new work.
  TypeCapacity draining = ComputeTypeCapacity(Counts("t", 300'000, 0, 10, 5000), {}, 4);
  EXPECT_DOUBLE_EQ(*draining.mean_job_seconds, 0.5);
  EXPECT_DOUBLE_EQ(*draining.concurrency_needed, 0);
  EXPECT_DOUBLE_EQ(*draining.utilization, 0);
}

TEST(CapacityTest, NothingFinishedLeavesJobTimeUnknown) {
  TypeCapacity c = ComputeTypeCapacity(Counts("t", 60'000, 30, 0, 0), Depth("t", 25, 5), 5);
  EXPECT_DOUBLE_EQ(c.arrival_rate_per_s, 0.5);
  EXPECT_FALSE(c.mean_job_seconds.has_value());
  EXPECT_FALSE(c.concurrency_needed.has_value());
  EXPECT_FALSE(c.utilization.has_value());
  EXPECT_TRUE(HasHint(c, "not known yet")) << ::testing::PrintToString(c.hints);
  EXPECT_TRUE(HasHint(c, "backlog growing: 25 ready")) << ::testing::PrintToString(c.hints);
  // In-flight jobs that have not finished yet are a reason to say so, too.
  EXPECT_TRUE(HasHint(ComputeTypeCapacity(Counts("t", 60'000, 0, 0, 0), Depth("t", 0, 3), 5),
                      "not known yet"));
}

TEST(CapacityTest, OverTheConfiguredConcurrencyNamesTheWorkerProcessesNeeded) {
  // 10/s × 2.5 s = 25 in flight against 10 per process: 3 processes.
  TypeCapacity c = ComputeTypeCapacity(Counts("t", 60'000, 600, 600, 1'500'000), {}, 10);
  EXPECT_DOUBLE_EQ(*c.concurrency_needed, 25);
  EXPECT_DOUBLE_EQ(*c.utilization, 2.5);
  EXPECT_TRUE(HasHint(c,
                      "needs 25.0 in flight, more than concurrency 10 per worker process: "
                      "run at least 3 worker processes"))
      << ::testing::PrintToString(c.hints);
}

TEST(CapacityTest, BacklogGrowsWhenMoreArriveThanFinishWhileJobsWait) {
  TypeCapacity growing = ComputeTypeCapacity(Counts("t", 90'000, 100, 40, 4000), Depth("t", 60), 4);
  EXPECT_TRUE(HasHint(growing,
                      "backlog growing: 60 ready, 100 arrived and 40 attempts finished "
                      "in the last 1m30s"))
      << ::testing::PrintToString(growing.hints);
  // Jobs waiting while the workers keep up (a burst being drained) is not growth.
  EXPECT_FALSE(HasHint(ComputeTypeCapacity(Counts("t", 90'000, 100, 120, 4000), Depth("t", 60), 4),
                       "backlog"));
  // Nor is more arriving than finishing with nothing waiting (all in flight).
  EXPECT_FALSE(HasHint(ComputeTypeCapacity(Counts("t", 90'000, 100, 40, 4000), Depth("t", 0, 4), 4),
                       "backlog"));
}

TEST(CapacityTest, UnconfiguredTypeHasNoUtilization) {
  TypeCapacity c = ComputeTypeCapacity(Counts("old.type", 60'000, 6, 6, 600), Depth("", 2), 0);
  EXPECT_EQ(c.concurrency_configured, 0);
  ASSERT_TRUE(c.concurrency_needed.has_value());
  EXPECT_DOUBLE_EQ(*c.concurrency_needed, 0.01);
  EXPECT_FALSE(c.utilization.has_value());
  EXPECT_TRUE(HasHint(c, "not a job type of this config"));
}

TEST(CapacityTest, EveryTypeOfAnyInputGetsARowSortedByType) {
  std::vector<TypeCapacity> rows =
      ComputeCapacity({Counts("b", 120'000, 12, 12, 1200)}, {Depth("c", 3)},
                      {{"a", 2}, {"b", 4}, {"c", 6}}, 300'000);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].type, "a");  // configured, no traffic: zeros over the same window
  EXPECT_DOUBLE_EQ(rows[0].window_seconds, 120);
  EXPECT_EQ(rows[0].concurrency_configured, 2);
  EXPECT_DOUBLE_EQ(rows[0].arrival_rate_per_s, 0);
  EXPECT_EQ(rows[1].type, "b");
  EXPECT_DOUBLE_EQ(rows[1].arrival_rate_per_s, 0.1);
  EXPECT_DOUBLE_EQ(*rows[1].concurrency_needed, 0.01);
  EXPECT_DOUBLE_EQ(*rows[1].utilization, 0.0025);
  EXPECT_EQ(rows[2].type, "c");
  EXPECT_EQ(rows[2].ready, 3);
  EXPECT_EQ(rows[2].concurrency_configured, 6);

  // No counts at all: the window asked for.
  std::vector<TypeCapacity> quiet = ComputeCapacity({}, {}, {{"a", 2}}, 300'000);
  ASSERT_EQ(quiet.size(), 1u);
  EXPECT_DOUBLE_EQ(quiet[0].window_seconds, 300);
}

TEST(CapacityTest, JsonHasNullWhereUnknown) {
  nlohmann::json known =
      CapacityFieldsJson(ComputeTypeCapacity(Counts("t", 10'000, 20, 20, 1000), {}, 4));
  EXPECT_DOUBLE_EQ(known["arrival_rate_per_s"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(known["mean_job_seconds"].get<double>(), 0.05);
  EXPECT_DOUBLE_EQ(known["concurrency_needed"].get<double>(), 0.1);
  EXPECT_EQ(known["concurrency_configured"], 4);
  EXPECT_DOUBLE_EQ(known["utilization"].get<double>(), 0.025);
  EXPECT_DOUBLE_EQ(known["window_seconds"].get<double>(), 10);
  EXPECT_EQ(known["arrived"], 20);
  EXPECT_EQ(known["finished"], 20);
  EXPECT_TRUE(known["hints"].is_array());

  nlohmann::json unknown =
      CapacityFieldsJson(ComputeTypeCapacity(Counts("t", 10'000, 1, 0, 0), {}, 0));
  EXPECT_TRUE(unknown["mean_job_seconds"].is_null());
  EXPECT_TRUE(unknown["concurrency_needed"].is_null());
  EXPECT_TRUE(unknown["concurrency_configured"].is_null());
  EXPECT_TRUE(unknown["utilization"].is_null());
  EXPECT_EQ(unknown["hints"].size(), 2u);
}

}  // namespace
}  // namespace firebreak
