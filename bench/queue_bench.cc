// Micro-benchmarks of the sqlite queue: group-committed enqueue throughput under both
// durability modes, and a claim+finish cycle. Each iteration submits a burst of jobs
// without waiting (as many concurrent webhook requests would) and then waits for
// every callback, so the numbers include the commit (and fsync, in "fsync" mode).
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "common/allocator.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "config/config.h"
#include "queue/sqlite/sqlite_queue.h"

namespace firebreak {
namespace {

class BenchDir {
 public:
  BenchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "queue_bench.XXXXXX").string();
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~BenchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

NewJob BenchJob(int64_t n, bool scattered_keys = true, bool search_keys = false) {
  NewJob job;
  job.id = "bench-" + std::to_string(n);
  job.type = "bench.event";
  job.source = "hmac";
  // Most event ids arrive in no particular order (Slack "Ev..", GitHub UUIDs, body
  // hashes), so each key lands on its own index page; Telegram's update_id is sequential.
  const uint64_t key = scattered_keys ? static_cast<uint64_t>(n) * 0x9E3779B97F4A7C15u
                                      : static_cast<uint64_t>(n) + 1'000'000'000'000u;
  job.dedupe_keys = {"hmac:" + std::to_string(key)};
  // A typical small webhook body and its headers.
  job.payload_json = R"({"event":{"type":"message","text":")" + std::string(400, 'x') + R"("}})";
  job.headers_json = R"({"x-github-event":"push"})";
  job.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  if (search_keys) {
    // What a Slack event carries: one team, a few channels, many users, and a trace id
    // of its own, made as ingress makes one for every request.
    const uint64_t mix = static_cast<uint64_t>(n) * 0x9E3779B97F4A7C15u;
    job.search_keys = {"slack.team:T0001", "slack.channel:C" + std::to_string(mix % 50),
                       "slack.user:U" + std::to_string((mix >> 8) % 1000)};
    job.traceparent = NewTraceparent();
  }
  return job;
}

std::unique_ptr<SqliteQueue> OpenBenchQueue(const BenchDir& dir, Durability durability) {
  QueueConfig config;
  config.path = dir.path() + "/queue.db";
  config.durability = durability;
  config.max_depth = 0;  // no limit: the benchmark fills the queue
  Result<std::unique_ptr<SqliteQueue>> queue = SqliteQueue::Open(config, SystemClock::Instance());
  return queue.ok() ? std::move(*queue) : nullptr;
}

// Submits `count` jobs numbered from `first` and waits for all their callbacks.
bool EnqueueBurst(Queue& queue, int64_t first, int64_t count, bool scattered_keys = true,
                  bool search_keys = false) {
  std::atomic<int64_t> remaining{count};
  std::atomic<bool> all_accepted{true};
  std::promise<void> done;
  for (int64_t i = 0; i < count; ++i) {
    queue.Enqueue(BenchJob(first + i, scattered_keys, search_keys), [&](EnqueueResult result) {
      if (!result.status.ok() || result.outcome != EnqueueOutcome::kAccepted) {
        all_accepted = false;
      }
      if (remaining.fetch_sub(1) == 1) done.set_value();
    });
  }
  done.get_future().wait();
  return all_accepted.load();
}

void BM_EnqueueBurst(benchmark::State& state) {
  const auto durability = state.range(0) == 0 ? Durability::kFsync : Durability::kProcess;
  const int64_t burst = state.range(1);
  const bool scattered_keys = state.range(2) != 0;
  const bool search_keys = state.range(3) != 0;
  BenchDir dir;
  std::unique_ptr<SqliteQueue> queue = OpenBenchQueue(dir, durability);
  if (!queue) {
    state.SkipWithError("cannot open queue");
    return;
  }
  int64_t next = 0;
  for (auto _ : state) {
    if (!EnqueueBurst(*queue, next, burst, scattered_keys, search_keys)) {
      state.SkipWithError("an enqueue was not accepted");
      break;
    }
    next += burst;
  }
  queue->Close();
  state.SetItemsProcessed(next);
  state.counters["ops_per_commit"] =
      benchmark::Counter(static_cast<double>(queue->CommittedOperations()) /
                         static_cast<double>(std::max<int64_t>(1, queue->CommittedBatches())));
}
// normal: 0 = synchronous FULL ("fsync"), 1 = NORMAL ("process"); burst: jobs submitted
// before waiting; scattered: 1 = random-order dedupe keys, 0 = sequential ones; keys: 1 =
// with a Slack event's search keys and a trace id per job (issue 15), 0 = none.
BENCHMARK(BM_EnqueueBurst)
    ->ArgNames({"normal", "burst", "scattered", "keys"})
    ->Args({0, 1, 1, 0})
    ->Args({0, 64, 1, 0})
    ->Args({0, 64, 1, 1})
    ->Args({0, 5000, 1, 0})
    ->Args({0, 5000, 1, 1})
    ->Args({0, 5000, 0, 0})
    ->Args({1, 1, 1, 0})
    ->Args({1, 64, 1, 0})
    ->Args({1, 5000, 1, 0})
    ->Args({1, 5000, 1, 1})
    ->Args({1, 5000, 0, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Claims and succeeds jobs in batches of 64, as a worker with 64 slots would.
void BM_ClaimFinish(benchmark::State& state) {
  BenchDir dir;
  std::unique_ptr<SqliteQueue> queue = OpenBenchQueue(dir, Durability::kProcess);
  if (!queue) {
    state.SkipWithError("cannot open queue");
    return;
  }
  constexpr int64_t kSlots = 64;
  int64_t next = 0;
  int64_t finished = 0;
  for (auto _ : state) {
    state.PauseTiming();
    EnqueueBurst(*queue, next, kSlots);
    next += kSlots;
    state.ResumeTiming();
    std::promise<Result<std::vector<Job>>> claimed;
    queue->Claim({{"bench.event", kSlots, 30'000}},
                 [&](Result<std::vector<Job>> jobs) { claimed.set_value(std::move(jobs)); });
    Result<std::vector<Job>> jobs = claimed.get_future().get();
    if (!jobs.ok()) {
      state.SkipWithError("claim failed");
      break;
    }
    std::atomic<int64_t> remaining{static_cast<int64_t>(jobs->size())};
    std::promise<void> done;
    for (const Job& job : *jobs) {
      JobFinish finish;
      finish.job_id = job.id;
      finish.attempt = job.attempt;
      queue->Finish(std::move(finish), [&](Status) {
        if (remaining.fetch_sub(1) == 1) done.set_value();
      });
    }
    if (!jobs->empty()) done.get_future().wait();
    finished += static_cast<int64_t>(jobs->size());
  }
  state.SetItemsProcessed(finished);
}
BENCHMARK(BM_ClaimFinish)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace firebreak

// BENCHMARK_MAIN, with the binary's malloc settings.
int main(int argc, char** argv) {
  firebreak::TuneAllocator();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
