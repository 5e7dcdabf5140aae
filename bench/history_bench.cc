// What keeping history costs (issue 15): ingest + drain with queue.retention on vs off on
// the same store kind, and ListJobs latency over a store holding 1M retained jobs.
//
// BM_IngestDrain: each iteration enqueues a burst of 2,000 webhook-sized jobs with four
// search keys (as a Slack event gets), claims them 256 at a time and succeeds each, so
// it counts the writes retention adds (the succeeded row and its attempt, the key index,
// the pruner) against deleting the job at once. Backend sqlite always; redis when
// FIREBREAK_BENCH_REDIS_URL names a server (bench/history_bench.sh starts one).
//
// BM_ListJobs: one store filled once with 1,000,000 succeeded jobs (sqlite; redis with
// FIREBREAK_BENCH_REDIS_JOBS jobs, 200,000 by default: a million retained jobs take
// Redis ~1.5 GB). Each iteration is one page of 50, as GET /jobs asks, including the
// JSON the API writes for it; the p50/p99 counters are per page in milliseconds.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "admin/job_view.h"
#include "common/clock.h"
#include "config/config.h"
#include "queue/queue.h"
#include "queue_bench_util.h"

namespace firebreak {
namespace {

using bench::BenchConfig;
using bench::TempPath;

constexpr int kBurst = 2000;
constexpr int kUsers = 5000;  // distinct slack.user keys in the 1M store: ~200 jobs each

NewJob SlackJob(int64_t n) {
  NewJob job;
  job.id = "job-" + std::to_string(n);
  job.type = "slack.event";
  job.source = "slack";
  job.dedupe_keys = {"slack:Ev" + std::to_string(static_cast<uint64_t>(n) * 0x9E3779B97F4A7C15u)};
  const std::string user = "U" + std::to_string(n % kUsers);
  job.search_keys = {"slack.team:T0001", "slack.channel:C" + std::to_string(n % 97),
                     "slack.user:" + user};
  job.payload_json = R"({"team_id":"T0001","event":{"type":"message","user":")" + user +
                     R"(","text":")" + std::string(400, 'x') + R"("}})";
  job.headers_json = R"({"x-slack-request-timestamp":"1700000000"})";
  job.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  return job;
}

bool EnqueueAll(Queue& queue, int64_t first, int64_t count) {
  return bench::EnqueueAll(queue, first, count, SlackJob);
}

int64_t DrainAll(Queue& queue) { return bench::DrainAll(queue, "slack.event", 256); }

void BM_IngestDrain(benchmark::State& state, const std::string& backend) {
  bench::RunIngestDrain(state, backend, state.range(0) != 0, kBurst, "slack.event", 256,
                        SlackJob);
}
BENCHMARK_CAPTURE(BM_IngestDrain, sqlite, std::string("sqlite"))
    ->ArgName("retention")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_IngestDrain, redis, std::string("redis"))
    ->ArgName("retention")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// One store per backend, filled on first use and kept for every BM_ListJobs run.
Queue* FilledStore(const std::string& backend, int64_t& jobs) {
  static std::string dir = TempPath("history_store");
  static std::unique_ptr<Queue> stores[2];
  static int64_t counts[2] = {0, 0};
  const int index = backend == "sqlite" ? 0 : 1;
  jobs = counts[index];
  if (stores[index]) return stores[index].get();
  Result<std::unique_ptr<Queue>> opened =
      OpenQueue(BenchConfig(backend, /*retention=*/true, dir), SystemClock::Instance());
  if (!opened.ok()) return nullptr;
  stores[index] = std::move(opened).value();
  int64_t total = 1'000'000;
  if (backend == "redis") {
    const char* n = getenv("FIREBREAK_BENCH_REDIS_JOBS");
    total = n != nullptr ? std::atoll(n) : 200'000;
  }
  constexpr int64_t kChunk = 20'000;
  const int64_t offset = 1'000'000'000;  // apart from BM_IngestDrain's ids
  for (int64_t at = 0; at < total; at += kChunk) {
    if (!EnqueueAll(*stores[index], offset + at, std::min(kChunk, total - at))) return nullptr;
    DrainAll(*stores[index]);
  }
  counts[index] = total;
  jobs = total;
  return stores[index].get();
}

void BM_ListJobs(benchmark::State& state, const std::string& backend, const std::string& query) {
  if (backend == "redis" && getenv("FIREBREAK_BENCH_REDIS_URL") == nullptr) {
    state.SkipWithError("FIREBREAK_BENCH_REDIS_URL is not set");
    return;
  }
  int64_t jobs = 0;
  Queue* queue = FilledStore(backend, jobs);
  if (queue == nullptr) {
    state.SkipWithError("cannot fill the store");
    return;
  }
  std::mt19937 rng(42);
  std::vector<double> ms;
  for (auto _ : state) {
    JobFilter filter;
    if (query == "key") filter.key = "slack.user:U" + std::to_string(rng() % kUsers);
    if (query == "state") filter.state = "succeeded";
    if (query == "type_and_text") {
      filter.type = "slack.event";
      filter.q = "U" + std::to_string(rng() % kUsers) + "\"";
    }
    const auto start = std::chrono::steady_clock::now();
    Result<JobPage> page = queue->ListJobs(filter, 50, "");
    if (!page.ok()) {
      state.SkipWithError(page.status().message().c_str());
      break;
    }
    nlohmann::json items = nlohmann::json::array();
    for (const Job& job : page->items) items.push_back(JobSummaryJson(job));
    benchmark::DoNotOptimize(items.dump());
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                           start)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  if (!ms.empty()) {
    state.counters["p50_ms"] = ms[ms.size() / 2];
    state.counters["p99_ms"] = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  }
  state.counters["retained_jobs"] = static_cast<double>(jobs);
}
BENCHMARK_CAPTURE(BM_ListJobs, sqlite_key, std::string("sqlite"), std::string("key"))
    ->Iterations(2000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ListJobs, sqlite_state, std::string("sqlite"), std::string("state"))
    ->Iterations(500)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ListJobs, sqlite_newest, std::string("sqlite"), std::string("all"))
    ->Iterations(500)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ListJobs, sqlite_type_and_text, std::string("sqlite"),
                  std::string("type_and_text"))
    ->Iterations(100)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ListJobs, redis_key, std::string("redis"), std::string("key"))
    ->Iterations(2000)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ListJobs, redis_newest, std::string("redis"), std::string("all"))
    ->Iterations(500)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace firebreak
